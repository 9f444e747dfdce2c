"""Kubernetes API clients for tests that must not act as admin."""

from __future__ import annotations

from typing import Any

from kubernetes import client

__all__ = ["token_client"]


def token_client(control_plane: Any, token: str) -> client.ApiClient:
    """A kubernetes ApiClient for the control plane that authenticates with a bearer `token` only."""
    config = client.Configuration()
    config.host = control_plane.server
    config.ssl_ca_cert = str(control_plane.ca_file)
    config.api_key = {"authorization": f"Bearer {token}"}
    return client.ApiClient(config)
