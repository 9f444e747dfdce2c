"""One running ffmpeg process: started from an argv list (never a shell), its progress pipe parsed on a
reader thread, the tail of its stderr kept for failure classification, and the signals the runner
sends it (SIGSTOP/SIGCONT for pause, SIGTERM then SIGKILL to stop).
"""

from __future__ import annotations

import collections
import logging
import os
import resource
import signal
import subprocess
import threading
from collections.abc import Callable, Sequence

from .failures import CORRUPTION_MARKERS
from .progress import Sample, parse_blocks

log = logging.getLogger(__name__)
STDERR_LINES = 40


class Encode:
    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        pass_fds: Sequence[int] = (),
        on_progress: Callable[[], None] | None = None,
    ) -> None:
        """`env` and `pass_fds`: the runner's launch (the egress gateway's $http_proxy, the opened files).
        `on_progress` is called from the reader thread for the first sample with a frame > 0 and when ffmpeg
        closes its progress pipe (it is exiting), so the runner need not poll often to catch either."""
        self.argv = list(argv)
        self._on_progress = on_progress or (lambda: None)
        # The runner reaps no other child while ffmpeg runs: the growth of RUSAGE_CHILDREN is ffmpeg's CPU.
        self._children_cpu0 = _children_cpu()
        self.cpu_seconds: float | None = None  # ffmpeg's own CPU (user + system), once it was reaped
        self.proc = subprocess.Popen(
            self.argv,
            env=env,
            pass_fds=tuple(pass_fds),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            bufsize=1,
        )
        self.pid = self.proc.pid
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_LINES)
        self.corruption_seen = False  # the input produced decode errors somewhere (not only in the tail)
        self.suspended = False
        self._lock = threading.Lock()
        self._latest: Sample | None = None
        self._fresh = False
        self._readers = [
            threading.Thread(target=self._read_progress, name="ffmpeg-progress", daemon=True),
            threading.Thread(target=self._read_stderr, name="ffmpeg-stderr", daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    # ------------------------------------------------------------------------------------- output

    def _read_progress(self) -> None:
        assert self.proc.stdout is not None
        framed = False
        for sample in parse_blocks(self.proc.stdout):
            with self._lock:
                self._latest, self._fresh = sample, True
            if not framed and sample.frame:
                framed = True
                self._on_progress()
        self._on_progress()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            line = line.rstrip()
            if not line:
                continue
            self.stderr_tail.append(line)
            if any(marker in line for marker in CORRUPTION_MARKERS):
                self.corruption_seen = True
            log.debug("ffmpeg: %s", line)

    def take_sample(self) -> Sample | None:
        """The newest progress sample if one arrived since the last call, else None."""
        with self._lock:
            sample, self._fresh = (self._latest if self._fresh else None), False
            return sample

    @property
    def latest(self) -> Sample | None:
        with self._lock:
            return self._latest

    # ------------------------------------------------------------------------------------ control

    def poll(self) -> int | None:
        return self.proc.poll()

    def finish(self, timeout: float = 10) -> int:
        """Waits for exit and for the readers to drain the pipes (so the last progress block is in)."""
        code = self.proc.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(timeout=5)
        if self.cpu_seconds is None:
            self.cpu_seconds = _children_cpu() - self._children_cpu0
            log.info("ffmpeg %d exited %d after %.3f s of CPU", self.pid, code, self.cpu_seconds)
        return code

    def suspend(self) -> None:
        if not self.suspended and self.poll() is None:
            self._signal(signal.SIGSTOP)
            self.suspended = True

    def resume(self) -> None:
        if self.suspended:
            self._signal(signal.SIGCONT)
            self.suspended = False

    def stop(self, *, grace: float) -> int:
        """SIGTERM (ffmpeg then finishes the file it writes), SIGKILL after `grace` seconds."""
        if self.poll() is None:
            self._signal(signal.SIGTERM)
            if self.suspended:  # a stopped process handles SIGTERM only once continued
                self._signal(signal.SIGCONT)
                self.suspended = False
        try:
            return self.finish(timeout=grace)
        except subprocess.TimeoutExpired:
            log.warning("ffmpeg %d ignored SIGTERM for %.0f s; killing it", self.pid, grace)
            self._signal(signal.SIGKILL)
            return self.finish(timeout=10)

    def _signal(self, signum: int) -> None:
        try:
            os.kill(self.pid, signum)
        except ProcessLookupError:
            pass


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
