"""The local kubelet of the standalone stack (no kubelet on the machine): registers the Node
(registration) and runs the job pods bound to it as local processes (standalone), reading the pod spec
(podspec, volumes), starting processes (processes, mountns) and posting pod status (podstatus)."""
