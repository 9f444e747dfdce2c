"""`ffrtmp-runner` / `python -m ffrtmp_agent.runner`: the job pod's entrypoint. Runs the ExecutionPlan
from $FFRTMP_PLAN (see supervise.Runner); on failure writes {"reason","message"} to the termination log
and exits with api.RUNNER_EXIT_CODES[reason]; 143 when SIGTERM (pod deletion) stopped it.
Environment: FFRTMP_PLAN, KUBECONFIG (else in-cluster), FFRTMP_TERMINATION_LOG, FFRTMP_RAPL_ROOT,
FFRTMP_LOG_FORMAT, FFRTMP_LOG_LEVEL.
"""

from __future__ import annotations

import logging
import os
import resource
import signal
import sys

import ffrtmp_api as api
from ffrtmp_api import logs

from .failures import Failure
from .jobclient import JobClient
from .supervise import End, Runner, Settings

log = logging.getLogger("ffrtmp.runner")


def write_termination_log(failure: Failure, path: str) -> None:
    try:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(failure.termination_message())
    except OSError as exc:
        log.warning("cannot write the termination log %s: %s", path, exc)


def main(argv: list[str] | None = None) -> int:
    """Runs the plan, then leaves with os._exit: the job watch is a daemon thread that may sit in a TLS
    connect or a log write (API server restarting); letting the interpreter finalise under it aborts the
    process (exit 134) after a successful encode, and the pod would be reported Failed and run again."""
    code = _run(argv)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def _run(argv: list[str] | None = None) -> int:
    try:
        logs.configure()
    except ValueError as exc:  # a bad $FFRTMP_LOG_FORMAT must not cost the job: log as JSON and say so
        logs.configure(fmt="json")
        log.warning("%s", exc)
    plan = api.ExecutionPlan.model_validate_json(os.environ[api.ENV_PLAN])
    termination_log = os.environ.get(api.ENV_TERMINATION_LOG, api.DEFAULT_TERMINATION_LOG)
    jobs = JobClient(namespace=plan.namespace, name=plan.job)
    runner = Runner(plan, jobs, settings=Settings())
    signal.signal(signal.SIGTERM, lambda *_: runner.control.terminate())
    log.info("runner for %s/%s attempt %d (%s)", plan.namespace, plan.job, plan.attempt, plan.encoder)
    outcome = runner.run()
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    log.info(
        "finished: %s%s; CPU %.3f s, of ffmpeg and ffprobe %.3f s",  # the process's own CPU includes its start-up
        outcome.end.value,
        f" ({outcome.failure.reason}: {outcome.failure.message})" if outcome.failure else "",
        own.ru_utime + own.ru_stime,
        children.ru_utime + children.ru_stime,
    )
    if outcome.end is End.FAILED and outcome.failure is not None:
        write_termination_log(outcome.failure, termination_log)
        return outcome.failure.exit_code
    if outcome.end is End.TERMINATED:
        return 128 + signal.SIGTERM
    return 0


if __name__ == "__main__":
    sys.exit(main())
