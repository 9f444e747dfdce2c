"""API reachability: an expired Lease counts only once the API has answered for a whole lease period, and
the API answering again after a break asks for a resync."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from ffrtmp_operator.clock import Clock
from ffrtmp_operator.reachability import Reachability

from tests.unit.shell_fakes import FakeKube

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def test_given_the_api_answering_for_less_than_a_lease_period_then_heartbeats_could_not_have_arrived():
    reach = Reachability(FakeKube(), system_namespace="ffrtmp-system", clock=Clock(lambda: NOW))
    assert not reach.heartbeats_could_arrive(NOW, 15)  # never reached yet
    reach.reached()
    assert not reach.heartbeats_could_arrive(NOW + timedelta(seconds=14), 15)
    assert reach.heartbeats_could_arrive(NOW + timedelta(seconds=15), 15)


def test_given_a_break_when_the_api_answers_again_then_a_resync_is_asked_for_once():
    kube = FakeKube()
    reach = Reachability(kube, system_namespace="ffrtmp-system", clock=Clock(lambda: NOW))
    reach.reached()

    async def observe() -> bool:
        return await reach.observe()

    assert asyncio.run(observe()) is False  # answering all along
    kube.answering = False
    assert asyncio.run(observe()) is False and reach.since is None
    kube.answering = True
    assert asyncio.run(observe()) is True and reach.since is not None
    assert asyncio.run(observe()) is False
