"""ffrtmp benchmarks: the scheduler (admission throughput, latency, operator memory, API writes per job)
and the transcode overhead of the whole stack against bare ffmpeg. Run with `make bench-smoke` / `make bench`.

Every figure is a ratio against a baseline measured in the same run on the same machine, because the
machine's load (shared CPUs) moves absolute numbers a lot.
"""
