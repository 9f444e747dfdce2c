"""The job runner: the process inside a job pod that runs one TranscodeJob attempt's ExecutionPlan
(ffmpeg with progress, pause/cancel through a watch, output placement, quality, energy) and reports
status.progress and status.result. Entry point: `ffrtmp-runner` / `python -m ffrtmp_agent.runner`.

Start-up CPU counts for every job: keep imports here light (urllib3, not the kubernetes package).
"""
