"""Standalone node mode: run the ffrtmp job pods bound to this node as local processes, as a kubelet
would run their containers, and report their status.

A watch thread feeds pod events to one loop (`run`), which alone owns the process table: it decides per
event (podspec.decide), admits only pods the operator built and signed (admit.py), starts them in a private
mount namespace with the pod's volumes bound at their mountPaths, in a cgroup holding their limits
(cgroups.py), as the pod's non-root user, renews their tokens (tokens.py), reaps them, writes pod status,
and finalises deleted pods (no kubelet will). Longer than the other modules on purpose: the loop alone owns
the process table, and every step that changes it stays in this one class.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ffrtmp_api as api
import urllib3
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from . import admit, cgroups, podspec, podstatus, processes, tokens, volumes
from .gate import Gate
from .podspec import Action

log = logging.getLogger(__name__)
SHUTDOWN_GRACE_SECONDS = 10
START_RETRY_SECONDS = 2.0  # a pod whose start met an API outage is tried again after this long


def api_unreachable(exc: BaseException) -> bool:
    """Whether a failed call says the API server is not answering now (restarting, overloaded, the
    connection refused or reset) rather than refusing the request: the pod is tried again, not failed."""
    cause = exc.__cause__ if isinstance(exc, tokens.TokenError) else exc
    if isinstance(cause, ApiException):
        return not cause.status or cause.status == 429 or cause.status >= 500
    return isinstance(cause, (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError))


@dataclass
class ApiTarget:
    """How job processes reach the API server: the agent's own server URL and TLS settings."""

    server: str
    ca_pem: str | None
    insecure: bool


@dataclass
class LocalProcess:
    """One running job pod. Owned by the run loop only."""

    pod: dict[str, Any]
    popen: subprocess.Popen[bytes]
    pod_dir: Path
    started: datetime
    kill_at: float | None = None  # monotonic deadline for SIGKILL once terminating
    shutdown: bool = False  # stopped because the agent is stopping
    token: tokens.PodToken = field(default_factory=tokens.PodToken)
    groups: list[str] = field(default_factory=list)  # the pod's cgroups

    @property
    def uid(self) -> str:
        return self.pod["metadata"]["uid"]


@dataclass
class StandaloneRunner:
    core: client.CoreV1Api
    node: str
    work_dir: Path
    target: ApiTarget
    system_namespace: str = api.DEFAULT_SYSTEM_NAMESPACE
    """Where the operator's pod-signing key lives (Secret ffrtmp-pod-signing-key)."""
    token_seconds: int = tokens.DEFAULT_SECONDS
    """Lifetime asked for each pod's ServiceAccount token (the API server's minimum is 600 s)."""
    token_renew_seconds: float | None = None
    """Renew tokens after this long instead of at 80 % of their lifetime (tests)."""
    cgroup_hierarchy: cgroups.Hierarchy | None = field(default_factory=lambda: _detect_cgroups())
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    procs: dict[str, LocalProcess] = field(default_factory=dict)
    finished: set[str] = field(default_factory=set)  # uids run to the end; kept until the pod is gone
    ignored: set[str] = field(default_factory=set)  # foreign pods already logged once
    events: queue.Queue[tuple[str, Any]] = field(default_factory=queue.Queue)
    unshare_error: str | None = None
    # Pod status writes that failed because the API server was unreachable, newest per pod uid; retried
    # every pass. A lost exit report would leave the pod Running in the API forever (no kubelet resends).
    unsent: dict[str, tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=dict)
    _resend_at: float = 0.0
    # Pods whose start met an API outage, by uid: (monotonic time to try again, the pod as last seen).
    deferred: dict[str, tuple[float, dict[str, Any]]] = field(default_factory=dict)
    gate: Gate | None = None  # made from core and system_namespace after init

    # ------------------------------------------------------------------------------ loop and watch

    def run(self, stop: threading.Event) -> None:
        self.unshare_error = processes.check_unshare()
        if self.unshare_error:
            log.error("private mount namespaces unavailable (%s): job pods with volumes will fail", self.unshare_error)
        watcher = threading.Thread(target=self._watch, args=(stop,), name="pod-watch", daemon=True)
        watcher.start()
        while not stop.is_set():
            try:
                kind, obj = self.events.get(timeout=0.25)
                self._dispatch(kind, obj)
                while True:
                    kind, obj = self.events.get_nowait()
                    self._dispatch(kind, obj)
            except queue.Empty:
                pass
            except Exception:
                log.exception("standalone: handling a pod event failed")
            try:
                self._start_deferred()
                self.reap()
                self._renew_tokens()
                self._resend_status()
            except Exception:  # the loop must outlive any API outage, or no pod runs here again
                log.exception("standalone: reaping failed")
        self.stop_all()

    def _watch(self, stop: threading.Event) -> None:
        selector = f"spec.nodeName={self.node}"
        while not stop.is_set():
            try:
                listing = self.core.list_pod_for_all_namespaces(field_selector=selector)
                pods = self.core.api_client.sanitize_for_serialization(listing.items)
                self.events.put(("SYNC", pods))
                w = watch.Watch()
                for ev in w.stream(
                    self.core.list_pod_for_all_namespaces,
                    field_selector=selector,
                    resource_version=listing.metadata.resource_version,
                    timeout_seconds=30,
                ):
                    if stop.is_set():
                        w.stop()
                        break
                    if ev["type"] in ("ADDED", "MODIFIED", "DELETED"):
                        self.events.put((ev["type"], ev["raw_object"]))
            except ApiException as exc:
                if exc.status != 410:  # 410 Gone: our resourceVersion expired, list again
                    log.warning("pod watch failed: %s", exc.reason)
                    stop.wait(2)
            except Exception as exc:  # connection reset and the like: list again shortly
                log.warning("pod watch failed: %s", exc)
                stop.wait(2)

    def _dispatch(self, kind: str, obj: Any) -> None:
        if kind == "SYNC":
            seen = {p["metadata"]["uid"] for p in obj}
            for uid in [u for u in self.procs if u not in seen]:
                self._gone(uid)
            self.finished &= seen
            for pod in obj:
                self.handle(pod)
        elif kind == "DELETED":
            self._gone(obj["metadata"]["uid"])
        else:
            self.handle(obj)

    # ------------------------------------------------------------------------------------- events

    def handle(self, pod: dict[str, Any]) -> None:
        uid = pod["metadata"]["uid"]
        self.deferred.pop(uid, None)  # this newer view of the pod decides
        proc = self.procs.get(uid)
        action = podspec.decide(pod, running=proc is not None, finished=uid in self.finished)
        if action is Action.START:
            self.start(pod)
        elif action is Action.TERMINATE and proc is not None and proc.kill_at is None:
            grace = podspec.grace_seconds(pod)
            log.info("pod %s deleted: SIGTERM, %ss grace", podspec.pod_key(pod), grace)
            proc.pod = pod
            proc.kill_at = time.monotonic() + grace
            processes.signal_main(proc.popen.pid, signal.SIGTERM)
        elif action is Action.FINALIZE:
            self._delete(pod)
        elif action is Action.MARK_LOST:
            self._mark_lost(pod)
        elif action is Action.IGNORE_FOREIGN and uid not in self.ignored:
            self.ignored.add(uid)
            log.info("pod %s is not an ffrtmp job pod: not running it (left Pending)", podspec.pod_key(pod))

    def _gone(self, uid: str) -> None:
        """The pod object is gone (force-deleted): stop its process at once."""
        self.finished.discard(uid)
        self.ignored.discard(uid)
        self.deferred.pop(uid, None)
        proc = self.procs.pop(uid, None)
        if proc is not None:
            log.info("pod %s removed from the API: killing its process", podspec.pod_key(proc.pod))
            processes.signal_group(proc.popen.pid, signal.SIGKILL)
            proc.popen.wait()
            cgroups.remove(proc.groups)
        shutil.rmtree(self._pod_dir_for_uid(uid) / "volumes", ignore_errors=True)

    # -------------------------------------------------------------------------------------- start

    def pod_dir(self, pod: dict[str, Any]) -> Path:
        meta = pod["metadata"]
        return self.work_dir / "pods" / f"{meta['namespace']}_{meta['name']}_{meta['uid'][:8]}"

    def _pod_dir_for_uid(self, uid: str) -> Path:
        matches = list((self.work_dir / "pods").glob(f"*_{uid[:8]}"))
        return matches[0] if matches else self.work_dir / "pods" / "-nonexistent-"

    def start(self, pod: dict[str, Any]) -> None:
        key = podspec.pod_key(pod)
        if self.gate is None:
            self.gate = Gate(self.core, system_namespace=self.system_namespace)
        try:
            refused = self.gate.refusal(pod)
        except Exception as exc:
            if not (isinstance(exc, ApiException) or api_unreachable(exc)):
                raise
            log.warning("pod %s: cannot check it yet: %s", key, exc)
            self._defer(pod)  # nothing ran; tried again shortly
            return
        if refused:
            self._fail_start(pod, f"refused by the standalone agent: {refused}", reason="Refused")
            return
        who = admit.identity(pod)
        assert who is not None  # admission refuses pods without one
        pod_dir = self.pod_dir(pod)
        home = processes.pod_folders(pod_dir, owner=who)
        processes.kill_leftover(pod_dir)  # a process a crashed agent started for this very pod
        (pod_dir / "start-error").unlink(missing_ok=True)
        (home / "termination-log").unlink(missing_ok=True)
        token = tokens.PodToken(owner=who)
        groups: list[str] = []
        try:
            argv, env, mounts = self._prepare(pod, pod_dir, who, token)
            groups = cgroups.create(self.cgroup_hierarchy, pod["metadata"]["uid"], cgroups.pod_limits(pod))
        except Exception as exc:
            self._not_started(pod, exc)
            return
        helper = processes.helper_argv(
            argv,
            mounts=mounts,
            chdir=processes.working_dir(pod) or env["HOME"],
            start_error=pod_dir / "start-error",
            identity=who,
            cgroups=groups,
        )
        log_path = pod_dir / f"{podstatus.container_name(pod)}.log"
        try:
            with open(log_path, "ab") as out:
                popen = subprocess.Popen(
                    helper,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=str(pod_dir),
                    start_new_session=True,  # own process group: SIGKILL reaches every child
                )
        except OSError as exc:  # unshare or python missing: the pod cannot start on this machine
            cgroups.remove(groups)
            self._fail_start(pod, f"cannot start {helper[0]}: {exc.strerror or exc}")
            return
        started = self.now()
        processes.write_pidfile(pod_dir, popen.pid)
        self.procs[pod["metadata"]["uid"]] = LocalProcess(
            pod=pod, popen=popen, pod_dir=pod_dir, started=started, token=token, groups=groups
        )
        log.info("pod %s started: pid %d, log %s", key, popen.pid, log_path)
        self._patch_status(pod, podstatus.running_status(pod, pid=popen.pid, started=started))
        self._annotate(pod, {podspec.LOG_FILE_ANNOTATION: str(log_path)})

    def _prepare(
        self, pod: dict[str, Any], pod_dir: Path, who: admit.Identity, token: tokens.PodToken
    ) -> tuple[list[str], dict[str, str], list[volumes.BindMount]]:
        meta, spec = pod["metadata"], pod.get("spec") or {}
        claim_paths = {c: volumes.resolve_claim(self.core, meta["namespace"], c) for c in volumes.claim_names(pod)}
        sources = volumes.volume_sources(pod, pod_dir=str(pod_dir), claim_paths=claim_paths)
        volumes.prepare_sources(pod, sources)
        mounts = volumes.bind_mounts(pod, sources=sources)
        if mounts and self.unshare_error:
            raise StartError(
                f"cannot mount the pod's volumes: private mount namespace not permitted "
                f"({self.unshare_error}); run the standalone agent as root"
            )
        home = pod_dir / processes.HOME
        # In its own mount namespace the pod sees its folder at one fixed path, as a container sees its
        # secrets, and needs no way through the agent's folders to it.
        seen = Path(processes.POD_HOME) if not self.unshare_error else home
        if not self.unshare_error:
            mounts.append(volumes.BindMount(str(home), processes.POD_HOME, False))
        base = processes.base_env(pod, seen)
        token.files = volumes.write_projected(pod, sources, ca_pem=self.target.ca_pem, core=self.core)
        if spec.get("automountServiceAccountToken") is not False:
            token.files.insert(0, home / "token")
            config = podspec.kubeconfig(
                server=self.target.server,
                token_file=str(seen / "token"),
                namespace=meta["namespace"],
                ca_pem=self.target.ca_pem,
                insecure=self.target.insecure,
            )
            tokens.write_private(home / "kubeconfig", json.dumps(config, indent=1), who)
            base["KUBECONFIG"] = str(seen / "kubeconfig")
        if token.files:
            token.issue(self.core, pod, seconds=self.token_seconds, renew_after=self.token_renew_seconds)
        if os.geteuid() == 0:
            volumes.own_empty_dirs(pod, sources, uid=who.uid, gid=who.gid, fs_group=_fs_group(pod))
        env, skipped = podspec.container_env(pod, base=base)
        if skipped:
            log.warning("pod %s: env %s not provided by the standalone agent", podspec.pod_key(pod), skipped)
        argv = podspec.container_argv(pod, env)
        if not argv:
            raise StartError("the container has no command: the standalone agent runs commands, not images")
        return argv, env, mounts

    def _not_started(self, pod: dict[str, Any], exc: Exception) -> None:
        """A pod that could not be prepared: tried again shortly when the API server did not answer (a
        restart is no fault of the pod, and failing it would cost the job an attempt), else Failed."""
        if api_unreachable(exc):
            log.warning(
                "pod %s: API server not answering while preparing it (%s): trying again", podspec.pod_key(pod), exc
            )
            self._defer(pod)
        elif isinstance(exc, (volumes.VolumeError, StartError, tokens.TokenError, cgroups.CgroupError, OSError)):
            self._fail_start(pod, str(exc))
        elif isinstance(exc, ApiException):
            self._fail_start(pod, f"API error preparing the pod: {exc.status} {exc.reason}")
        else:
            raise exc

    def _defer(self, pod: dict[str, Any]) -> None:
        self.deferred[pod["metadata"]["uid"]] = (time.monotonic() + START_RETRY_SECONDS, pod)

    def _start_deferred(self) -> None:
        now = time.monotonic()
        for uid, (at, pod) in list(self.deferred.items()):
            if at <= now:
                del self.deferred[uid]
                self.handle(pod)

    def _renew_tokens(self) -> None:
        now = time.monotonic()
        for proc in self.procs.values():
            if proc.kill_at is None and proc.token.due(now):
                try:
                    proc.token.issue(
                        self.core, proc.pod, seconds=self.token_seconds, renew_after=self.token_renew_seconds
                    )
                    log.info("pod %s: token renewed", podspec.pod_key(proc.pod))
                except (tokens.TokenError, OSError) as exc:
                    log.warning("pod %s: token renewal failed, retrying: %s", podspec.pod_key(proc.pod), exc)
                    proc.token.renew_at = now + tokens.RETRY_SECONDS

    def _fail_start(self, pod: dict[str, Any], message: str, *, reason: str = "StartError") -> None:
        log.warning("pod %s cannot start: %s", podspec.pod_key(pod), message)
        self.finished.add(pod["metadata"]["uid"])
        status = podstatus.terminated_status(
            pod,
            code=podstatus.START_ERROR_EXIT_CODE,
            message=podstatus.truncate_message(message),
            started=None,
            finished=self.now(),
            reason=reason,
        )
        self._patch_status(pod, status)

    # --------------------------------------------------------------------------------- reap, stop

    def reap(self) -> None:
        """Report processes that exited; SIGKILL those past their grace period."""
        for uid, proc in list(self.procs.items()):
            rc = proc.popen.poll()
            if rc is None:
                if proc.kill_at is not None and time.monotonic() >= proc.kill_at:
                    log.info("pod %s: grace period over, SIGKILL", podspec.pod_key(proc.pod))
                    processes.signal_group(proc.popen.pid, signal.SIGKILL)
                    proc.kill_at = float("inf")
                continue
            del self.procs[uid]
            self.finished.add(uid)
            processes.signal_group(proc.popen.pid, signal.SIGKILL)  # stragglers the command left in its group
            cgroups.remove(proc.groups)  # and any that left the group (setsid): the cgroup holds them all
            self._report_exit(proc, rc)
            if proc.kill_at is not None:
                self._delete(proc.pod)

    def _report_exit(self, proc: LocalProcess, rc: int) -> None:
        start_error = processes.read_text(proc.pod_dir / "start-error")
        policy = ((proc.pod.get("spec") or {}).get("containers") or [{}])[0].get("terminationMessagePolicy")
        if start_error:
            code, reason, message = podstatus.START_ERROR_EXIT_CODE, "StartError", start_error
        else:
            code, reason = podstatus.exit_code(rc), None
            log_text = processes.read_tail(proc.pod_dir / f"{podstatus.container_name(proc.pod)}.log")
            message = podstatus.termination_message(
                termination_log=processes.read_private(proc.pod_dir / processes.HOME / "termination-log"),
                log_text=log_text,
                policy=policy,
                failed=code != 0,
            )
        pod_reason = "NodeShutdown" if proc.shutdown else None
        log.info("pod %s exited with %d%s", podspec.pod_key(proc.pod), code, f" ({reason})" if reason else "")
        status = podstatus.terminated_status(
            proc.pod,
            code=code,
            message=message,
            started=proc.started,
            finished=self.now(),
            reason=reason,
            pod_reason=pod_reason,
            pod_message="the ffrtmp agent stopped" if pod_reason else None,
            pid=proc.popen.pid,
        )
        self._patch_status(proc.pod, status)

    def _mark_lost(self, pod: dict[str, Any]) -> None:
        log.warning("pod %s was Running but this agent has no process for it: marking it Failed", podspec.pod_key(pod))
        processes.kill_leftover(self.pod_dir(pod))
        self.finished.add(pod["metadata"]["uid"])
        running = (((pod.get("status") or {}).get("containerStatuses") or [{}])[0].get("state") or {}).get("running")
        started = api.parse_time((running or {}).get("startedAt"))
        status = podstatus.terminated_status(
            pod,
            code=137,
            message="The container could not be located: the ffrtmp agent restarted",
            started=started,
            finished=self.now(),
            reason="ContainerStatusUnknown",
            pod_reason="NodeLost",
            pod_message="agent restarted: the pod's process is gone",
        )
        self._patch_status(pod, status)

    def stop_all(self) -> None:
        """Graceful shutdown: SIGTERM every job process, SIGKILL after a grace period, report them."""
        for proc in self.procs.values():
            proc.shutdown = True
            processes.signal_main(proc.popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + SHUTDOWN_GRACE_SECONDS
        while self.procs and time.monotonic() < deadline:
            self.reap()
            time.sleep(0.1)
        for proc in self.procs.values():
            proc.kill_at = 0.0
        while self.procs:
            self.reap()
            time.sleep(0.05)

    # ---------------------------------------------------------------------------------- API writes

    def _patch_status(self, pod: dict[str, Any], body: dict[str, Any]) -> None:
        meta = pod["metadata"]
        uid = meta["uid"]
        self.unsent.pop(uid, None)  # a newer status supersedes an unsent older one
        try:
            self.core.patch_namespaced_pod_status(meta["name"], meta["namespace"], body, _content_type=api.MERGE_PATCH)
        except ApiException as exc:
            if exc.status != 404:
                log.warning("pod %s: status write failed: %s %s", podspec.pod_key(pod), exc.status, exc.reason)
            if exc.status == 429 or exc.status >= 500:
                self.unsent[uid] = (pod, body)
        except Exception as exc:  # connection refused/reset: the API server is down or restarting
            log.warning("pod %s: status write failed, will retry: %s", podspec.pod_key(pod), exc)
            self.unsent[uid] = (pod, body)

    def _resend_status(self) -> None:
        now = time.monotonic()
        if not self.unsent or now < self._resend_at:
            return
        self._resend_at = now + 1.0
        for pod, body in list(self.unsent.values()):
            self._patch_status(pod, body)

    def _annotate(self, pod: dict[str, Any], annotations: dict[str, str]) -> None:
        meta = pod["metadata"]
        try:
            self.core.patch_namespaced_pod(
                meta["name"],
                meta["namespace"],
                {"metadata": {"annotations": annotations}},
                _content_type=api.MERGE_PATCH,
            )
        except ApiException as exc:
            if exc.status != 404:
                log.warning("pod %s: annotation failed: %s", podspec.pod_key(pod), exc.reason)
        except Exception as exc:  # API server unreachable: the annotation only helps `ffrtmp logs`
            log.warning("pod %s: annotation failed: %s", podspec.pod_key(pod), exc)

    def _delete(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        body = {"gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}}
        try:
            self.core.delete_namespaced_pod(meta["name"], meta["namespace"], body=body)
            log.info("pod %s deleted (gracePeriodSeconds=0)", podspec.pod_key(pod))
        except ApiException as exc:
            if exc.status not in (404, 409):
                log.warning("pod %s: delete failed: %s", podspec.pod_key(pod), exc.reason)
        except Exception as exc:  # API server unreachable: the next list finds the pod and finalises it
            log.warning("pod %s: delete failed: %s", podspec.pod_key(pod), exc)


class StartError(Exception):
    """The pod's process cannot be started; the pod fails with this message."""


def _fs_group(pod: dict[str, Any]) -> int | None:
    value = ((pod.get("spec") or {}).get("securityContext") or {}).get("fsGroup")
    return int(value) if value is not None else None


def _detect_cgroups() -> cgroups.Hierarchy | None:
    try:
        return cgroups.detect()
    except OSError as exc:
        log.warning("cgroups unavailable (%s): pods with resource limits will be refused", exc)
        return None
