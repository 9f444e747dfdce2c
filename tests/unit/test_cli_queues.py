"""`ffrtmp queues` rows (pure): queue objects with their status, the built-in queues the operator serves
where no object of their name exists (counted from the jobs), in serving order."""

from datetime import UTC, datetime

from ffrtmp_cli.queues import effective, queue_rows

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def test_given_one_queue_object_when_listed_then_it_joins_the_built_ins_in_serving_order():
    ingest = {
        "metadata": {"name": "ingest", "creationTimestamp": "2026-01-01T11:00:00Z"},
        "spec": {"order": 150, "maxRunning": 4, "paused": True, "fairSharing": {"enabled": True}},
        "status": {"pending": 3, "admitted": 4, "running": 2},
    }
    jobs = [
        {"spec": {"queue": "live"}, "status": {"phase": "Processing"}},
        {"spec": {"queue": "batch"}, "status": {"phase": "Queued"}},
    ]
    rows = queue_rows(effective([ingest]), jobs=jobs, now=NOW)
    assert [r[0] for r in rows] == ["live", "default", "ingest", "batch"]
    assert rows[0] == ["live", 0, "false", "-", 0, 1, 1, "off", "batch", "(built-in)"]
    assert rows[2] == ["ingest", 150, "true", 4, 3, 4, 2, "on", "-", "1h0m"]
    assert rows[3][4] == 1  # a queued batch job
