"""Hostile strings in every TranscodeJob string field the CRD lets them into (`;`, `$(...)`, backticks,
`|`, `&`, values starting with `-`), run through the whole stack: no shell is ever used, the plan's argv
stays a list with each value one element, and nothing is executed (the `touch` marker files never appear).
The job still does exactly what it says: it reads and writes the files so named. Paths with spaces,
newlines or other control characters are refused by the API server itself (422, the field named).
"""

from __future__ import annotations

import json
import posixpath
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ffrtmp_api as api
import pytest
from kubernetes import client

from tests.support.runner import make_media
from tests.support.stack import RUN_LABEL, Stack

pytestmark = pytest.mark.e2e


@pytest.fixture
def marker() -> Iterator[Path]:
    path = Path(f"/tmp/pwned-{uuid.uuid4().hex}")
    yield path
    path.unlink(missing_ok=True)


def _payloads(marker: Path) -> dict[str, str]:
    """Shell payloads that would create `marker` if any shell ever saw them."""
    return {
        "no_space": f"$(touch${{IFS}}{marker});`touch${{IFS}}{marker}`|touch${{IFS}}{marker}&",  # URLs allow no spaces
        "spaced": f"; touch {marker}; $(touch {marker}) `touch {marker}`\n-rf | touch {marker} &",
        "dash": f"-rf $(touch {marker})",
    }


def test_given_hostile_strings_in_every_string_field_then_nothing_is_executed_and_argv_stays_a_list(
    stack: Stack, tmp_path: Path, marker: Path, request: pytest.FixtureRequest
) -> None:
    p = _payloads(marker)
    host_dir = tmp_path / f"vol{p['no_space']}"  # hostPath.path: any absolute path in normal form
    (host_dir / "in").mkdir(parents=True)
    (host_dir / "out").mkdir()
    in_name = f"-i {p['no_space']}.mp4".replace(" ", "")
    out_name = f"-y{p['no_space']}.mp4"
    # The marker's own "/" make the names nested folders; the job must still find and make them.
    source = host_dir / "in" / in_name
    source.parent.mkdir(parents=True, exist_ok=True)
    make_media(tmp_path / "plain.mp4", seconds=1).rename(source)
    (host_dir / "out" / out_name).parent.mkdir(parents=True, exist_ok=True)
    for folder in [host_dir / "out", *(p for p in (host_dir / "out").rglob("*") if p.is_dir())]:
        folder.chmod(0o777)  # the runner may run as the pod's non-root user
    odd_root = Path(f"/tmp/ffrtmp-hostile-{uuid.uuid4().hex[:8]}")  # the agent makes mountpoints on the host
    request.addfinalizer(lambda: shutil.rmtree(odd_root, ignore_errors=True))
    odd_mount = f"{odd_root}/m{p['no_space']}"  # mountPath: a normal form without ':' or whitespace
    spec: dict[str, Any] = {
        "input": {"url": f"file:///media/in/{in_name}"},
        "output": {"url": f"file:///media/out/{out_name}"},
        "volumes": [
            {"name": "media", "mountPath": "/media", "hostPath": {"path": str(host_dir)}},
            {"name": "odd", "mountPath": odd_mount, "emptyDir": {}},
        ],
        "video": {"codec": "h264", "preset": "ultrafast"},
    }
    body = {
        "apiVersion": api.API_VERSION,
        "kind": api.KIND,
        "metadata": {"name": "hostile", "annotations": {"note": p["spaced"], "dash": p["dash"]}},
        "spec": stack.spec("hostile", **spec),
    }
    stack.agent(slots=2)
    stack.operator().wait_active()
    stack.wait_agents()
    # Whitespace and newlines in paths never reach a pod: the API server refuses them, naming the field.
    for field, volume in (
        ("mountPath", {"name": "odd", "mountPath": f"/m{p['spaced']}", "emptyDir": {}}),
        (
            "hostPath.path",
            {"name": "odd", "mountPath": "/odd", "hostPath": {"path": str(tmp_path / p["spaced"].strip())}},
        ),
    ):
        volumes = [spec["volumes"][0], volume]
        spaced = {**body, "metadata": {"name": "spaced"}, "spec": {**body["spec"], "volumes": volumes}}
        with pytest.raises(client.exceptions.ApiException) as refused:
            stack.custom.create_namespaced_custom_object(api.GROUP, api.VERSION, stack.ns, api.PLURAL, spaced)
        assert refused.value.status == 422 and f"spec.volumes[1].{field}" in refused.value.body, refused.value.body
    stack.custom.create_namespaced_custom_object(api.GROUP, api.VERSION, stack.ns, api.PLURAL, body)
    # nodeSelector values are free strings too: this one matches no node, so the job must just wait.
    stack.create("hostile-selector", nodeSelector={stack_label(): stack.run_id, "x": p["dash"][:63]})

    status = stack.wait_phase("hostile", ("Completed", "Failed"), timeout=120)
    assert status["phase"] == "Completed", status
    written = host_dir / "out" / out_name
    assert written.is_file() and written.stat().st_size > 0, sorted((host_dir / "out").rglob("*"))
    (pod,) = stack.pods("hostile")
    container = pod.spec.containers[0]
    assert container.command == ["ffrtmp-runner"] and not container.args
    plan = json.loads(next(e.value for e in container.env if e.name == api.ENV_PLAN))
    argv = plan["ffmpegArgs"]
    assert isinstance(argv, list) and argv[0] == "ffmpeg" and all(isinstance(a, str) for a in argv)
    assert f"file:/media/in/{in_name}" in argv  # the whole hostile path is one element, pinned to file:
    folder, final = posixpath.split(f"/media/out/{out_name}")  # the marker's "/" nest the name in folders
    assert argv[-1] == f"file:{folder}/.{final.removesuffix('.mp4')}.ffrtmp-1.part.mp4"  # temp name, renamed
    assert not {"sh", "bash", "-c"} & set(argv)
    assert status["attempts"] == 1

    time.sleep(3)
    assert stack.status("hostile-selector").get("phase") == "Queued"
    assert not stack.pods("hostile-selector")
    assert not marker.exists(), "a hostile string was executed by a shell"
    runner_log = "".join(stack.runner_logs("hostile").values())
    assert "starting ffmpeg" in runner_log
    print(
        f"\nFIGURE hostile_fields=input.url,output.url,volumes[].mountPath,hostPath.path,nodeSelector,"
        f"annotations executed=0 marker={marker.name}"
    )


def stack_label() -> str:

    return RUN_LABEL
