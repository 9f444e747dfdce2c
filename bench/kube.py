"""The benchmark's API client: the runner's small urllib3 client (ffrtmp_agent.runner.kubelite) with one
keep-alive pool its threads share, the watch streams it measures with, and the apiserver's write counters
from its /metrics.

The kubernetes Python client spends milliseconds of CPU per call deserialising models; on a 2-core machine
that would make the benchmark's client, not the apiserver, the ceiling the baseline measures.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import urllib3
from ffrtmp_agent.runner.kubelite import ApiError, ClusterConfig, KubeClient, watch_events

# apiserver_request_total verbs that change stored state (APPLY is server-side apply).
WRITE_VERBS = frozenset({"POST", "PUT", "PATCH", "DELETE", "DELETECOLLECTION", "APPLY"})
_SAMPLE = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


class Kube(KubeClient):
    """KubeClient with a bearer token and a CA file, and a pool of `pool_size` connections shared by the
    bench's threads (they wait for a free one rather than open more)."""

    def __init__(self, *, server: str, token: str, ca_file: Path, pool_size: int = 16) -> None:
        config = ClusterConfig(server=server.rstrip("/"), ca_pem=Path(ca_file).read_text(encoding="utf-8"), token=token)
        super().__init__(config, pool_size=pool_size, block=True, user_agent="ffrtmp-bench")


# ------------------------------------------------------------------------------------------ metrics


class WriteKey(NamedTuple):
    verb: str
    resource: str  # "group/resource[/subresource]", core group as ""
    code: str


def write_counts(kube: Kube) -> Counter[WriteKey]:
    """The apiserver's cumulative apiserver_request_total for write verbs, by verb, resource and code."""
    counts: Counter[WriteKey] = Counter()
    for line in kube.text("/metrics").splitlines():
        m = _SAMPLE.match(line)
        if not m:
            continue
        labels = dict(_LABEL.findall(m.group("labels")))
        if labels.get("verb") not in WRITE_VERBS:
            continue
        resource = f"{labels.get('group', '')}/{labels.get('resource', '')}"
        if labels.get("subresource"):
            resource += "/" + labels["subresource"]
        counts[WriteKey(labels["verb"], resource, labels.get("code", ""))] += int(float(m.group("value")))
    return counts


def writes_delta(before: Counter[WriteKey], after: Counter[WriteKey]) -> dict[str, int]:
    """Writes between two snapshots as {"VERB group/resource[/sub] code": n}, largest first."""
    delta = {f"{k.verb} {k.resource} {k.code}": after[k] - before.get(k, 0) for k in after}
    return dict(sorted(((k, v) for k, v in delta.items() if v > 0), key=lambda kv: -kv[1]))


# -------------------------------------------------------------------------------------------- watch


class Watch:
    """Streams watch events of one collection into `on_event(type, object, seen_at)` in a thread,
    reconnecting from the last resourceVersion. seen_at is time.time() when the line arrived."""

    def __init__(
        self, kube: Kube, path: str, on_event: Callable[[str, dict[str, Any], float], None], *, listed: bool = True
    ) -> None:
        self.kube = kube
        self.path = path
        self.listed = listed  # False: only what happens from now on (no initial list of a large collection)
        self.on_event = on_event
        self.ready = threading.Event()  # set once the initial list is done and the stream is open
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._resp: urllib3.BaseHTTPResponse | None = None
        self._thread = threading.Thread(target=self._run, name=f"watch{path}", daemon=True)

    def start(self) -> Watch:
        self._thread.start()
        if not self.ready.wait(30):
            raise RuntimeError(f"watch {self.path} did not start: {self.errors}")
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._resp is not None:
            try:
                self._resp.shutdown()  # unblocks the reading thread
            except Exception:  # noqa: BLE001 - best effort on an already closed stream
                pass
        self._thread.join(timeout=10)

    def _run(self) -> None:
        rv: str | None = None
        while not self._stop.is_set():
            sep = "&" if "?" in self.path else "?"
            try:
                if rv is None and not self.listed:  # the collection's current version, one item read
                    rv = self.kube.request("GET", f"{self.path}{sep}limit=1")["metadata"]["resourceVersion"]
                if rv is None:  # (re)list; a fresh CRD answers 429 "storage is (re)initializing" for a while
                    listing = self.kube.request("GET", self.path)
                    for item in listing.get("items", []):
                        self.on_event("ADDED", item, time.time())
                    rv = listing["metadata"]["resourceVersion"]
                self._resp = self.kube.stream(
                    f"{self.path}{sep}watch=1&allowWatchBookmarks=true&resourceVersion={rv}", read_timeout=None
                )
                self.ready.set()
                try:
                    for event in watch_events(self._resp):
                        seen = time.time()
                        obj = event.get("object", {})
                        rv = obj.get("metadata", {}).get("resourceVersion", rv)
                        if event.get("type") != "BOOKMARK":
                            self.on_event(event["type"], obj, seen)
                finally:
                    self._resp.close()  # an unfinished stream cannot be reused: its connection goes back closed
                    self._resp.release_conn()
            except ApiError as exc:  # an ERROR event; 410: too old, list again (events in between are re-ADDED)
                if exc.status == 410:
                    rv = None
                if not self._stop.is_set():
                    self.errors.append(repr(exc))
                    time.sleep(0.5)
            except Exception as exc:  # noqa: BLE001 - reconnect; a real failure shows as missing events
                if not self._stop.is_set():
                    self.errors.append(repr(exc))
                    time.sleep(0.5)
