"""Node-local execution (issue 10, class 4), attacked on a real standalone agent: a user who may create Pods
gains nothing on a node without containers. The agent runs only pods the operator built and signed for an
existing job; it runs them as their non-root user with private folders and tokens, renews their short-lived
tokens, confines them to cgroups holding their limits, and a job's token reaches its own job only.

Pods are made as the operator makes them (tests/support/jobpods.py); the stand-in ffrtmp-runner on the
agent's PATH runs the test's command, so whether a command ran at all is visible (a marker file).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ffrtmp_api as api
import psutil
import pytest
from kubernetes import client

from tests.support import (
    AgentProcess,
    delete_node,
    jobpods,
    registered_agent,
    wait_until,
)
from tests.support.jobpods import agent_env, job_pod, make_job, runner_shim

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def shim() -> Iterator[Path]:
    folder = runner_shim()
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def agent(control_plane: Any, api_client: client.ApiClient, tmp_path_factory: pytest.TempPathFactory, shim: Path):
    with registered_agent(
        agent_env(control_plane.env(), shim),
        client.CoreV1Api(api_client),
        node=f"sec-node-{secrets.token_hex(3)}",
        work_dir=tmp_path_factory.mktemp("sec-node"),
    ) as proc:
        yield proc


@pytest.fixture
def core(api_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


@pytest.fixture
def marks() -> Iterator[Path]:
    """A folder any pod may write a marker into: a command that ran leaves one."""
    folder = Path(tempfile.mkdtemp(prefix="ffrtmp-marks-"))
    folder.chmod(0o777)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _final(core: client.CoreV1Api, namespace: str, name: str, timeout: float = 60) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        pod = core.api_client.sanitize_for_serialization(core.read_namespaced_pod(name, namespace))
        return pod if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed") else None

    return wait_until(done, timeout=timeout, what=f"pod {name} to finish")


def _terminated(pod: dict[str, Any]) -> dict[str, Any]:
    return pod["status"]["containerStatuses"][0]["state"]["terminated"]


def _log(pod: dict[str, Any]) -> str:
    return Path(pod["metadata"]["annotations"]["ffrtmp.io/log-file"]).read_text()


def _touch(marks: Path, name: str) -> list[str]:
    return [sys.executable, "-c", f"open({str(marks / name)!r}, 'w').write('ran')"]


def _signed_then(api_client: client.ApiClient, pod: dict[str, Any], change: Any) -> dict[str, Any]:
    jobpods.sign(api_client, pod)
    change(pod)
    return pod


def test_given_pods_the_operator_did_not_build_then_none_runs(agent, api_client, core, namespace, marks):
    """A tenant who may create Pods makes pods that look like the operator's: same labels and owner, the
    runner command, even a signature copied from a real job pod. None of them runs; each fails saying why."""
    job = make_job(api_client, namespace)
    real = job_pod(job, node=agent.node, command=_touch(marks, "real"), name="real", api_client=api_client)
    copied = real["metadata"]["annotations"]
    attacks: dict[str, tuple[dict[str, Any], str]] = {
        "unsigned": (job_pod(job, node=agent.node, command=_touch(marks, "unsigned"), name="unsigned"), "signature"),
        "copied-signature": (
            dict(
                job_pod(job, node=agent.node, command=_touch(marks, "copied"), name="copied"),
                metadata={
                    **job_pod(job, node=agent.node, command=[], name="copied")["metadata"],
                    "annotations": copied,
                },
            ),
            "signature",
        ),
        "tampered-after-signing": (
            _signed_then(
                api_client,
                job_pod(job, node=agent.node, command=["true"], name="tampered"),
                lambda p: p["spec"]["containers"][0]["env"].__setitem__(
                    0, {"name": jobpods.TEST_ARGV, "value": json.dumps(_touch(marks, "tampered"))}
                ),
            ),
            "signature",
        ),
        "host-folder-added": (
            _signed_then(
                api_client,
                job_pod(job, node=agent.node, command=_touch(marks, "etc"), name="etc"),
                lambda p: (
                    p["spec"]["volumes"].append({"name": "etc", "hostPath": {"path": "/etc"}}),
                    p["spec"]["containers"][0]["volumeMounts"].append({"name": "etc", "mountPath": "/host-etc"}),
                ),
            ),
            "signature",
        ),
        "shell-command": (
            _signed_then(
                api_client,
                job_pod(job, node=agent.node, command=[], name="shell"),
                lambda p: p["spec"]["containers"][0].update(command=["sh", "-c", f"touch {marks}/shell"]),
            ),
            "ffrtmp-runner",
        ),
        "host-network": (
            _signed_then(
                api_client,
                job_pod(job, node=agent.node, command=_touch(marks, "net"), name="hostnet"),
                lambda p: p["spec"].__setitem__("hostNetwork", True),
            ),
            "hostNetwork",
        ),
        "privileged": (
            _signed_then(
                api_client,
                job_pod(job, node=agent.node, command=_touch(marks, "priv"), name="privileged"),
                lambda p: p["spec"]["containers"][0]["securityContext"].update(
                    privileged=True, allowPrivilegeEscalation=True
                ),
            ),
            "privileged",
        ),
    }
    for pod, _ in attacks.values():
        core.create_namespaced_pod(namespace, pod)
    wrong = {}
    for name, (pod, fragment) in attacks.items():
        done = _final(core, namespace, pod["metadata"]["name"])
        state = _terminated(done)
        if done["status"]["phase"] != "Failed" or state["reason"] != "Refused" or fragment not in state["message"]:
            wrong[name] = (done["status"]["phase"], state.get("reason"), state.get("message"))
    assert not wrong, wrong
    assert sorted(p.name for p in marks.iterdir()) == [], "a refused pod's command ran"


def test_given_a_job_replaced_under_the_same_name_then_the_old_pod_is_refused(
    agent, api_client, core, namespace, marks
):
    old = make_job(api_client, namespace, "replaced")
    pod = job_pod(old, node=agent.node, command=_touch(marks, "old"), api_client=api_client)
    client.CustomObjectsApi(api_client).delete_namespaced_custom_object(
        api.GROUP, api.VERSION, namespace, api.PLURAL, "replaced"
    )
    wait_until(
        lambda: (
            not client.CustomObjectsApi(api_client).list_namespaced_custom_object(
                api.GROUP, api.VERSION, namespace, api.PLURAL
            )["items"]
        ),
        timeout=30,
        what="the job to be gone",
    )
    make_job(api_client, namespace, "replaced")
    core.create_namespaced_pod(namespace, pod)

    state = _terminated(_final(core, namespace, pod["metadata"]["name"]))

    assert state["reason"] == "Refused" and "not the uid" in state["message"], state
    assert not (marks / "old").exists()


@pytest.mark.parametrize("how", ["restricted-namespace", "run-as-non-root"])
def test_given_a_signed_pod_asking_for_root_where_it_is_forbidden_then_refused(
    control_plane, api_client, core, namespace, marks, tmp_path, shim, how: str
) -> None:
    """The API server's Pod Security admission refuses such a pod at creation; one created before the
    namespace was labelled restricted (admission does not look again) must still not run as root."""
    node = f"sec-late-{secrets.token_hex(3)}"
    job = make_job(api_client, namespace)
    pod = job_pod(job, node=node, command=_touch(marks, "root"))
    for ctx in (pod["spec"]["securityContext"], pod["spec"]["containers"][0]["securityContext"]):
        ctx["runAsUser"] = 0
        ctx["runAsNonRoot"] = how == "run-as-non-root"
    jobpods.sign(api_client, pod)  # even the operator's signature does not make root acceptable there
    core.create_namespaced_pod(namespace, pod)
    if how == "restricted-namespace":
        core.patch_namespace(namespace, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}})
    with registered_agent(agent_env(control_plane.env(), shim), core, node=node, work_dir=tmp_path):
        state = _terminated(_final(core, namespace, pod["metadata"]["name"]))

    assert state["reason"] == "Refused" and "root" in state["message"], state
    assert not (marks / "root").exists()


def test_given_a_job_pod_then_it_runs_as_its_user_with_private_folders_and_cannot_read_root_files(
    agent, api_client, core, namespace
) -> None:
    secret = Path(tempfile.mkdtemp(prefix="ffrtmp-root-only-")) / "key"
    secret.write_text("root's")
    secret.chmod(0o600)
    secret.parent.chmod(0o755)
    script = (
        "import json, os, stat\n"
        "home = os.environ['HOME']\n"
        "facts = {'ids': [os.getuid(), os.geteuid(), os.getgid(), sorted(os.getgroups())], 'home': home,\n"
        "         'home_mode': oct(stat.S_IMODE(os.stat(home).st_mode)),\n"
        "         'token_mode': oct(stat.S_IMODE(os.stat(home + '/token').st_mode)),\n"
        "         'kubeconfig_mode': oct(stat.S_IMODE(os.stat(home + '/kubeconfig').st_mode)),\n"
        "         'no_new_privs': open('/proc/self/status').read().split('NoNewPrivs:')[1].split()[0],\n"
        "         'caps': open('/proc/self/status').read().split('CapEff:')[1].split()[0]}\n"
        f"try:\n    open({str(secret)!r}).read(); facts['secret'] = 'read'\n"
        "except PermissionError:\n    facts['secret'] = 'denied'\n"
        "print(json.dumps(facts))\n"
    )
    job = make_job(api_client, namespace)
    pod = job_pod(job, node=agent.node, command=[sys.executable, "-c", script], api_client=api_client)
    try:
        core.create_namespaced_pod(namespace, pod)
        done = _final(core, namespace, pod["metadata"]["name"])
    finally:
        shutil.rmtree(secret.parent, ignore_errors=True)

    assert done["status"]["phase"] == "Succeeded", _terminated(done)
    facts = json.loads(_log(done).strip().splitlines()[-1])
    uid = jobpods.RUNNER_UID
    assert facts["ids"] == [uid, uid, uid, [uid]]
    assert facts["secret"] == "denied"
    assert (facts["home_mode"], facts["token_mode"], facts["kubeconfig_mode"]) == ("0o700", "0o600", "0o600")
    assert facts["no_new_privs"] == "1" and int(facts["caps"], 16) == 0
    host_home = Path(_log_folder(done)) / "home"
    assert host_home.stat().st_uid == uid and oct(host_home.stat().st_mode & 0o777) == "0o700"
    assert oct(host_home.parent.stat().st_mode & 0o777) == "0o711" and host_home.parent.stat().st_uid == 0


def _log_folder(pod: dict[str, Any]) -> str:
    return os.path.dirname(pod["metadata"]["annotations"]["ffrtmp.io/log-file"])


def test_given_a_planted_termination_log_link_then_the_agent_does_not_read_the_target(
    agent, api_client, core, namespace
):
    """The pod's folder is its own: a link there must not make the agent (root) read a root-only file into
    the pod's status."""
    secret = Path(tempfile.mkdtemp(prefix="ffrtmp-root-only-")) / "key"
    secret.write_text("ROOT-ONLY-CONTENT")
    secret.chmod(0o600)
    script = (
        f"import os, sys\nlog = os.environ['{api.ENV_TERMINATION_LOG}']\n"
        f"os.symlink({str(secret)!r}, log)\nsys.exit(3)\n"
    )
    job = make_job(api_client, namespace)
    pod = job_pod(job, node=agent.node, command=[sys.executable, "-c", script], api_client=api_client)
    try:
        core.create_namespaced_pod(namespace, pod)
        state = _terminated(_final(core, namespace, pod["metadata"]["name"]))
    finally:
        shutil.rmtree(secret.parent, ignore_errors=True)
    assert state["exitCode"] == 3
    assert "ROOT-ONLY-CONTENT" not in (state.get("message") or "")


def test_given_limits_then_the_pod_runs_in_a_cgroup_holding_them_and_a_memory_hog_is_killed(
    agent, api_client, core, namespace
) -> None:
    script = (
        "import json\n"
        "groups = dict(l.split(':', 2)[1:] for l in open('/proc/self/cgroup').read().splitlines())\n"
        "mem = '/sys/fs/cgroup/memory' + groups.get('memory', '?')\n"
        "cpu = '/sys/fs/cgroup/cpu' + groups.get('cpu', '?')\n"
        "print(json.dumps({'memory': int(open(mem + '/memory.limit_in_bytes').read()),\n"
        "                  'quota': int(open(cpu + '/cpu.cfs_quota_us').read()),\n"
        "                  'period': int(open(cpu + '/cpu.cfs_period_us').read()), 'groups': groups}), flush=True)\n"
        "hog = bytearray(512 * 1024 * 1024)\n"
        "print('survived', flush=True)\n"
    )
    job = make_job(api_client, namespace)
    pod = job_pod(
        job,
        node=agent.node,
        command=[sys.executable, "-c", script],
        api_client=api_client,
        limits={"cpu": "250m", "memory": "128Mi"},
    )
    core.create_namespaced_pod(namespace, pod)

    done = _final(core, namespace, pod["metadata"]["name"])

    facts = json.loads(_log(done).strip().splitlines()[0])
    assert facts["memory"] == 128 * 2**20
    assert facts["quota"] * 1000 // facts["period"] == 250
    assert pod["metadata"]["name"] and "ffrtmp-pods" in facts["groups"]["memory"]
    assert "survived" not in _log(done)
    assert done["status"]["phase"] == "Failed" and _terminated(done)["exitCode"] == 137


def test_given_short_lived_tokens_then_they_are_renewed_while_the_pod_runs_and_each_works(
    control_plane, api_client, core, namespace, tmp_path, shim
) -> None:
    """Tokens last 10 minutes at least (the API server's floor); renewed every 2 s here, so a pod running
    for 8 s sees several, and the runner's client (kubelite, which re-reads the file when it changes)
    authenticates with each one in turn."""
    node = f"sec-tokens-{secrets.token_hex(3)}"
    script = (
        "import json, os, time\n"
        "from ffrtmp_agent.runner.kubelite import KubeClient, load_from_environment, custom_object_path\n"
        "kube = KubeClient(load_from_environment())\n"
        f"path = custom_object_path(group='{api.GROUP}', version='{api.VERSION}', namespace=os.environ['NS'], "
        f"plural='{api.PLURAL}', name='job')\n"
        "seen = []\n"
        "for _ in range(16):\n"
        "    token = open(os.environ['HOME'] + '/token').read()\n"
        "    kube.request('GET', path)\n"
        "    if token not in seen:\n"
        "        seen.append(token)\n"
        "    time.sleep(0.5)\n"
        "print(json.dumps({'tokens': len(seen)}))\n"
    )
    renewing = AgentProcess(
        env=agent_env(control_plane.env(), shim),
        node=node,
        work_dir=tmp_path,
        extra_args=("--token-renew-seconds", "2"),
    )
    try:
        renewing.wait_registered(core)
        job = make_job(api_client, namespace)
        pod = job_pod(
            job,
            node=node,
            command=[sys.executable, "-c", script],
            api_client=api_client,
            env=[{"name": "NS", "value": namespace}],
        )
        core.create_namespaced_pod(namespace, pod)
        done = _final(core, namespace, pod["metadata"]["name"], timeout=90)
    finally:
        renewing.stop()
        delete_node(api_client, node)
    assert done["status"]["phase"] == "Succeeded", _log(done)[-2000:]
    assert json.loads(_log(done).strip().splitlines()[-1])["tokens"] >= 3
    assert renewing.log_text().count("token renewed") >= 2


def test_given_a_runner_token_then_it_reaches_its_own_job_only(agent, api_client, core, namespace, control_plane):
    kubectl = str(Path(control_plane.bin_dir) / "kubectl")
    kind = f"{api.PLURAL}.{api.GROUP}"
    job = make_job(api_client, namespace, "mine")
    make_job(api_client, namespace, "theirs")
    patch = json.dumps({"status": {"message": "x"}})
    checks = {
        "get-mine": [kubectl, "get", f"{kind}/mine", "-o", "name"],
        "get-theirs": [kubectl, "get", f"{kind}/theirs", "-o", "name"],
        "list": [kubectl, "get", kind, "-o", "name"],
        "patch-theirs-status": [
            kubectl,
            "patch",
            f"{kind}/theirs",
            "--subresource=status",
            "--type=merge",
            "-p",
            patch,
        ],
        "patch-mine-spec": [kubectl, "patch", f"{kind}/mine", "--type=merge", "-p", '{"spec":{"paused":true}}'],
        "secrets": [kubectl, "get", "secrets", "-n", api.DEFAULT_SYSTEM_NAMESPACE],
    }
    for name, argv in checks.items():
        core.create_namespaced_pod(
            namespace, job_pod(job, node=agent.node, command=argv, name=name, api_client=api_client)
        )
    results = {name: _final(core, namespace, name) for name in checks}
    outcome = {name: (r["status"]["phase"], _log(r)) for name, r in results.items()}
    assert outcome["get-mine"][0] == "Succeeded", outcome["get-mine"]
    for name in ("get-theirs", "list", "patch-theirs-status", "patch-mine-spec", "secrets"):
        phase, text = outcome[name]
        assert phase == "Failed" and "forbidden" in text.lower(), (name, text)


def test_given_two_job_pods_as_the_same_user_then_one_cannot_see_signal_or_read_the_other(
    agent, api_client, core, namespace
) -> None:
    """Job pods all run as one user (65532); as containers are, each is in a PID namespace of its own, so
    another tenant's pod cannot kill its encoder nor read its environment or its token via /proc/<pid>."""
    victim_job = make_job(api_client, namespace, name="victim")
    victim = job_pod(
        victim_job,
        node=agent.node,
        command=[sys.executable, "-c", "import time; time.sleep(60)"],
        api_client=api_client,
    )
    core.create_namespaced_pod(namespace, victim)

    def victim_pid() -> int | None:
        pod = core.api_client.sanitize_for_serialization(
            core.read_namespaced_pod(victim["metadata"]["name"], namespace)
        )
        statuses = (pod.get("status") or {}).get("containerStatuses") or [{}]
        main = statuses[0].get("containerID", "").rsplit("/", 1)[-1]
        if not main.isdigit():
            return None
        tree = [psutil.Process(int(main)), *psutil.Process(int(main)).children(recursive=True)]
        kids = [p for p in tree if "sleep" in " ".join(p.cmdline())]
        return kids[0].pid if kids else None

    target = wait_until(victim_pid, timeout=30, what="the victim pod's process")
    script = (
        "import json, os\n"
        f"target = {target}\n"
        "facts = {'pids': sorted(int(p) for p in os.listdir('/proc') if p.isdigit())}\n"
        "try:\n    os.kill(target, 9); facts['kill'] = 'sent'\n"
        "except ProcessLookupError:\n    facts['kill'] = 'no such process'\n"
        "except PermissionError:\n    facts['kill'] = 'denied'\n"
        "for leak in ('environ', 'root/run/ffrtmp/pod/token'):\n"
        "    try:\n        open(f'/proc/{target}/' + leak, 'rb').read(); facts[leak] = 'read'\n"
        "    except OSError as exc:\n        facts[leak] = type(exc).__name__\n"
        "print(json.dumps(facts))\n"
    )
    attacker = job_pod(
        make_job(api_client, namespace, name="attacker"),
        node=agent.node,
        command=[sys.executable, "-c", script],
        api_client=api_client,
    )
    core.create_namespaced_pod(namespace, attacker)
    done = _final(core, namespace, attacker["metadata"]["name"])
    assert done["status"]["phase"] == "Succeeded", _terminated(done)
    facts = json.loads(_log(done).strip().splitlines()[-1])
    assert facts["pids"] == [1], facts  # its own process only, as pid 1
    assert facts["kill"] == "no such process", facts
    assert facts["environ"] == "FileNotFoundError" and facts["root/run/ffrtmp/pod/token"] == "FileNotFoundError"
    assert psutil.pid_exists(target) and psutil.Process(target).status() != psutil.STATUS_ZOMBIE  # still encoding
