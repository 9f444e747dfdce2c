"""Helpers the tests import (fixtures stay in the conftest.py files): one wait, one free port, the operator
and agent as real processes, teardown that leaves nothing behind, and API clients. The bigger kits are
submodules: `cluster` (nodes, Leases and a stand-in kubelet for operator tests), `stack` (operators plus
standalone agents for the reliability and security tests), `runner` (the job runner and real media).
"""

from .cleanup import delete_jobs, delete_node
from .kube import token_client
from .net import free_port, scrape_metrics, serve_folder
from .processes import AgentProcess, OperatorProcess, registered_agent, terminate
from .waiting import wait_until

__all__ = [
    "AgentProcess",
    "OperatorProcess",
    "delete_jobs",
    "delete_node",
    "free_port",
    "registered_agent",
    "scrape_metrics",
    "serve_folder",
    "terminate",
    "token_client",
    "wait_until",
]
