"""Hostile strings in every TranscodeJob string field the CRD lets them into (`;`, `$(...)`, backticks,
`|`, `&`, newlines, values starting with `-`), run through the whole stack: no shell is ever used, the
plan's argv stays a list with each value one element, and nothing is executed (the `touch` marker files
never appear). The job still does exactly what it says: it reads and writes the files so named.
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

import pytest
from kubernetes import client
from runner_support import make_media
from stack_support import Stack

import ffrtmp_api as api


@pytest.fixture
def stack(control_plane: Any, api_client: client.ApiClient, namespace: str, tmp_path: Path) -> Iterator[Stack]:
    s = Stack(env=control_plane.env(), api_client=api_client, namespace=namespace, work=tmp_path)
    yield s
    s.close()


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
        stack: Stack, tmp_path: Path, marker: Path, request: pytest.FixtureRequest) -> None:  # fmt: skip
    p = _payloads(marker)
    host_dir = tmp_path / f"vol{p['spaced']}"  # hostPath.path: any absolute path
    (host_dir / "in").mkdir(parents=True)
    (host_dir / "out").mkdir()
    in_name = f"-i {p['no_space']}.mp4".replace(" ", "")
    out_name = f"-y{p['no_space']}.mp4"
    # The marker's own "/" make the names nested folders; the job must still find and make them.
    source = host_dir / "in" / in_name
    source.parent.mkdir(parents=True, exist_ok=True)
    make_media(tmp_path / "plain.mp4", seconds=1).rename(source)
    (host_dir / "out" / out_name).parent.mkdir(parents=True, exist_ok=True)
    odd_root = Path(f"/tmp/ffrtmp-hostile-{uuid.uuid4().hex[:8]}")  # the agent makes mountpoints on the host
    request.addfinalizer(lambda: shutil.rmtree(odd_root, ignore_errors=True))
    odd_mount = f"{odd_root}/m{p['spaced']}"  # mountPath: anything but ':'
    spec: dict[str, Any] = {
        "input": {"url": f"file:///media/in/{in_name}"},
        "output": {"url": f"file:///media/out/{out_name}"},
        "volumes": [
            {"name": "media", "mountPath": "/media", "hostPath": {"path": str(host_dir)}},
            {"name": "odd", "mountPath": odd_mount, "emptyDir": {}},
        ],
        "video": {"codec": "h264", "preset": "ultrafast"},
    }
    body = {"apiVersion": api.API_VERSION, "kind": api.KIND,
            "metadata": {"name": "hostile",
                         "annotations": {"note": p["spaced"], "dash": p["dash"]}},
            "spec": stack.spec("hostile", **spec)}  # fmt: skip
    stack.agent(slots=2)
    stack.operator().wait_active()
    stack.wait_agents()
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
    print(f"\nFIGURE hostile_fields=input.url,output.url,volumes[].mountPath,hostPath.path,nodeSelector,"
          f"annotations executed=0 marker={marker.name}")


def stack_label() -> str:
    from stack_support import RUN_LABEL

    return RUN_LABEL
