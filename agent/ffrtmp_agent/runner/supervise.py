"""One job attempt from plan to outcome (`Runner`): probes the input's duration, runs ffmpeg with its
progress pipe, reports status.progress at a bounded rate, follows the job's spec.paused/spec.canceled
through a watch, enforces timeoutSeconds, restarts a live job whose input dropped, then moves the output
into place (output.py) and reports status.result (results.py). The exit code is __main__'s business.
"""
# Over 400 lines on purpose: the Runner's steps (probe, encode, pause, cancel, commit) read best as one class.

from __future__ import annotations

import dataclasses
import enum
import logging
import posixpath
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import ffrtmp_api as api
from ffrtmp_api.egress import EgressPolicy

from .. import energy
from . import currency, failures, launch, output, results
from .encode import Encode
from .failures import Failure
from .jobclient import JobClient
from .progress import Sample, Throttle, percent, status_progress

log = logging.getLogger("ffrtmp.runner")


@dataclasses.dataclass(frozen=True)
class Settings:
    rapl_root: Path = dataclasses.field(default_factory=energy.rapl_root)
    """Where RAPL powercap zones live ($FFRTMP_RAPL_ROOT, as for the node metrics)."""
    poll_seconds: float = 0.5
    """How often the loop looks at the encoder (progress, timeout). Pause/cancel, the first frame and ffmpeg's
    exit wake it at once (Control.wait), so this bounds only how late a throttled progress write goes out;
    each wakeup costs CPU for the whole encode."""
    cancel_grace_seconds: float = 3.0
    """SIGTERM -> SIGKILL on cancel: the output is thrown away, so there is nothing to wait for."""
    stop_grace_seconds: float = 10.0
    """SIGTERM -> SIGKILL when a live run ends on purpose: ffmpeg needs a moment to write the trailer."""
    spec_wait_seconds: float = 30.0
    """How long to wait for the first read of the job before running with spec defaults."""
    max_backoff_seconds: float = 30.0
    """Cap of the live reconnect backoff (1, 2, 4, ... s)."""
    backoff_reset_seconds: float = 30.0
    """A live run that lasted this long was healthy: the next reconnect starts at 1 s again."""
    max_live_failures: int = 8
    """Consecutive live runs that produced nothing before the job fails (about 3 minutes of trying)."""
    live_stall_seconds: float = 10.0
    """A live run whose media time has not advanced for this long has lost its input: ffmpeg's RTMP
    client keeps waiting on a server that holds the connection open after the publisher left."""
    probe_timeout_seconds: float = 60.0


class Control:
    """The job's wanted state as the watch last saw it; written by the watch thread, read by the loop."""

    def __init__(self) -> None:
        self.paused = False
        self.canceled = False  # one-way, like spec.canceled
        self.terminated = False  # SIGTERM to the runner: the pod is being deleted
        self.seen = threading.Event()
        self._changed = threading.Event()

    def on_spec(self, spec: dict[str, Any]) -> None:
        self.paused = bool(spec.get("paused"))
        self.canceled = self.canceled or bool(spec.get("canceled"))
        self.seen.set()
        self._changed.set()

    def terminate(self) -> None:
        self.terminated = True
        self._changed.set()

    def wake(self) -> None:
        """Ends the loop's current wait early (the encoder has news: its first frame, or it is exiting)."""
        self._changed.set()

    @property
    def stopping(self) -> bool:
        return self.canceled or self.terminated

    def wait(self, seconds: float) -> None:
        """Sleeps up to `seconds`, waking early when the wanted state changes."""
        self._changed.wait(seconds)
        self._changed.clear()


class End(enum.Enum):
    SUCCEEDED = "succeeded"
    CANCELED = "canceled"
    TERMINATED = "terminated"
    FAILED = "failed"


class Outcome(NamedTuple):
    end: End
    failure: Failure | None = None


class Runner:
    def __init__(
        self,
        plan: api.ExecutionPlan,
        jobs: JobClient,
        *,
        settings: Settings = Settings(),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.plan = plan
        self.jobs = jobs
        self.settings = settings
        self.clock = clock
        self.control = Control()
        self.throttle = Throttle(plan.progressIntervalSeconds)
        self.duration = plan.inputDurationSeconds
        self.launch: launch.Launch | None = None  # what prepare() opened: volumes' files, the egress gateway
        self.active_seconds = 0.0  # encoder running, not paused (what timeoutSeconds limits)
        self.out_time_base = 0.0  # live restarts: media time and bytes of the finished runs
        self.bytes_base = 0
        self.started = clock()
        self.output_ref = plan.ffmpegArgs[-1]
        self.input_ref = plan.inputArgs[-1] if plan.inputArgs and plan.inputUrl else None

    # --------------------------------------------------------------------------------------- main

    def run(self) -> Outcome:
        stop_watch = threading.Event()
        watcher = threading.Thread(
            target=self.jobs.watch_spec,
            args=(self.control.on_spec, stop_watch),
            name="job-watch",
            daemon=True,
            kwargs={"on_object": currency.follower(self.plan, self.control.terminate)},  # another run took over
        )
        watcher.start()
        try:
            if not self.control.seen.wait(self.settings.spec_wait_seconds):
                log.warning("could not read the job within %.0f s; running anyway", self.settings.spec_wait_seconds)
            if self.control.stopping:
                return self._stopped()  # stopped before reading its job: a failure (143), never a success
            if failure := self._prepare() or self._probe_input():
                outcome = Outcome(End.FAILED, failure)
            else:
                self._report(Sample(), force=True)
                before = energy.read_counters(rapl_root=self.settings.rapl_root, gpu=self._uses_nvidia())
                outcome = self._run_live() if self.plan.live else self._run_file()
                if outcome.end is End.SUCCEEDED:
                    after = energy.read_counters(rapl_root=self.settings.rapl_root, gpu=self._uses_nvidia())
                    outcome = self._finish(joules=energy.job_energy_joules(before, after))
            if outcome.end is not End.SUCCEEDED and self.launch is not None:
                output.remove_partial(self.plan, self.launch.folder, self.launch.parts)
            return outcome
        finally:
            stop_watch.set()
            if self.launch is not None:
                self.launch.close()

    def _prepare(self) -> Failure | None:
        """Opens the input and output on their volumes and starts the egress gateway (launch.py); the plan
        ffmpeg runs from here on names what was opened. A refusal fails the job before ffmpeg starts."""
        try:
            policy = EgressPolicy.parse(self.plan.egressAllow)
            self.plan, self.launch = launch.prepare(self.plan, policy=policy)
        except ValueError as exc:
            return Failure(failures.INPUT_ERROR, f"the plan's egress allow list is invalid: {exc}")
        except launch.Refusal as refusal:
            log.warning("refused: %s", refusal.failure.message)
            return refusal.failure
        self.output_ref = self.plan.ffmpegArgs[-1]
        self.input_ref = self.plan.inputArgs[-1] if self.plan.inputArgs and self.plan.inputUrl else None
        return None

    def _probe_input(self) -> Failure | None:
        if self.duration is not None or not self.plan.probeArgs or self.plan.live:
            return None
        try:
            done = subprocess.run(
                self.plan.probeArgs,
                capture_output=True,
                text=True,
                timeout=self.settings.probe_timeout_seconds,
                check=False,
                **self._spawn(),
            )
        except subprocess.TimeoutExpired:
            log.warning("ffprobe of the input timed out; progress will show no percentage")
            return None
        if done.returncode == 0:
            try:
                self.duration = float(done.stdout.strip().splitlines()[0])
            except (ValueError, IndexError):
                self.duration = None  # "N/A": a stream without a known length
            log.info("input duration: %s s", self.duration)
            return None
        failure = failures.classify(
            done.returncode, done.stderr.splitlines()[-20:], input_ref=self.input_ref, output_ref=""
        )
        if self.launch is not None:
            failure = self.launch.failure(failure)
        return failure if failure.reason == failures.INPUT_ERROR else None

    def _spawn(self) -> dict[str, Any]:
        """How every ffmpeg/ffprobe starts: the gateway's $http_proxy and the opened files' fds."""
        if self.launch is None:
            return {}
        return {"env": self.launch.env, "pass_fds": self.launch.pass_fds}

    # --------------------------------------------------------------------------------- file jobs

    def _run_file(self) -> Outcome:
        while self.control.paused and not self.control.stopping:
            self.control.wait(self.settings.poll_seconds * 5)  # paused before the encode began
        if self.control.stopping:
            return self._stopped()
        enc = self._start(self.plan.ffmpegArgs)
        last = self.clock()
        while True:
            code = enc.poll()
            self._report_from(enc)
            if self.control.stopping:
                enc.stop(grace=self.settings.cancel_grace_seconds)
                return self._stopped()
            if self.control.paused and not enc.suspended and code is None:
                log.info("pausing ffmpeg %d (SIGSTOP)", enc.pid)
                enc.suspend()
            elif not self.control.paused and enc.suspended:
                log.info("resuming ffmpeg %d (SIGCONT)", enc.pid)
                enc.resume()
            now = self.clock()
            if not enc.suspended:
                self.active_seconds += now - last
            last = now
            if self._timed_out():
                enc.stop(grace=self.settings.cancel_grace_seconds)
                return Outcome(End.FAILED, failures.timeout(self.plan.timeoutSeconds or 0))
            if code is not None:
                break
            self.control.wait(self.settings.poll_seconds)
        code = enc.finish()
        if self.control.stopping:
            return self._stopped()
        if code != 0:
            return Outcome(End.FAILED, self._classify(enc, code))
        latest = enc.latest
        truncated = failures.truncated_input(
            input_duration=self.duration,
            output_time=latest.out_time_seconds if latest else None,
            corruption_seen=enc.corruption_seen,
        )
        if truncated:
            return Outcome(End.FAILED, truncated)
        self._note_run(enc)
        return Outcome(End.SUCCEEDED)

    # --------------------------------------------------------------------------------- live jobs

    def _run_live(self) -> Outcome:
        """Runs until canceled or liveDurationSeconds; restarts with backoff when the input drops."""
        plan, settings = self.plan, self.settings
        deadline = self.started + plan.liveDurationSeconds if plan.liveDurationSeconds else None
        backoff, idle_runs, run = 1.0, 0, 0
        while True:
            if self.control.stopping:
                return self._stopped()
            if deadline is not None and self.clock() >= deadline:
                return Outcome(End.SUCCEEDED)
            if self.control.paused:
                self.control.wait(settings.poll_seconds * 5)  # stopped: RTMP servers drop idle peers
                continue
            enc = self._start(self._live_argv(run))
            run += 1
            run_started = last = last_growth = self.clock()
            ended_on_purpose, stalled, media_time = False, False, 0.0
            while enc.poll() is None:
                sample = self._report_from(enc)
                now = self.clock()
                if sample is not None and (sample.out_time_seconds or 0.0) > media_time:
                    media_time, last_growth = sample.out_time_seconds or 0.0, now
                if now - last_growth > settings.live_stall_seconds:
                    log.warning("live input stalled for %.0f s; restarting ffmpeg %d", now - last_growth, enc.pid)
                    enc.stop(grace=settings.cancel_grace_seconds)
                    stalled = True
                    break
                self.active_seconds += now - last
                last = now
                if self.control.stopping:
                    enc.stop(grace=settings.cancel_grace_seconds)
                    return self._stopped()
                if self._timed_out():
                    enc.stop(grace=settings.cancel_grace_seconds)
                    return Outcome(End.FAILED, failures.timeout(plan.timeoutSeconds or 0))
                if self.control.paused or (deadline is not None and now >= deadline):
                    log.info("stopping live ffmpeg %d (%s)", enc.pid, "pause" if self.control.paused else "duration")
                    enc.stop(grace=settings.stop_grace_seconds)
                    ended_on_purpose = True
                    break
                self.control.wait(settings.poll_seconds)
            code = enc.finish()
            produced = self._note_run(enc)
            if ended_on_purpose:
                continue
            if code == 0 and plan.testSource is not None and plan.testSource.durationSeconds > 0:
                return Outcome(End.SUCCEEDED)  # a finite test source simply ended
            if not plan.reconnect:
                return Outcome(End.SUCCEEDED) if code == 0 else Outcome(End.FAILED, self._classify(enc, code))
            idle_runs = 0 if produced else idle_runs + 1
            if idle_runs >= settings.max_live_failures:
                return Outcome(End.FAILED, self._no_live_media(enc, code, runs=idle_runs))
            if self.clock() - run_started >= settings.backoff_reset_seconds:
                backoff = 1.0
            why = "input stalled" if stalled else f"exited {code}: {_last(enc)}"
            log.warning("live ffmpeg %s; reconnecting in %.0f s", why, backoff)
            wake = self.clock() + backoff
            while self.clock() < wake and not self.control.stopping:
                self.control.wait(min(settings.poll_seconds * 5, max(0.0, wake - self.clock())))
            backoff = min(backoff * 2, settings.max_backoff_seconds)

    def _live_argv(self, run: int) -> list[str]:
        """Each live run writes its own temp part (a restart must not overwrite the earlier ones)."""
        argv = list(self.plan.ffmpegArgs)
        temp = self.plan.tempOutputUrl
        if run > 0 and self.launch is not None:
            if temp:
                stem, extension = posixpath.splitext(posixpath.basename(temp))
                argv[-1] = self.launch.new_part(f"{stem}.r{run}{extension}")
            if self.launch.gateway is not None:
                self.launch.gateway.refresh()  # a reconnect may come hours later: resolve and check again
        return argv

    # ----------------------------------------------------------------------------------- helpers

    def _start(self, argv: list[str]) -> Encode:
        log.info("starting %s", " ".join(argv))  # for the log only; ffmpeg gets the list
        return Encode(argv, on_progress=self.control.wake, **self._spawn())

    def _note_run(self, enc: Encode) -> bool:
        """Adds a finished run's media time and bytes to the totals; whether it produced anything."""
        sample = enc.latest
        out_time = (sample.out_time_seconds or 0.0) if sample else 0.0
        self.out_time_base += out_time
        self.bytes_base += (sample.total_size or 0) if sample else 0
        return out_time > 0

    def _timed_out(self) -> bool:
        return self.plan.timeoutSeconds is not None and self.active_seconds > self.plan.timeoutSeconds

    def _classify(self, enc: Encode, code: int) -> Failure:
        failure = failures.classify(code, list(enc.stderr_tail), input_ref=self.input_ref, output_ref=enc.argv[-1])
        return self.launch.failure(failure) if self.launch is not None else failure

    def _no_live_media(self, enc: Encode, code: int, *, runs: int) -> Failure:
        failure = self._classify(enc, code or 1)
        if failure.reason != failures.ENCODER_ERROR:
            return failure
        return Failure(
            failures.INPUT_ERROR,
            f"the live input {self.plan.inputUrl or 'test source'} delivered no "
            f"media in {runs} attempts (last: {_last(enc)})",
        )

    def _stopped(self) -> Outcome:
        return Outcome(End.CANCELED if self.control.canceled else End.TERMINATED)

    def _uses_nvidia(self) -> bool:
        return self.plan.encoder.endswith("_nvenc")

    def _report_from(self, enc: Encode) -> Sample | None:
        sample = enc.take_sample()
        if sample is not None:
            self._report(sample)
        return sample

    def _report(self, sample: Sample, *, force: bool = False) -> None:
        if not self.throttle.ready(self.clock(), force=force, frame=sample.frame):
            return
        if self.plan.live:
            sample = dataclasses.replace(sample, out_time_seconds=self.out_time_base + (sample.out_time_seconds or 0.0))
            length = self.plan.liveDurationSeconds or None
            elapsed = Sample(out_time_seconds=self.clock() - self.started)  # live: wall time against the duration
            done = percent(elapsed, duration_seconds=length)
        else:
            done = percent(sample, duration_seconds=self.duration)
        self.jobs.patch_status({"progress": status_progress(sample, percent_done=done, now=_now())})

    # ---------------------------------------------------------------------------------- results

    def _finish(self, *, joules: float | None) -> Outcome:
        """Moves the output into place, then measures and reports the result."""
        assert self.launch is not None
        if not currency.still_current(self.jobs, self.plan):  # never commit over a newer run's output
            return Outcome(End.TERMINATED)
        folder, final_fd = self.launch.folder, None
        try:
            if folder is not None:
                final_fd = output.place(self.plan, folder, self.launch.parts, env=self.launch.env)
        except (OSError, subprocess.SubprocessError, RuntimeError) as exc:
            return Outcome(End.FAILED, Failure(failures.OUTPUT_ERROR, f"cannot finalise the output: {exc}"))
        if self.control.canceled:  # canceled in the last instant: the user wants no output
            output.remove_final(self.plan, folder)
            return Outcome(End.CANCELED)
        result = results.measure(
            self.plan,
            wall_seconds=self.clock() - self.started,
            bytes_written=self.bytes_base,
            media_seconds=self.out_time_base,
            joules=joules,
            output_ref=self.launch.final_ref(final_fd),
            spawn=self._spawn(),
        )
        progress = {"percent": 100.0, "outTimeSeconds": result.get("durationSeconds"), "updatedAt": _now()}
        self.jobs.patch_status(
            {"progress": {k: v for k, v in progress.items() if v is not None}, "result": result}, retry_seconds=60
        )  # a Completed job has a result: the operator waits for it
        return Outcome(End.SUCCEEDED)


def _last(enc: Encode) -> str:
    return enc.stderr_tail[-1] if enc.stderr_tail else "no output"


def _now() -> str:
    return api.stamp_seconds(datetime.now(UTC))  # status times are metav1.Time: whole seconds
