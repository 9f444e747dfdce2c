"""The local ffrtmp stack: a real etcd + kube-apiserver (envtest pattern) with ffrtmp's CRDs, PriorityClasses
and system namespace, plus the operator and standalone agents for `make up`.

`ControlPlane` serves the test fixtures (tests/conftest.py); `Stack` serves `python -m ffrtmp_stack`.
"""

from .controlplane import ControlPlane, find_bin_dir, install_base
from .stack import Stack, StackConfig

__all__ = ["ControlPlane", "Stack", "StackConfig", "find_bin_dir", "install_base"]
