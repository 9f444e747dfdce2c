"""ServiceAccount tokens of standalone job pods: short-lived (TokenRequest, bound to the pod, an hour by
default), written only where the pod's user can read them (0600, owned by it, in its 0700 folder), and
renewed before they expire, as a kubelet renews projected tokens: a live job runs for days on tokens that
each last an hour. The runner re-reads its token file when it changes (kubelite), so a renewal is seen
at the next request.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from .admit import Identity

MIN_SECONDS = 600  # the API server refuses TokenRequests for less than 10 minutes
DEFAULT_SECONDS = 3600
RENEW_FRACTION = 0.8  # renew once 80 % of the lifetime has passed (a kubelet does the same)
RETRY_SECONDS = 10.0


class TokenError(Exception):
    """No token could be issued; the message names the ServiceAccount and the API's answer."""


def request(core: client.CoreV1Api, pod: dict[str, Any], *, seconds: int) -> tuple[str, int]:
    """(a token bound to `pod` for its ServiceAccount, the lifetime the server granted in seconds)."""
    meta = pod["metadata"]
    sa = (pod.get("spec") or {}).get("serviceAccountName") or "default"
    body = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {
            "expirationSeconds": max(MIN_SECONDS, seconds),
            "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": meta["name"], "uid": meta["uid"]},
        },
    }
    try:
        resp = core.create_namespaced_service_account_token(sa, meta["namespace"], body)
    except ApiException as exc:
        raise TokenError(
            f"TokenRequest for serviceaccount {meta['namespace']}/{sa} failed: {exc.status} {exc.reason}"
        ) from exc
    granted = resp.spec.expiration_seconds or body["spec"]["expirationSeconds"]
    return resp.status.token, int(granted)


def write_private(path: Path, text: str, owner: Identity | None) -> None:
    """Writes `text` to `path` atomically, 0600 and owned by the pod's user (root keeps it otherwise)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        if owner is not None and os.geteuid() == 0:
            os.fchown(fd, owner.uid, owner.gid)  # the fd, never the name: the pod owns this folder
        fh.write(text)
    os.replace(tmp, path)


@dataclass
class PodToken:
    """A pod's token files and when to renew them (monotonic seconds)."""

    files: list[Path] = field(default_factory=list)
    renew_at: float = 0.0
    owner: Identity | None = None

    def issue(
        self, core: client.CoreV1Api, pod: dict[str, Any], *, seconds: int, renew_after: float | None = None
    ) -> str:
        """Requests a token and writes it to every file; `renew_after` overrides the renewal time (tests)."""
        token, granted = request(core, pod, seconds=seconds)
        for path in self.files:
            write_private(path, token, self.owner)
        self.renew_at = time.monotonic() + (renew_after if renew_after is not None else granted * RENEW_FRACTION)
        return token

    def due(self, now: float) -> bool:
        return bool(self.files) and now >= self.renew_at
