"""The CLI stands on its own: importing every module of ffrtmp_cli (and running its parser) pulls in neither
the operator package nor kopf, so `pip install ffrtmp` without extras gives a working `kubectl transcode`."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, pkgutil, sys, importlib
import ffrtmp_cli
for info in pkgutil.iter_modules(ffrtmp_cli.__path__):
    if info.name != "__main__":
        importlib.import_module(f"ffrtmp_cli.{info.name}")
from ffrtmp_cli.main import build_parser
build_parser().parse_args(["status", "job"])
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("kopf", "ffrtmp_operator", "ffrtmp_agent",
                                                                         "prometheus_client", "psutil"))))
"""


def test_given_a_fresh_interpreter_when_importing_the_cli_then_neither_kopf_nor_the_operator_is_loaded():
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


def test_given_the_contract_package_then_it_imports_nothing_of_ours_but_itself():
    probe = (
        "import json, sys, ffrtmp_api, ffrtmp_api.samples; print(json.dumps(sorted({m.split('.')[0] "
        "for m in sys.modules if m.startswith(('ffrtmp', 'kopf', 'kubernetes'))})))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == ["ffrtmp_api"]
