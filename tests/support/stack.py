"""A whole ffrtmp stack for the reliability and security tests: real operator replicas and standalone agents
as subprocesses of the test, against the session's (or a test's own) kube-apiserver, plus ways to count
what really ran: job pods per job (label ffrtmp.io/job) and runner/encoder starts read from each pod's
log in the agents' work directories (`<work>/pods/<ns>_<pod>_<uid8>/runner.log`).

The operator manages only the test's namespace (--namespace) and jobs select only this stack's nodes (label
ffrtmp.io/test-run), so tests never meet; close() stops every process and removes the jobs, pods, nodes
and Leases it made.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import ffrtmp_api as api
import psutil
from kubernetes import client

from .cleanup import delete_jobs, delete_node
from .processes import AgentProcess, OperatorProcess
from .waiting import wait_until

__all__ = ["RUN_LABEL", "TERMINAL", "Stack", "elapsed", "transition_time"]

RUN_LABEL = "ffrtmp.io/test-run"
FAST_OPERATOR = ("--tick-seconds", "0.5", "--backoff-base-seconds", "1", "--backoff-cap-seconds", "2")
TERMINAL = ("Completed", "Failed", "Canceled")
LOOPBACK = ("127.0.0.0/8", "::1/128")  # the test machine's servers (nginx-rtmp, HTTP) listen here


class Stack:
    """Operators, agents and jobs of one test. close() stops every process it started."""

    def __init__(self, *, env: dict[str, str], api_client: client.ApiClient, namespace: str, work: Path) -> None:
        self.env = env | {"PYTHONUNBUFFERED": "1"}
        self.ns = namespace
        self.work = work
        self.core = client.CoreV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.run_id = secrets.token_hex(3)
        self.peering = f"ffrtmp-{namespace}"[:63]
        self.operators: list[OperatorProcess] = []
        self.agents: list[AgentProcess] = []

    # ------------------------------------------------------------------------------- processes

    def operator(
        self,
        *extra: str,
        peering: bool = False,
        priority: int | None = None,
        env: dict[str, str] | None = None,
        host_paths: bool = True,
        egress_allow: tuple[str, ...] = LOOPBACK,
    ) -> OperatorProcess:
        """An operator for this stack's namespace. host_paths: let its jobs mount hostPath volumes under the
        test's own work folder only (the admin's opt-in; the default policy refuses every hostPath).
        egress_allow: what jobs may reach beyond public addresses; the tests' servers listen on loopback."""
        args = ["--namespace", self.ns, *FAST_OPERATOR, *extra]
        if host_paths:
            args += ["--host-path", f"{self.ns}={self.work}"]
        for entry in egress_allow:
            args += ["--egress-allow", entry]
        if "--metrics-port" not in extra:
            args += ["--metrics-port", "0"]
        args += ["--peering", self.peering] if peering else ["--no-peering"]
        if priority is not None:
            args += ["--priority", str(priority)]
        op = OperatorProcess(env=env or self.env, args=args, log_path=self.work / f"operator-{len(self.operators)}.log")
        self.operators.append(op)
        return op

    def agent(
        self, *, slots: int = 2, lease_seconds: int = 15, renew_seconds: float = 5, metrics_port: int | None = None
    ) -> AgentProcess:
        """A standalone agent on node `rel-<run>-<i>`, registered and labelled for this stack's jobs."""
        node = f"rel-{self.run_id}-{len(self.agents) + 1}"
        agent = AgentProcess(
            env=self.env,
            node=node,
            work_dir=self.work / node,
            slots=slots,
            metrics_port=metrics_port,
            extra_args=("--lease-seconds", str(lease_seconds), "--renew-seconds", str(renew_seconds)),
        )
        self.agents.append(agent)
        return agent

    def wait_agents(self, timeout: float = 120) -> None:
        for agent in self.agents:
            agent.wait_registered(self.core, timeout=timeout)
            self.core.patch_node(agent.node, {"metadata": {"labels": {RUN_LABEL: self.run_id}}})

    def kill_node(self, agent: AgentProcess) -> None:
        """A node dies: SIGKILL the agent and every job process it started (they die with the machine)."""
        try:
            children = psutil.Process(agent.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            children = []
        agent.kill()
        for child in children:
            try:
                os.killpg(child.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass

    def close(self) -> None:
        """Stop the operators, then the agents; remove this stack's jobs, job pods, nodes and Leases."""
        for op in self.operators:
            op.stop()
        for agent in self.agents:
            if agent.proc.poll() is None:
                agent.stop()
            else:
                agent.kill()
        delete_jobs(self.core.api_client, self.ns)
        for agent in self.agents:
            delete_node(self.core.api_client, agent.node)

    # ------------------------------------------------------------------------------------ jobs

    def spec(self, name: str, **overrides: Any) -> dict[str, Any]:
        """A 1 s, 160x120 test-source job writing file:///out/<name>.mp4 (an emptyDir) on this stack's nodes."""
        spec: dict[str, Any] = {
            "input": {"testSource": {"width": 160, "height": 120, "fps": 10, "durationSeconds": 1, "audio": False}},
            "output": {"url": f"file:///out/{name}.mp4"},
            "volumes": [{"name": "out", "mountPath": "/out", "emptyDir": {}}],
            "video": {"codec": "h264", "preset": "ultrafast"},
            "audio": {"codec": "none"},
            "hardware": {"accelerator": "none"},
            "nodeSelector": {RUN_LABEL: self.run_id},
        }
        spec.update(overrides)
        return spec

    def create(self, name: str, **overrides: Any) -> dict[str, Any]:
        body = {
            "apiVersion": api.API_VERSION,
            "kind": api.KIND,
            "metadata": {"name": name},
            "spec": self.spec(name, **overrides),
        }
        return self.custom.create_namespaced_custom_object(api.GROUP, api.VERSION, self.ns, api.PLURAL, body)

    def jobs(self) -> dict[str, dict[str, Any]]:
        items = self.custom.list_namespaced_custom_object(api.GROUP, api.VERSION, self.ns, api.PLURAL)["items"]
        return {j["metadata"]["name"]: j for j in items}

    def status(self, name: str) -> dict[str, Any]:
        job = self.custom.get_namespaced_custom_object(api.GROUP, api.VERSION, self.ns, api.PLURAL, name)
        return job.get("status") or {}

    def wait_phase(self, name: str, phases: tuple[str, ...] | str, *, timeout: float = 120) -> dict[str, Any]:
        wanted = (phases,) if isinstance(phases, str) else phases
        last: dict[str, Any] = {}

        def reached() -> dict[str, Any] | None:
            nonlocal last
            last = self.status(name)
            return last if last.get("phase") in wanted else None

        try:
            return wait_until(reached, timeout=timeout, interval=0.25, what=f"{name} to be {'/'.join(wanted)}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last status: {last}\n{self.logs_tail()}") from None

    def wait_all_terminal(self, names: list[str], *, timeout: float) -> dict[str, dict[str, Any]]:
        def done() -> dict[str, dict[str, Any]] | None:
            jobs = self.jobs()
            final = {n: jobs[n] for n in names if (jobs[n].get("status") or {}).get("phase") in TERMINAL}
            return final if len(final) == len(names) else None

        try:
            return wait_until(done, timeout=timeout, interval=1, what=f"{len(names)} jobs to finish")
        except AssertionError as exc:
            phases: dict[str, int] = {}
            for job in self.jobs().values():
                phase = (job.get("status") or {}).get("phase") or "Pending"
                phases[phase] = phases.get(phase, 0) + 1
            raise AssertionError(f"{exc}; phases now {phases}\n{self.logs_tail()}") from None

    def pods(self, job: str | None = None) -> list[Any]:
        selector = f"{api.LABEL_JOB}={job}" if job else api.LABEL_JOB
        return self.core.list_namespaced_pod(self.ns, label_selector=selector).items

    # ------------------------------------------------------------------------- what really ran

    def runner_logs(self, job: str | None = None) -> dict[str, str]:
        """{pod dir name: runner log} of this namespace's job pods on every agent of the stack."""
        logs = {}
        for agent in self.agents:
            for path in sorted((agent.work_dir / "pods").glob(f"{self.ns}_*/runner.log")):
                text = path.read_text(errors="replace")
                if job is None or re.search(rf"runner for {re.escape(self.ns)}/{re.escape(job)} attempt", text):
                    logs[path.parent.name] = text
        return logs

    def runs(self) -> dict[str, dict[str, int]]:
        """Per job: runner starts, encoder (ffmpeg) starts and successful runs, counted from the pod logs."""
        counts: dict[str, dict[str, int]] = {}
        for text in self.runner_logs().values():
            match = re.search(rf"runner for {re.escape(self.ns)}/(\S+) attempt", text)
            if not match:
                continue
            entry = counts.setdefault(match.group(1), {"runners": 0, "encoders": 0, "succeeded": 0})
            entry["runners"] += 1
            # The runner's own lines (logger ffrtmp.runner), JSON or text (ffrtmp_api.logs).
            entry["encoders"] += len(re.findall(r"ffrtmp\.runner\W+(?:msg\W+)?starting ffmpeg ", text))
            entry["succeeded"] += len(re.findall(r"ffrtmp\.runner\W+(?:msg\W+)?finished: succeeded", text))
        return counts

    def logs_tail(self, chars: int = 2500) -> str:
        parts = [f"--- operator {i} ---\n{op.log_text()[-chars:]}" for i, op in enumerate(self.operators)]
        parts += [f"--- agent {a.node} ---\n{a.log_text()[-chars:]}" for a in self.agents]
        return "\n".join(parts)


def transition_time(status: dict[str, Any], phase: str, *, after: float = 0.0) -> float | None:
    """Epoch seconds of the first transition into `phase` at or after `after`, from status.transitions."""
    for entry in status.get("transitions") or []:
        at = datetime.fromisoformat(entry["at"]).timestamp()
        if entry["phase"] == phase and at >= after:
            return at
    return None


def elapsed(since: float) -> float:
    return round(time.time() - since, 2)
