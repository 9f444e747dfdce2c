"""The ffrtmp agent side, one subpackage per process:

- `node/`: the node agent (`ffrtmp-agent`, `python -m ffrtmp_agent`): hardware probe, node labels,
  heartbeat Lease, node metrics. Runs on every worker (DaemonSet).
- `kubelet/`: the local kubelet of the standalone stack (`ffrtmp-agent --standalone` only): registers the
  Node and runs its job pods as local processes.
- `runner/`: the job runner (`ffrtmp-runner`, `python -m ffrtmp_agent.runner`), inside each job pod.
- `energy.py`: energy counters, shared by the runner's result and the node metrics so both agree.
"""
