"""Shell completion as a user turns it on: bash evaluates `register-python-argcomplete ffrtmp` and calls the
completion function the way a Tab does; kubectl completes `kubectl transcode` through
kubectl_complete-transcode. Commands, flags and flag values come from the parser; job and node names from
the real API server; with no reachable cluster, names complete to nothing, silently."""

from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

import ffrtmp_api as api
import pytest
from kubernetes import client

from tests.support.cli import FFRTMP, PLUGIN, create_job

BIN = Path(FFRTMP).parent
# One Tab in bash: COMP_* set as readline sets them, then the function `complete -F` registered.
TAB = r"""
eval "$(register-python-argcomplete ffrtmp)"
COMP_LINE="$1"; COMP_POINT=${#COMP_LINE}; COMP_TYPE=9
read -ra COMP_WORDS <<< "$COMP_LINE"; [[ "$COMP_LINE" == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
_python_argcomplete ffrtmp "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"
"""


def _tab(line: str, env: dict[str, str]) -> list[str]:
    """What bash offers for `line` (the cursor at its end)."""
    env = {**env, "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}"}
    done = subprocess.run(["bash", "-c", TAB, "tab", line], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    return [c.rstrip(" ") for c in done.stdout.splitlines() if c]


def _kubectl_tab(control_plane, *words: str) -> list[str]:
    """kubectl's own completion request for `kubectl transcode WORDS...` (the last word is completed)."""
    env = control_plane.env()
    env["PATH"] = f"{Path(PLUGIN).parent}{os.pathsep}{env['PATH']}"
    done = subprocess.run(
        [str(Path(control_plane.bin_dir) / "kubectl"), "__complete", "transcode", *words],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == ":4", lines  # no file completion
    return lines[:-1]


@pytest.fixture
def env(control_plane) -> dict[str, str]:
    return control_plane.env()


def test_given_a_partial_command_line_then_commands_flags_and_values_complete(env):
    assert _tab("ffrtmp st", env) == ["status"]
    assert _tab("ffrtmp ", env) == [
        "submit",
        "list",
        "ls",
        "status",
        "pause",
        "resume",
        "cancel",
        "logs",
        "queues",
        "nodes",
    ]
    assert {"--kubeconfig", "--namespace", "-n", "--help"} <= set(_tab("ffrtmp -", env))
    assert _tab("ffrtmp nodes d", env) == ["describe"]
    assert _tab("ffrtmp submit --acc", env) == ["--accelerator"]
    assert _tab("ffrtmp submit --queue ", env) == ["live", "default", "batch"]
    assert _tab("ffrtmp submit --test-source smpte", env) == ["smptebars", "smptehdbars"]
    assert _tab("ffrtmp list -o ", env) == ["table", "json", "yaml", "name"]
    assert "--follow" in _tab("ffrtmp status x --f", env)


def test_given_jobs_in_the_namespace_then_their_names_complete(control_plane, env, api_client, namespace):
    for name in ("encode-a", "encode-b", "other"):
        create_job(api_client, namespace, name)
    create_job(api_client, namespace, "encode-done", phase="Completed")
    assert _tab(f"ffrtmp status -n {namespace} ", env) == ["encode-a", "encode-b", "encode-done", "other"]
    assert _tab(f"ffrtmp logs -n {namespace} enc", env) == ["encode-a", "encode-b", "encode-done"]
    assert _tab(f"ffrtmp pause -n {namespace} enc", env) == ["encode-a", "encode-b"]  # not the finished one
    assert _tab(f"ffrtmp --namespace {namespace} resume o", env) == ["other"]  # the flag before the command
    assert _tab("ffrtmp status -n no-such-namespace ", env) == []
    assert _kubectl_tab(control_plane, "status", "-n", namespace, "encode-") == ["encode-a", "encode-b", "encode-done"]


def test_given_worker_nodes_then_nodes_describe_completes_their_names(env, api_client):
    core = client.CoreV1Api(api_client)
    name = f"cli-complete-{secrets.token_hex(3)}"
    core.create_node({"metadata": {"name": name, "labels": {api.LABEL_WORKER: "true"}}})
    try:
        assert name in _tab("ffrtmp nodes describe cli-complete-", env)
    finally:
        core.delete_node(name)


def test_given_no_reachable_cluster_then_names_complete_to_nothing_silently(env, tmp_path):
    down = {**env, "KUBECONFIG": str(tmp_path / "absent.kubeconfig")}
    assert _tab("ffrtmp status ", down) == []
    assert _tab("ffrtmp pause x", down) == []
    assert _tab(f"ffrtmp status --kubeconfig {tmp_path}/none ", env) == []


def test_given_the_kubectl_plugin_then_kubectl_completes_commands_and_flags(control_plane):
    assert _kubectl_tab(control_plane, "st") == ["status"]
    assert _kubectl_tab(control_plane, "submit", "--queue", "") == ["live", "default", "batch"]
    assert "describe" in _kubectl_tab(control_plane, "nodes", "")
