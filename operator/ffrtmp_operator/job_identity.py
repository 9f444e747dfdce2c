"""Each job pod's own identity and the operator's signature on it.

Identity: a ServiceAccount per job, bound by a Role that names that job only (resourceNames), so a runner's
token can read and watch its own TranscodeJob and patch its status, and nothing else: not another job's
spec (input URLs carry stream keys), not its status. The three objects are owned by the job (garbage
collected with it where a controller-manager runs). Simpler than bound-token claims checked by an admission
policy, and it works on the light stack, which has no controller-manager: TokenRequest needs none.

Signature: ffrtmp_api.podsign, with a key the operator keeps in a Secret of the system namespace (made on
first use); standalone agents run only pods that carry it.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
from typing import TYPE_CHECKING, Any

import ffrtmp_api as api
from ffrtmp_api import podsign
from kubernetes.client.exceptions import ApiException

if TYPE_CHECKING:
    from .kube import Kube

log = logging.getLogger("ffrtmp.scheduler")

MAX_NAME = 253
PREFIX = "ffrtmp-job-"


def service_account_name(job: str) -> str:
    """ "ffrtmp-job-<job>"; a name too long keeps a prefix plus a hash, so each job maps to one name."""
    name = PREFIX + job
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(job.encode()).hexdigest()[:10]
    return (PREFIX + job)[: MAX_NAME - 11].rstrip("-.") + "-" + digest


def _metadata(name: str, namespace: str, job: str, uid: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": namespace,
        "labels": {api.LABEL_MANAGED_BY: api.MANAGED_BY, api.LABEL_JOB: job, api.LABEL_JOB_UID: uid},
        # No blockOwnerDeletion: that would need the finalizers permission on jobs, and nothing waits on it.
        "ownerReferences": [{"apiVersion": api.API_VERSION, "kind": api.KIND, "name": job, "uid": uid}],
    }


def service_account(namespace: str, job: str, uid: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _metadata(service_account_name(job), namespace, job, uid),
    }


def role(namespace: str, job: str, uid: str) -> dict[str, Any]:
    """get and watch its own job (the runner watches with fieldSelector metadata.name=<job>, which RBAC
    matches against resourceNames), patch its own job's status; nothing else."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _metadata(service_account_name(job), namespace, job, uid),
        "rules": [
            {"apiGroups": [api.GROUP], "resources": [api.PLURAL], "resourceNames": [job], "verbs": ["get", "watch"]},
            {
                "apiGroups": [api.GROUP],
                "resources": [f"{api.PLURAL}/status"],
                "resourceNames": [job],
                "verbs": ["patch"],
            },
        ],
    }


def role_binding(namespace: str, job: str, uid: str) -> dict[str, Any]:
    name = service_account_name(job)
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _metadata(name, namespace, job, uid),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
    }


class JobIdentity:
    """Makes a job's identity objects before its pod and signs the pod. Holds the signing key once read."""

    def __init__(self, kube: Kube, *, system_namespace: str) -> None:
        self.kube = kube
        self.system_namespace = system_namespace
        self._key: bytes | None = None
        self._made: set[tuple[str, str]] = set()  # (namespace, job uid) whose objects exist

    async def prepare(self, manifest: dict[str, Any]) -> None:
        """Creates the ServiceAccount, Role and RoleBinding of the pod's job (409: already there), then adds
        the signature annotation to `manifest`. Raises ApiException as pod creation would."""
        meta = manifest["metadata"]
        namespace, job, uid = meta["namespace"], meta["labels"][api.LABEL_JOB], meta["labels"][api.LABEL_JOB_UID]
        if (namespace, uid) not in self._made:
            await self.kube.create_objects(
                namespace,
                [service_account(namespace, job, uid), role(namespace, job, uid), role_binding(namespace, job, uid)],
            )
            self._made.add((namespace, uid))
        if self._key is None:
            self._key = await self.kube.signing_key(self.system_namespace)
        meta.setdefault("annotations", {})[podsign.ANNOTATION] = podsign.sign(manifest, self._key)


# ------------------------------------------------------------------------------ I/O (KubeClient's)


def create_objects(core: Any, rbac: Any, namespace: str, bodies: list[dict[str, Any]]) -> None:
    """Creates ServiceAccounts, Roles and RoleBindings; one that exists already (409) is left as it is."""
    creators = {
        "ServiceAccount": core.create_namespaced_service_account,
        "Role": rbac.create_namespaced_role,
        "RoleBinding": rbac.create_namespaced_role_binding,
    }
    for body in bodies:
        try:
            creators[body["kind"]](namespace, body, _preload_content=False)
        except ApiException as exc:
            if exc.status != 409:
                raise


def read_or_make_key(core: Any, namespace: str) -> bytes:
    """The signing key from Secret ffrtmp-pod-signing-key (made with 32 random bytes when missing)."""
    for _ in range(3):
        try:
            secret = core.read_namespaced_secret(podsign.SECRET_NAME, namespace)
            return base64.b64decode(secret.data[podsign.SECRET_KEY])
        except ApiException as exc:
            if exc.status != 404:
                raise
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {"name": podsign.SECRET_NAME, "labels": {api.LABEL_MANAGED_BY: api.MANAGED_BY}},
            "data": {podsign.SECRET_KEY: base64.b64encode(os.urandom(32)).decode()},
        }
        try:
            core.create_namespaced_secret(namespace, body)
            log.info("made the pod-signing key %s/%s", namespace, podsign.SECRET_NAME)
        except ApiException as exc:
            if exc.status != 409:  # another replica made it first: read theirs
                raise
    raise RuntimeError(f"cannot read or make Secret {namespace}/{podsign.SECRET_NAME}")
