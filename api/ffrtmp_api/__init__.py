"""The ffrtmp contract: the TranscodeJob API models, the names every part agrees on (labels, annotations,
exit codes), time formatting and the shared rules (slots, node status).

Everything else (operator, agent, CLI, bench, tools) imports this package; it imports nothing of ours but
itself, and nothing heavier than pydantic. Use it as `import ffrtmp_api as api`.
"""

from .execution import *  # noqa: F403
from .job import *  # noqa: F403
from .job import Accelerator, Priority, Queue  # noqa: F401
from .keys import *  # noqa: F403
from .nodes import NODE_STATUSES, lease_slots, node_status  # noqa: F401
from .phases import *  # noqa: F403
from .preset import *  # noqa: F403
from .queue import *  # noqa: F403
from .timefmt import parse_time, stamp, stamp_micro, stamp_seconds  # noqa: F401
