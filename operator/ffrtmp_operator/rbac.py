"""The job pods' identity: a ServiceAccount, Role and RoleBinding per namespace with jobs (pure builders).

The runner may read and watch TranscodeJobs and patch their status (progress, result) -- nothing else,
so a compromised encoder cannot touch other objects in the namespace.
"""

from __future__ import annotations

from typing import Any

import ffrtmp_api as api

NAME = api.RUNNER_SERVICE_ACCOUNT
_LABELS = {api.LABEL_MANAGED_BY: api.MANAGED_BY}


def service_account(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": NAME, "namespace": namespace, "labels": dict(_LABELS)},
    }


def role(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": NAME, "namespace": namespace, "labels": dict(_LABELS)},
        "rules": [
            {"apiGroups": [api.GROUP], "resources": [api.PLURAL], "verbs": ["get", "watch"]},
            {"apiGroups": [api.GROUP], "resources": [f"{api.PLURAL}/status"], "verbs": ["patch"]},
        ],
    }


def role_binding(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": NAME, "namespace": namespace, "labels": dict(_LABELS)},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": NAME},
        "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": namespace}],
    }
