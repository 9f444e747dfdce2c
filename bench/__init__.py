"""ffrtmp benchmarks: the scheduler (admission throughput, latency, operator memory, API writes per job)
and the transcode overhead of the whole stack against bare ffmpeg. Run with `make bench-smoke` / `make bench`.

Every figure is a ratio against a baseline measured in the same run on the same machine, because the
machine's load (shared CPUs) moves absolute numbers a lot.
"""

import sys
from pathlib import Path

# tools/ffrtmp_stack (the local stack) is not an installed package: make finds it through PYTHONPATH, and
# this lets `python -m bench.<name>` find it too, before any benchmark module imports it.
_TOOLS = str(Path(__file__).resolve().parents[1] / "tools")
if _TOOLS not in sys.path:
    sys.path.insert(0, _TOOLS)
