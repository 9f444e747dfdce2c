"""The runner's view of its own TranscodeJob: read it, watch it for spec.paused / spec.canceled, and
merge-patch status.progress and status.result (the only status fields the runner writes).

Credentials: $KUBECONFIG when set (the standalone agent writes one holding the pod's token), else the
in-cluster service account. The Role allows transcodejobs get/watch and transcodejobs/status patch only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import ffrtmp_api as api

from .kubelite import (
    ApiError,
    ClusterConfig,
    KubeClient,
    custom_object_path,
    load_from_environment,
)

log = logging.getLogger(__name__)


class JobClient:
    def __init__(
        self,
        *,
        namespace: str,
        name: str,
        config: ClusterConfig | None = None,
        make_api: Callable[[], KubeClient] | None = None,
    ) -> None:
        """`config` defaults to $KUBECONFIG, else in-cluster; `make_api` (tests) builds each thread's client."""
        self.namespace = namespace
        self.name = name
        if make_api is None:
            settled = config or load_from_environment()

            def default_api() -> KubeClient:
                return KubeClient(settled)

            make_api = default_api
        self._make_api = make_api
        self._kube = make_api()
        self._path = custom_object_path(
            group=api.GROUP, version=api.VERSION, namespace=namespace, plural=api.PLURAL, name=name
        )

    def get(self) -> dict[str, Any]:
        return self._kube.request("GET", self._path)

    def patch_status(self, status: dict[str, Any], *, retry_seconds: float = 0.0) -> bool:
        """Merge patch on the status subresource; failures are logged, never fatal (progress is advisory).
        With `retry_seconds` (the result, which a Completed job must have) it is tried again until then."""
        deadline, delay = time.monotonic() + retry_seconds, 0.5
        while True:
            try:
                self._kube.request(
                    "PATCH", self._path + "/status", body={"status": status}, content_type=api.MERGE_PATCH
                )
                return True
            except Exception as exc:  # noqa: BLE001 - an apiserver hiccup must not kill the encode
                if time.monotonic() + delay > deadline:
                    log.warning("status patch failed: %s", exc)
                    return False
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def watch_spec(
        self,
        on_spec: Callable[[dict[str, Any]], None],
        stop: threading.Event,
        on_object: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        """Calls on_spec(spec) with the current spec, then on every change, until `stop` is set; and
        on_object(job) with the whole job (its status: currency.py), when given.

        get + watch from its resourceVersion (the Role has no list); a broken or expired watch starts
        over with a fresh get, so a missed event is never lost for long.
        """
        kube = self._make_api()  # own connection pool for this thread
        collection = self._path.rsplit("/", 1)[0]
        while not stop.is_set():
            try:
                obj = kube.request("GET", self._path)
                on_spec(obj.get("spec") or {})
                if on_object is not None:
                    on_object(obj)
                query = {
                    "fieldSelector": f"metadata.name={self.name}",
                    "resourceVersion": obj["metadata"]["resourceVersion"],
                    "timeoutSeconds": 30,
                }
                for event in kube.watch(collection, query=query, read_timeout=40):
                    if stop.is_set():
                        break
                    if event["type"] in ("ADDED", "MODIFIED"):
                        on_spec(event["object"].get("spec") or {})
                        if on_object is not None:
                            on_object(event["object"])
                    elif event["type"] == "DELETED":
                        on_spec({"canceled": True})  # the job is gone: nobody wants the output
                        return
            except ApiError as exc:
                if exc.status == 404:
                    on_spec({"canceled": True})
                    return
                log.warning("watch of %s/%s failed: %s", self.namespace, self.name, exc.reason)
                stop.wait(1.0)
            except Exception as exc:  # noqa: BLE001 - connection resets: start over
                log.warning("watch of %s/%s broke: %s", self.namespace, self.name, exc)
                stop.wait(1.0)
