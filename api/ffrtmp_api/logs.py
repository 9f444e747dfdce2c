"""One log format for the operator, the agent and the runner: JSON lines by default (what log pipelines
and the tests parse), or text for a terminal. $FFRTMP_LOG_FORMAT (json|text) and $FFRTMP_LOG_LEVEL choose,
the same way in every process.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any

ENV_FORMAT = "FFRTMP_LOG_FORMAT"
ENV_LEVEL = "FFRTMP_LOG_LEVEL"
FORMATS = ("json", "text")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """{"ts", "level", "logger", "msg"} plus the scalar fields passed as `extra=` (others' extras dropped)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update(
            {k: v for k, v in record.__dict__.items() if k not in _STANDARD and isinstance(v, str | int | float | bool)}
        )
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


JsonFormatter.converter = time.gmtime  # "ts" says Z, so it must be UTC


def configure(*, verbose: bool = False, fmt: str | None = None) -> None:
    """Root logging on stderr. `verbose` means DEBUG unless $FFRTMP_LOG_LEVEL says otherwise."""
    chosen = (fmt or os.environ.get(ENV_FORMAT) or "json").lower()
    if chosen not in FORMATS:
        raise ValueError(f"{ENV_FORMAT} must be one of {', '.join(FORMATS)}, not {chosen!r}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if chosen == "json" else logging.Formatter(TEXT_FORMAT))
    level = os.environ.get(ENV_LEVEL) or ("DEBUG" if verbose else "INFO")
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    for noisy in ("kubernetes", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
