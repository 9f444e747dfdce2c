"""ffrtmp node agent: hardware probe, node labels and heartbeat, standalone pod runner, job runner."""
