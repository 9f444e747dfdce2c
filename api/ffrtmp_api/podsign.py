"""Job pods signed by the operator, so a standalone agent runs only pods the operator built: a user who may
create Pods could otherwise give one the operator's labels and owner and have the agent run any plan or
mount any host folder on a machine with no container isolation.

The operator signs, with a key only it and the agents can read (Secret `ffrtmp-pod-signing-key` in the
system namespace), an HMAC-SHA256 of `signed_view(pod)`: every field the agent acts on (identity, owner,
command, environment with the plan, volumes and mounts, user and groups, host namespaces, limits), read the
same way from the manifest the operator sent and the pod the API server stored after defaulting. Pure.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from decimal import Decimal
from typing import Any

from .keys import LABEL_MANAGED_BY

__all__ = ["ANNOTATION", "SECRET_KEY", "SECRET_NAME", "parse_quantity", "sign", "signed_view", "verify"]

ANNOTATION = "ffrtmp.io/pod-signature"
SECRET_NAME = "ffrtmp-pod-signing-key"
SECRET_KEY = "key"
SERVICE_ACCOUNT_VOLUME = "kube-api-access-"  # the projected token volume the ServiceAccount admission adds

_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:([eE][-+]?[0-9]+)|(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?)$")
_SUFFIX = {
    "": Decimal(1),
    "m": Decimal("0.001"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}


def parse_quantity(text: str | float) -> Decimal:
    """A Kubernetes quantity ("500m", "4Gi", "1e3") as a number; ValueError when it is not one."""
    match = _QUANTITY.match(str(text).strip())
    if not match:
        raise ValueError(f"{text!r} is not a Kubernetes quantity")
    number, exponent, suffix = match.groups()
    return Decimal(number) * (Decimal(10) ** int(exponent[1:]) if exponent else _SUFFIX[suffix or ""])


def _quantities(values: dict[str, Any] | None) -> dict[str, str]:
    """cpu in millicores, memory in bytes, as strings: "0.5" and "500m" sign alike."""
    out = {}
    for name, value in sorted((values or {}).items()):
        number = parse_quantity(value) * (1000 if name == "cpu" else 1)
        out[name] = str(number.to_integral_value())
    return out


def _service_account_volume(volume: dict[str, Any]) -> bool:
    return str(volume.get("name", "")).startswith(SERVICE_ACCOUNT_VOLUME) and "projected" in volume


def _volume(volume: dict[str, Any]) -> dict[str, Any]:
    if "hostPath" in volume:
        host = volume["hostPath"] or {}
        return {"name": volume["name"], "hostPath": host.get("path"), "type": host.get("type") or ""}
    if "emptyDir" in volume:
        empty = volume["emptyDir"] or {}
        size = empty.get("sizeLimit")
        return {
            "name": volume["name"],
            "emptyDir": empty.get("medium") or "",
            "sizeLimit": _quantities({"memory": size})["memory"] if size is not None else None,
        }
    if "persistentVolumeClaim" in volume:
        claim = volume["persistentVolumeClaim"] or {}
        return {"name": volume["name"], "claim": claim.get("claimName"), "readOnly": bool(claim.get("readOnly"))}
    return {"name": volume.get("name"), "other": sorted(k for k in volume if k != "name")}


def _security(context: dict[str, Any] | None, *, container: bool) -> dict[str, Any]:
    ctx = context or {}
    view = {k: ctx.get(k) for k in ("runAsUser", "runAsGroup", "runAsNonRoot")}
    if container:
        view.update(
            privileged=bool(ctx.get("privileged")),
            allowPrivilegeEscalation=ctx.get("allowPrivilegeEscalation"),
            add=sorted((ctx.get("capabilities") or {}).get("add") or []),
        )
    else:
        view.update(fsGroup=ctx.get("fsGroup"), supplementalGroups=sorted(ctx.get("supplementalGroups") or []))
    return view


def signed_view(pod: dict[str, Any]) -> dict[str, Any]:
    """What the signature covers: the fields a standalone agent acts on, normalised so the API server's
    defaulting (quantities, empty fields, the ServiceAccount volume) does not change them."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    containers = spec.get("containers") or []
    first = containers[0] if containers else {}
    volumes = spec.get("volumes") or []
    token_volumes = {v.get("name") for v in volumes if _service_account_volume(v)}
    return {
        "namespace": meta.get("namespace"),
        "name": meta.get("name"),
        "labels": {
            k: v
            for k, v in sorted((meta.get("labels") or {}).items())
            if k.startswith("ffrtmp.io/") or k == LABEL_MANAGED_BY
        },
        "owners": [
            {k: ref.get(k) for k in ("apiVersion", "kind", "name", "uid")} for ref in meta.get("ownerReferences") or []
        ],
        "nodeName": spec.get("nodeName"),
        "serviceAccountName": spec.get("serviceAccountName"),
        "hostNamespaces": [bool(spec.get(k)) for k in ("hostNetwork", "hostPID", "hostIPC", "hostUsers")],
        "containerCount": [
            len(containers),
            len(spec.get("initContainers") or []),
            len(spec.get("ephemeralContainers") or []),
        ],
        "security": _security(spec.get("securityContext"), container=False),
        "container": {
            "command": first.get("command") or [],
            "args": first.get("args") or [],
            "workingDir": first.get("workingDir") or "",
            "env": first.get("env") or [],
            "envFrom": first.get("envFrom") or [],
            "mounts": [
                [
                    m.get("name"),
                    m.get("mountPath"),
                    bool(m.get("readOnly")),
                    m.get("subPath") or "",
                    m.get("subPathExpr") or "",
                ]
                for m in first.get("volumeMounts") or []
                if m.get("name") not in token_volumes
            ],
            "security": _security(first.get("securityContext"), container=True),
            "limits": _quantities((first.get("resources") or {}).get("limits")),
        },
        "volumes": [_volume(v) for v in volumes if v.get("name") not in token_volumes],
    }


def _digest(pod: dict[str, Any], key: bytes) -> str:
    text = json.dumps(signed_view(pod), sort_keys=True, separators=(",", ":"))
    return base64.b64encode(hmac.new(key, text.encode(), hashlib.sha256).digest()).decode()


def sign(pod: dict[str, Any], key: bytes) -> str:
    """The signature annotation's value for `pod` (a manifest about to be created)."""
    return "v1:" + _digest(pod, key)


def verify(pod: dict[str, Any], key: bytes) -> bool:
    """Whether the pod carries a valid signature under `key` (compared in constant time)."""
    value = ((pod.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION) or ""
    return value.startswith("v1:") and hmac.compare_digest(value[3:], _digest(pod, key))
