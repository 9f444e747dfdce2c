"""The `ffrtmp` CLI as people meet it, run as a subprocess: `--help` of the program and of every command,
directly and as `kubectl transcode`, exits 0; every mistake (bad flag, unknown job or node, a job that has
already ended, no kubeconfig, an unreachable cluster, a file path under no volume) is one line on stderr
with a non-zero exit; and each `--volume` form the README shows reaches the API server as a job volume."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from ffrtmp_cli.main import build_parser

from tests.support.cli import PLUGIN, create_job, one_line_error, run_cli


def _command_paths(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command of the parser, aliases left out: (), ("submit",), ..., ("nodes", "describe")."""
    yield path
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            seen: set[int] = set()
            for name, sub in action.choices.items():
                if id(sub) not in seen:
                    seen.add(id(sub))
                    yield from _command_paths(sub, (*path, name))


COMMANDS = list(_command_paths(build_parser()))


@pytest.fixture
def no_cluster(tmp_path: Path) -> dict[str, str]:
    """An environment whose kubeconfig names a server on a closed loopback port."""
    kubeconfig = tmp_path / "down.kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "down",
                "clusters": [
                    {"name": "down", "cluster": {"server": "https://127.0.0.1:1", "insecure-skip-tls-verify": True}}
                ],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "down", "context": {"cluster": "down", "user": "u"}}],
            }
        )
    )
    return {**os.environ, "KUBECONFIG": str(kubeconfig)}


# ------------------------------------------------------------------------------------------------ help


def test_given_every_command_then_help_prints_usage_and_exits_zero():
    assert ("nodes", "describe") in COMMANDS and ("submit",) in COMMANDS
    for path in COMMANDS:
        done = run_cli(*path, "--help")
        assert done.returncode == 0, (path, done.stderr)
        assert done.stdout.startswith(f"usage: {' '.join(('ffrtmp', *path))} "), done.stdout[:200]
        assert done.stderr == "", (path, done.stderr)
    assert "register-python-argcomplete ffrtmp" in run_cli("--help").stdout
    assert "--volume NAME:MOUNTPATH:SOURCE" in run_cli("submit", "--help").stdout


def test_given_the_kubectl_plugin_then_kubectl_transcode_help_works_for_every_command(control_plane):
    kubectl = str(Path(control_plane.bin_dir) / "kubectl")
    env = control_plane.env()
    env["PATH"] = f"{Path(PLUGIN).parent}{os.pathsep}{env['PATH']}"
    for path in COMMANDS:
        done = subprocess.run(
            [kubectl, "transcode", *path, "--help"], capture_output=True, text=True, env=env, timeout=60
        )
        assert done.returncode == 0, (path, done.stderr)
        assert done.stdout.startswith(f"usage: {' '.join(('kubectl transcode', *path))} "), done.stdout[:200]


# -------------------------------------------------------------------------------- mistakes, no cluster


@pytest.mark.parametrize(
    ("args", "starts"),
    [
        (("submit", "--bogus"), "ffrtmp submit: error: unrecognized arguments: --bogus (see 'ffrtmp submit --help')"),
        (("frobnicate",), "ffrtmp: error: argument COMMAND: invalid choice: 'frobnicate'"),
        (("status",), "ffrtmp status: error: the following arguments are required: name"),
        (("list", "--phase", "queued"), "ffrtmp list: error: argument --phase: invalid choice: 'queued'"),
        (("nodes",), "ffrtmp nodes: error: the following arguments are required: SUBCOMMAND"),
        (("nodes", "describe", "a", "b"), "ffrtmp nodes describe: error: unrecognized arguments: b"),
        (("status", "x", "--interval", "soon"), "ffrtmp status: error: argument --interval: invalid float value"),
        (("submit", "--output", "file:///o.mp4"), "ffrtmp submit: error: give exactly one of --input"),
        (
            ("submit", "--test-source", "testsrc2", "--output", "rtmp://h/l/k", "--volume", "m:/m:nfs=x"),
            "ffrtmp submit: error: --volume 'm:/m:nfs=x': the source 'nfs=x' must be pvc=CLAIM",
        ),
        # Checked before any request: the kubeconfig's server is unreachable, yet the hint comes first.
        (
            ("submit", "--test-source", "testsrc2", "--output", "file:///media/out/o.mp4"),
            "ffrtmp submit: error: --output file:///media/out/o.mp4 lies under no volume (mounted: none); "
            "add --volume media:/media:SOURCE",
        ),
        (
            ("submit", "--input", "file:///in/a.mov", "--output", "file:///out/o.mp4", "--volume", "out:/out:emptyDir"),
            "ffrtmp submit: error: --input file:///in/a.mov lies under no volume (mounted: /out)",
        ),
    ],
)
def test_given_a_bad_command_line_then_one_line_and_exit_2(no_cluster, args, starts):
    one_line_error(run_cli(*args, env=no_cluster), 2, starts)


def test_given_no_reachable_cluster_then_one_line_and_exit_1(no_cluster, tmp_path):
    one_line_error(run_cli("list", env=no_cluster), 1, "error: cannot reach the API server: ")
    one_line_error(run_cli("pause", "x", env=no_cluster), 1, "error: cannot reach the API server: ")
    one_line_error(run_cli("nodes", "list", env=no_cluster), 1, "error: cannot reach the API server: ")
    one_line_error(run_cli("list", "--kubeconfig", str(tmp_path / "absent")), 1, "error: kubeconfig ")
    one_line_error(run_cli("list", "--context", "nope", env=no_cluster), 1, "error: no usable kube config: ")
    env = {k: v for k, v in no_cluster.items() if k not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST")}
    env["HOME"] = str(tmp_path)  # no ~/.kube/config either
    one_line_error(run_cli("list", env=env), 1, "error: no kubeconfig (")


# ----------------------------------------------------------------------------- mistakes, real cluster


@pytest.fixture
def cli(control_plane, namespace):
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, "-n", namespace, env=control_plane.env())

    return run


def test_given_an_unknown_job_or_node_then_every_command_says_not_found_in_one_line(cli, namespace):
    for verb in ("status", "pause", "resume", "cancel", "logs"):
        line = one_line_error(cli(verb, "nope"), 1, "error: ")
        assert line == f'error: transcodejob "nope" not found in namespace "{namespace}"', verb
    assert one_line_error(cli("nodes", "describe", "nope"), 1, "error: ") == 'error: node "nope" not found'
    one_line_error(cli("status", "nope", "--follow"), 1, 'error: transcodejob "nope" not found')


def test_given_a_finished_job_then_pause_resume_and_cancel_refuse_in_one_line(cli, api_client, namespace):
    create_job(api_client, namespace, "done", phase="Completed")
    create_job(api_client, namespace, "broke", phase="Failed")
    for verb in ("pause", "resume", "cancel"):
        assert one_line_error(cli(verb, "done"), 1, "error: ") == "error: transcodejob done is already Completed"
        assert one_line_error(cli(verb, "broke"), 1, "error: ") == "error: transcodejob broke is already Failed"
    one_line_error(
        cli("status", "broke", "--follow"),
        1,
        "error: transcodejob broke Failed",
        stdout=f"Failed      [{'-' * 30}]    0.0%\n",
    )  # the progress line, then the error


def test_given_a_job_the_api_server_refuses_then_its_message_is_one_line(cli):
    # Passes the CLI's own checks, refused by the schema (a name that is no DNS subdomain).
    refused = cli("submit", "--name", "Bad_Name", "--test-source", "testsrc2", "--output", "rtmp://h/live/k")
    assert "metadata.name" in one_line_error(refused, 1, "error: ")


# ------------------------------------------------------------------------------------ --volume forms

VOLUME_FORMS = [  # each form the README documents, and the spellings it accepts besides
    ("media:/media:pvc=media", {"persistentVolumeClaim": {"claimName": "media"}}),
    ("media:/media:persistentVolumeClaim=media", {"persistentVolumeClaim": {"claimName": "media"}}),
    ("media:/media:hostPath=/srv/media", {"hostPath": {"path": "/srv/media"}}),
    ("media:/media:emptyDir", {"emptyDir": {}}),
    ("media:/media:emptyDir=Memory", {"emptyDir": {"medium": "Memory"}}),
]


def test_given_each_volume_form_then_the_job_reaches_the_api_with_that_volume(cli, kubectl, namespace):
    for i, (flag, source) in enumerate(VOLUME_FORMS):
        name = f"vol-{i}"
        done = cli(
            "submit",
            "--name",
            name,
            "--test-source",
            "testsrc2",
            "--duration",
            "1",
            "--output",
            f"file:///media/out/{name}.mp4",
            "--volume",
            flag,
        )
        assert done.returncode == 0, (flag, done.stderr)
        assert done.stdout.strip() == f"transcodejob.ffrtmp.io/{name} created"
        spec = json.loads(kubectl("get", "tj", name, "-n", namespace, "-o", "json").stdout)["spec"]
        [volume] = spec["volumes"]
        assert (volume["name"], volume["mountPath"]) == ("media", "/media"), flag
        for kind, fields in source.items():  # the server adds defaults (readOnly: false)
            assert volume[kind].items() >= fields.items(), (flag, volume)
