"""How the `ffrtmp` CLI reaches the cluster: kubectl's --kubeconfig/--context/--namespace rules, the
few TranscodeJob reads and writes the commands share, and API errors turned into one readable line.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import ffrtmp_api as api
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from .errors import CliError


@dataclass
class Kube:
    """The API clients and the namespace a command works in."""

    api_client: client.ApiClient
    namespace: str

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api_client)

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api_client)

    @property
    def coordination(self) -> client.CoordinationV1Api:
        return client.CoordinationV1Api(self.api_client)

    def get_job(self, name: str, namespace: str | None = None) -> dict:
        ns = namespace or self.namespace
        try:
            return self.custom.get_namespaced_custom_object(api.GROUP, api.VERSION, ns, api.PLURAL, name)
        except ApiException as exc:
            if exc.status == 404:
                raise CliError(f'transcodejob "{name}" not found in namespace "{ns}"') from None
            raise

    def patch_job_spec(self, name: str, spec: dict) -> dict:
        try:
            return self.custom.patch_namespaced_custom_object(
                api.GROUP,
                api.VERSION,
                self.namespace,
                api.PLURAL,
                name,
                {"spec": spec},
                _content_type=api.MERGE_PATCH,
            )
        except ApiException as exc:
            if exc.status == 404:
                raise CliError(f'transcodejob "{name}" not found in namespace "{self.namespace}"') from None
            raise


def connect(*, kubeconfig: str | None, context: str | None, namespace: str | None) -> Kube:
    """Like kubectl: --kubeconfig, else $KUBECONFIG, else ~/.kube/config, else in-cluster; the namespace
    from -n, else the context's, else the pod's (in-cluster), else "default"."""
    path = kubeconfig or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or str(Path.home() / ".kube/config")
    try:
        if kubeconfig or Path(path).exists():
            if not Path(path).exists():
                raise CliError(f"kubeconfig {path} does not exist")
            api_client = config.new_client_from_config(config_file=path, context=context)
            _, active = config.list_kube_config_contexts(config_file=path)
            if context:
                contexts, _ = config.list_kube_config_contexts(config_file=path)
                active = next((c for c in contexts if c["name"] == context), active)
            default_ns = (active or {}).get("context", {}).get("namespace") or "default"
        elif not os.environ.get("KUBERNETES_SERVICE_HOST"):
            raise CliError(
                f"no kubeconfig ({path} does not exist; set --kubeconfig or $KUBECONFIG) "
                "and not running inside a cluster"
            )
        else:
            config.load_incluster_config()
            api_client = client.ApiClient()
            ns_file = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
            default_ns = ns_file.read_text().strip() if ns_file.exists() else "default"
    except ConfigException as exc:
        raise CliError(f"no usable kube config: {exc}") from None
    return Kube(api_client=api_client, namespace=namespace or default_ns)


def api_error_message(exc: ApiException) -> str:
    """The API server's own message (it names the field for a refused spec), not the HTTP dump."""
    try:
        body = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        body = {}
    message = body.get("message") if isinstance(body, dict) else None
    if exc.status == 403:
        return f"forbidden: {message or exc.reason}"
    return message or f"{exc.status} {exc.reason}"
