"""The node agent: probes the hardware and proves encoders (probe), writes the Node's labels and hardware
annotation (labels), keeps the heartbeat Lease fresh (lease) and serves node metrics (metrics)."""
