"""Telling the API server's refusals apart: an outage (retry later), a namespace being terminated (a normal
cluster state: leave its jobs alone, say so at debug level) and an RBAC denial (a broken install: warn,
flagged `"rbac": true` so logs and tests can find real denials among other 403s).
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from kubernetes.client.exceptions import ApiException

# The authorizer's wording: `User "system:serviceaccount:x:y" cannot create resource "pods" in API group ""`.
_RBAC_DENIAL = re.compile(r'\bcannot [a-z]+ resource "')
_TERMINATING = "because it is being terminated"


def is_outage(exc: BaseException) -> bool:
    """Whether a failed call says the API server is not answering (5xx, connection refused or reset,
    timeout) rather than refusing that one request (4xx)."""
    return not isinstance(exc, ApiException) or not exc.status or exc.status >= 500


def _status(exc: ApiException) -> dict[str, Any]:
    """The Status object the API server sent as the body ({} when there is none or it is not JSON)."""
    body = exc.body
    if isinstance(body, bytes):
        body = body.decode(errors="replace")
    try:
        parsed = json.loads(body) if body else {}
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def is_namespace_terminating(exc: BaseException) -> bool:
    """A create refused because its namespace is being deleted: 403 Forbidden with the cause
    NamespaceTerminating ("... because it is being terminated"). Not an RBAC failure."""
    if not isinstance(exc, ApiException) or exc.status != 403:
        return False
    status = _status(exc)
    causes = (status.get("details") or {}).get("causes") or []
    if any(isinstance(c, dict) and c.get("reason") == "NamespaceTerminating" for c in causes):
        return True
    return _TERMINATING in str(status.get("message") or exc.body or "")


def is_rbac_denial(exc: BaseException) -> bool:
    """A 403 from the authorizer: the operator's ServiceAccount lacks a verb (not Pod Security, quota or a
    terminating namespace, which are 403s too)."""
    if not isinstance(exc, ApiException) or exc.status != 403 or is_namespace_terminating(exc):
        return False
    return bool(_RBAC_DENIAL.search(str(_status(exc).get("message") or exc.body or "")))


def log_refusal(log: logging.Logger, msg: str, exc: ApiException, **fields: Any) -> None:
    """Log a failed API call by what it means: debug for a terminating namespace, warning otherwise,
    with `"rbac": true` added for an RBAC denial. `"status"` is the HTTP status either way."""
    extra: dict[str, Any] = {**fields, "status": exc.status}
    if is_namespace_terminating(exc):
        log.debug(msg, extra={**extra, "namespace_terminating": True})
        return
    if is_rbac_denial(exc):
        extra["rbac"] = True
    log.warning(msg, extra=extra)
