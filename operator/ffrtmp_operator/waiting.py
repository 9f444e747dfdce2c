"""Visible waiting: a queued job the scheduling cycle could not place says why, on its Scheduled condition
(False, with the reason and a message, as kube-scheduler writes a pod's PodScheduled) and in one Event
per change of reason. Bounded: the cycle names at most a few dozen jobs per pass, and only a change is
written, so 10,000 queued jobs behind full nodes cost no status write per pass.
"""

from __future__ import annotations

import logging

from ffrtmp_api import Phase, Reason

from . import lifecycle
from .cache import Cache
from .clock import Clock
from .lifecycle_writer import LifecycleWriter
from .scheduling import Waiting

log = logging.getLogger("ffrtmp.scheduler")
# Reasons that need someone to act (an admin, the job's owner) are Warnings; the rest is the normal wait.
WARNINGS = frozenset({Reason.NO_MATCHING_NODE, Reason.QUEUE_NOT_FOUND, Reason.PRIORITY_CLASS_NOT_FOUND})
NOTES_PER_PASS = 32
"""Status writes per pass at most: a burst of changes (a queue paused) is spread over a few passes."""


class WaitingNotes:
    def __init__(self, cache: Cache, writer: LifecycleWriter, *, clock: Clock) -> None:
        self.cache = cache
        self.writer = writer
        self.clock = clock

    def due(self, waiting: list[Waiting]) -> list[Waiting]:
        """The notes that change what a job says (its cached record: the newest the operator knows)."""
        due = []
        for note in waiting:
            job = self.cache.jobs.get(note.job.key)
            # A new job is written Queued after the cycle; it says why it waits in the next pass.
            if job is None or job.phase != Phase.QUEUED or job.scheduled == (note.reason[:64], note.message[:1024]):
                continue
            due.append(note._replace(job=job))
        return due[:NOTES_PER_PASS]

    async def note(self, note: Waiting) -> bool:
        """Write one job's reason and post its Event; False when it said so already or changed meanwhile."""
        job = note.job
        patch = lifecycle.waiting(
            job.status(), reason=note.reason, message=note.message, now=self.clock(), generation=job.generation or None
        )
        if patch is None or await self.writer.write_status(job, patch) is None:
            return False
        log.debug("job waits", extra={"job": f"{job.namespace}/{job.name}", "reason": note.reason})
        await self.writer.post_event(
            job, reason=note.reason, message=note.message, type_="Warning" if note.reason in WARNINGS else "Normal"
        )
        return True
