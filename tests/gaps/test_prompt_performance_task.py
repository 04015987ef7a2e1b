"""The periodic prompt-performance refresh: a thin task on beat's fixed schedule."""

from __future__ import annotations

from decimal import Decimal

import pytest

from config.celery import app
from core.coordination import lock
from signals_app.models import PromptPerformance
from signals_app.tasks import prompt_performance_refresh_task
from tests.factories import PromptPerformanceFactory, PromptVersionFactory, TradingSignalFactory


@pytest.mark.django_db
def test_the_task_brings_prompt_performance_up_to_date(live_strategy):
    # given a stale row for a version that has since produced a BUY and a HOLD
    version = PromptVersionFactory()
    PromptPerformanceFactory(prompt_version=version, model="claude", signals=0, buys=0, holds=0)
    TradingSignalFactory(strategy=live_strategy, prompt_version=version, model="claude", confidence=Decimal("0.7"))
    TradingSignalFactory(strategy=live_strategy, prompt_version=version, model="claude", hold=True)

    # when beat's task runs
    refreshed = prompt_performance_refresh_task.apply().get()

    # then the row holds the version's counts
    row = PromptPerformance.objects.get(prompt_version=version, model="claude")
    assert refreshed == 1
    assert (row.signals, row.buys, row.holds) == (2, 1, 1)


@pytest.mark.django_db
def test_a_refresh_already_running_makes_the_second_one_return(live_strategy):
    version = PromptVersionFactory()
    TradingSignalFactory(strategy=live_strategy, prompt_version=version, model="claude")

    with lock("prompt-performance-refresh", ttl=30, wait=0):
        assert prompt_performance_refresh_task.apply().get() == 0

    assert not PromptPerformance.objects.exists()


def test_beat_runs_the_refresh_every_ten_minutes_and_drops_a_missed_one():
    entry = app.conf.beat_schedule["prompt-performance"]

    assert entry["task"] == prompt_performance_refresh_task.name
    assert entry["schedule"] == 600.0
    assert 0 < entry["options"]["expires"] < entry["schedule"]
