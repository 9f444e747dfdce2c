"""The standalone agent's admission reads: for a pod bound to this node, its TranscodeJob, its namespace's
labels and the operator's pod-signing key (Secret ffrtmp-pod-signing-key in the system namespace, cached;
read again, at most every 30 s, when a pod's signature does not verify: the operator may have made a new
key). The decision itself is admit.refusal, pure.
"""

from __future__ import annotations

import base64
import logging
import os
import time
from typing import Any

import ffrtmp_api as api
from ffrtmp_api import podsign
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from . import admit

log = logging.getLogger(__name__)
KEY_REFRESH_SECONDS = 30.0


class Gate:
    def __init__(self, core: client.CoreV1Api, *, system_namespace: str) -> None:
        self.core = core
        self.custom = client.CustomObjectsApi(core.api_client)
        self.system_namespace = system_namespace
        self._key: bytes | None = None
        self._key_read_at = float("-inf")

    def refusal(self, pod: dict[str, Any]) -> str | None:
        """Why this pod may not run here, or None. Raises ApiException when the API cannot say (the pod is
        tried again at its next event or list; nothing ran)."""
        shape = admit.shape_problem(pod)
        if shape:
            return shape
        who = admit.identity(pod)
        if who is not None and os.geteuid() != 0 and who.uid != os.geteuid():
            return f"the agent runs as uid {os.geteuid()} and cannot switch to runAsUser {who.uid}: run it as root"
        namespace = pod["metadata"]["namespace"]
        job = self._job(namespace, admit.owner_name(pod) or "")
        labels = dict(self.core.read_namespace(namespace).metadata.labels or {})
        key = self._signing_key()
        if key is not None and not podsign.verify(pod, key):
            key = self._signing_key(reread=True) or key
        return admit.refusal(pod, job=job, namespace_labels=labels, key=key)

    def _job(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self.custom.get_namespaced_custom_object(api.GROUP, api.VERSION, namespace, api.PLURAL, name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def _signing_key(self, *, reread: bool = False) -> bytes | None:
        now = time.monotonic()
        if self._key is not None and not (reread and now - self._key_read_at >= KEY_REFRESH_SECONDS):
            return self._key
        self._key_read_at = now
        try:
            secret = self.core.read_namespaced_secret(podsign.SECRET_NAME, self.system_namespace)
            self._key = base64.b64decode((secret.data or {}).get(podsign.SECRET_KEY) or "") or None
        except ApiException as exc:
            if exc.status not in (403, 404):
                raise
            log.warning(
                "cannot read the pod-signing key %s/%s: %s", self.system_namespace, podsign.SECRET_NAME, exc.reason
            )
        return self._key
