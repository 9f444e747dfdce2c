"""The runner's view of its own TranscodeJob: read it, watch it for spec.paused / spec.canceled, and
merge-patch status.progress and status.result (the only status fields the runner writes).

Credentials: $KUBECONFIG when set (the standalone agent writes one holding the pod's token), else the
in-cluster service account. The Role allows transcodejobs get/watch and transcodejobs/status patch only.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from kubernetes import client, config, watch

from ffrtmp_operator import api

log = logging.getLogger(__name__)


def api_client_from_environment() -> client.ApiClient:
    if os.environ.get("KUBECONFIG"):
        return config.new_client_from_config(config_file=os.environ["KUBECONFIG"])
    configuration = client.Configuration()
    config.load_incluster_config(client_configuration=configuration)
    return client.ApiClient(configuration)


class JobClient:
    def __init__(self, *, namespace: str, name: str, make_api: Callable[[], client.ApiClient]) -> None:
        self.namespace = namespace
        self.name = name
        self._make_api = make_api
        self._custom = client.CustomObjectsApi(make_api())

    def get(self) -> dict[str, Any]:
        return self._custom.get_namespaced_custom_object(api.GROUP, api.VERSION, self.namespace, api.PLURAL, self.name)

    def patch_status(self, status: dict[str, Any]) -> None:
        """Merge patch on the status subresource; failures are logged, never fatal (progress is advisory)."""
        try:
            self._custom.patch_namespaced_custom_object_status(
                api.GROUP, api.VERSION, self.namespace, api.PLURAL, self.name, {"status": status}
            )
        except Exception as exc:  # noqa: BLE001 - an apiserver hiccup must not kill the encode
            log.warning("status patch failed: %s", exc)

    def watch_spec(self, on_spec: Callable[[dict[str, Any]], None], stop: threading.Event) -> None:
        """Calls on_spec(spec) with the current spec, then on every change, until `stop` is set.

        get + watch from its resourceVersion (the Role has no list); a broken or expired watch starts
        over with a fresh get, so a missed event is never lost for long.
        """
        custom = client.CustomObjectsApi(self._make_api())  # own connection pool for this thread
        while not stop.is_set():
            try:
                obj = custom.get_namespaced_custom_object(api.GROUP, api.VERSION, self.namespace, api.PLURAL, self.name)
                on_spec(obj.get("spec") or {})
                stream = watch.Watch()
                for event in stream.stream(
                    custom.list_namespaced_custom_object,
                    api.GROUP,
                    api.VERSION,
                    self.namespace,
                    api.PLURAL,
                    field_selector=f"metadata.name={self.name}",
                    resource_version=obj["metadata"]["resourceVersion"],
                    timeout_seconds=30,
                    _request_timeout=40,
                ):
                    if stop.is_set():
                        stream.stop()
                        break
                    if event["type"] in ("ADDED", "MODIFIED"):
                        on_spec(event["object"].get("spec") or {})
                    elif event["type"] == "DELETED":
                        on_spec({"canceled": True})  # the job is gone: nobody wants the output
                        return
            except client.exceptions.ApiException as exc:
                if exc.status == 404:
                    on_spec({"canceled": True})
                    return
                log.warning("watch of %s/%s failed: %s", self.namespace, self.name, exc.reason)
                stop.wait(1.0)
            except Exception as exc:  # noqa: BLE001 - connection resets: start over
                log.warning("watch of %s/%s broke: %s", self.namespace, self.name, exc)
                stop.wait(1.0)


def now_rfc3339(clock: Callable[[], float] = time.time) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(clock()))
