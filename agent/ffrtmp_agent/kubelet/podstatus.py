"""Pod status as a kubelet reports it, for the standalone agent: Running with a started container, then
Succeeded/Failed with the terminated state (exit code, reason, termination message).

Pure builders over plain data; the caller merge-patches the result onto pods/status. Times are metav1.Time
(whole seconds), as a kubelet writes them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import ffrtmp_api as api

MAX_MESSAGE_BYTES = 4096  # the kubelet's limit on a termination message
MAX_LOG_LINES = 80  # FallbackToLogsOnError takes at most this many lines from the log's tail
START_ERROR_EXIT_CODE = 128  # what container runtimes report when the process never started


def exit_code(returncode: int) -> int:
    """Popen's returncode as a container exit code: killed by signal N is 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


def truncate_message(text: str, limit: int = MAX_MESSAGE_BYTES) -> str:
    """At most `limit` bytes of UTF-8, keeping the end (where the error usually is)."""
    raw = text.encode("utf-8", errors="replace")
    if len(raw) <= limit:
        return text
    return raw[-limit:].decode("utf-8", errors="ignore")


def log_tail(text: str, *, lines: int = MAX_LOG_LINES) -> str:
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


def termination_message(*, termination_log: str, log_text: str, policy: str | None, failed: bool) -> str:
    """The kubelet's rule: the termination log; with FallbackToLogsOnError and a failure, else the log tail."""
    if termination_log.strip():
        return truncate_message(termination_log)
    if failed and policy == "FallbackToLogsOnError":
        return truncate_message(log_tail(log_text))
    return ""


def _conditions(*, ready: bool, now: datetime) -> list[dict[str, Any]]:
    at = api.stamp_seconds(now)
    flag = "True" if ready else "False"
    return [
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": at},
        {"type": "Initialized", "status": "True", "lastTransitionTime": at},
        {"type": "ContainersReady", "status": flag, "lastTransitionTime": at},
        {"type": "Ready", "status": flag, "lastTransitionTime": at},
    ]


def container_name(pod: dict[str, Any]) -> str:
    containers = (pod.get("spec") or {}).get("containers") or [{}]
    return containers[0].get("name") or api.RUNNER_CONTAINER


def _image(pod: dict[str, Any]) -> str:
    containers = (pod.get("spec") or {}).get("containers") or [{}]
    return containers[0].get("image") or ""


def running_status(pod: dict[str, Any], *, pid: int, started: datetime) -> dict[str, Any]:
    return {
        "status": {
            "phase": "Running",
            "hostIP": "127.0.0.1",
            "podIP": "127.0.0.1",
            "startTime": api.stamp_seconds(started),
            "conditions": _conditions(ready=True, now=started),
            "containerStatuses": [
                {
                    "name": container_name(pod),
                    "image": _image(pod),
                    "imageID": "",
                    "containerID": f"local-process://{pid}",
                    "ready": True,
                    "started": True,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": api.stamp_seconds(started)}},
                }
            ],
        }
    }


def terminated_status(
    pod: dict[str, Any],
    *,
    code: int,
    message: str,
    started: datetime | None,
    finished: datetime,
    reason: str | None = None,
    pod_reason: str | None = None,
    pod_message: str | None = None,
    pid: int | None = None,
) -> dict[str, Any]:
    """Succeeded for exit 0, else Failed; the container reason is Completed/Error unless given
    (StartError, ContainerStatusUnknown); `pod_reason`/`pod_message` explain a failure the process did
    not cause (NodeLost, NodeShutdown) on the pod itself, as the kubelet does."""
    reason = reason or ("Completed" if code == 0 else "Error")
    terminated: dict[str, Any] = {
        "exitCode": code,
        "reason": reason,
        "startedAt": api.stamp_seconds(started or finished),
        "finishedAt": api.stamp_seconds(finished),
    }
    if message:
        terminated["message"] = message
    if pid is not None:
        terminated["containerID"] = f"local-process://{pid}"
    status: dict[str, Any] = {
        "phase": "Succeeded" if code == 0 else "Failed",
        "hostIP": "127.0.0.1",
        "conditions": _conditions(ready=False, now=finished),
        "containerStatuses": [
            {
                "name": container_name(pod),
                "image": _image(pod),
                "imageID": "",
                "ready": False,
                "started": False,
                "restartCount": 0,
                "state": {"terminated": terminated},
            }
        ],
    }
    if started is not None:
        status["startTime"] = api.stamp_seconds(started)
    if pod_reason:
        status["reason"] = pod_reason
        status["message"] = (pod_message or message)[:1024]
    return {"status": status}
