"""ffrtmp operator: TranscodeJob API, lifecycle, scheduler and kopf handlers."""
