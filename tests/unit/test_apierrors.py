"""Telling the API server's refusals apart: a namespace being terminated is a normal state (debug), an
RBAC denial is a broken install (warning, flagged "rbac"), other 403s (Pod Security, quota) are neither."""

from __future__ import annotations

import json
import logging

import pytest
from ffrtmp_operator.apierrors import is_namespace_terminating, is_outage, is_rbac_denial, log_refusal
from kubernetes.client.exceptions import ApiException

from tests.unit.shell_fakes import api_error, rbac_error, terminating_error

POD_SECURITY = api_error(403, 'pods "a-1" is forbidden: violates PodSecurity "restricted:latest": privileged')
QUOTA = api_error(403, 'pods "a-1" is forbidden: exceeded quota: compute, requested: pods=1, used: pods=2')


def _message_only() -> ApiException:  # an older server: the message, no causes
    exc = ApiException(status=403, reason="Forbidden")
    exc.body = json.dumps(
        {
            "kind": "Status",
            "code": 403,
            "reason": "Forbidden",
            "message": "unable to create new content in namespace x because it is being terminated",
        }
    )
    return exc


def _bytes_body() -> ApiException:
    exc = terminating_error("x")
    exc.body = exc.body.encode()
    return exc


@pytest.mark.parametrize(
    ("exc", "terminating", "rbac", "outage"),
    [
        (terminating_error("x"), True, False, False),
        (terminating_error("x", kind="pods"), True, False, False),
        (_message_only(), True, False, False),
        (_bytes_body(), True, False, False),
        (rbac_error("x"), False, True, False),
        (rbac_error("x", resource="serviceaccounts"), False, True, False),
        (POD_SECURITY, False, False, False),
        (QUOTA, False, False, False),
        (ApiException(status=403, reason="Forbidden"), False, False, False),  # no body at all
        (api_error(404, "not found"), False, False, False),
        (api_error(409, "conflict"), False, False, False),
        (api_error(500, "because it is being terminated"), False, False, True),
        (api_error(503), False, False, True),
        (ConnectionRefusedError(), False, False, True),
    ],
)
def test_given_a_refusal_then_it_is_classified_by_what_it_means(exc, terminating, rbac, outage):
    assert is_namespace_terminating(exc) is terminating
    assert is_rbac_denial(exc) is rbac
    assert is_outage(exc) is outage


def _logged(caplog, exc) -> logging.LogRecord:
    log = logging.getLogger("test.apierrors")
    with caplog.at_level(logging.DEBUG, logger="test.apierrors"):
        log_refusal(log, "event not posted", exc, job="ns/a")
    (record,) = [r for r in caplog.records if r.name == "test.apierrors"]
    return record


def test_given_a_terminating_namespace_when_logged_then_debug_and_not_flagged_rbac(caplog):
    record = _logged(caplog, terminating_error("ns"))
    assert record.levelno == logging.DEBUG and record.status == 403 and record.namespace_terminating is True
    assert not hasattr(record, "rbac")


def test_given_an_rbac_denial_when_logged_then_a_warning_flagged_rbac(caplog):
    record = _logged(caplog, rbac_error("ns"))
    assert record.levelno == logging.WARNING and record.status == 403 and record.rbac is True
    assert record.job == "ns/a"


def test_given_another_403_when_logged_then_a_warning_not_flagged_rbac(caplog):
    record = _logged(caplog, POD_SECURITY)
    assert record.levelno == logging.WARNING and record.status == 403 and not hasattr(record, "rbac")
