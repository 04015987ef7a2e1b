"""Live statistics count live rows only: a replay's steps and signals never flood step statistics or prompt
performance, and a replay's runs send no notifications."""

from __future__ import annotations

from decimal import Decimal

import pytest

from lineage.services import step_statistics
from signals_app.models import PromptPerformance
from signals_app.services import prompt_performance_refresh
from tests.factories import (
    LineageRecordFactory,
    PromptPerformanceFactory,
    PromptVersionFactory,
    StrategyExecutionFactory,
    TradingSignalFactory,
)

pytestmark = pytest.mark.django_db


def test_step_statistics_leave_a_replays_steps_out(owner, live_strategy, replay_strategy):
    # given one live run whose chart step succeeded, and a replay run whose chart step failed
    live_run = StrategyExecutionFactory(strategy=live_strategy, finished=True)
    LineageRecordFactory(execution=live_run, step_number=4, step_name="generate_charts", duration_ms=100)
    replay_run = StrategyExecutionFactory(strategy=replay_strategy, finished=True, trigger="replay")
    LineageRecordFactory(
        execution=replay_run, step_number=4, step_name="generate_charts", failed=True, error="replay chart error"
    )

    # when the owner asks for the step's statistics
    stats = step_statistics(owner=owner, step_name="generate_charts")

    # then only the live run counts
    assert (stats["total_executions"], stats["successful"], stats["failed"]) == (1, 1, 0)
    assert stats["success_rate"] == 1.0
    assert stats["average_duration_ms"] == 100.0
    assert stats["common_errors"] == []


def test_step_statistics_of_a_replays_strategy_are_empty(owner, replay_strategy):
    run = StrategyExecutionFactory(strategy=replay_strategy, finished=True, trigger="replay")
    LineageRecordFactory(execution=run, step_number=4, step_name="generate_charts")

    stats = step_statistics(owner=owner, step_name="generate_charts", strategy_id=replay_strategy.pk)

    assert stats["total_executions"] == 0 and stats["success_rate"] is None


def test_prompt_performance_counts_live_signals_only(live_strategy, replay_strategy):
    # given a prompt version with one live BUY and three replay BUYs, all with the same model
    version = PromptVersionFactory()
    TradingSignalFactory(strategy=live_strategy, prompt_version=version, model="m", confidence=Decimal("0.8"))
    for _ in range(3):
        TradingSignalFactory(strategy=replay_strategy, prompt_version=version, model="m", confidence=Decimal("0.2"))

    # when prompt performance is refreshed
    prompt_performance_refresh()

    # then its row counts the live signal only
    row = PromptPerformance.objects.get(prompt_version=version, model="m")
    assert (row.signals, row.buys) == (1, 1)
    assert row.average_confidence == Decimal("0.8000")


def test_prompt_performance_drops_a_row_only_replays_produced(replay_strategy):
    # given a row counted from a replay's signals (before replays were left out)
    version = PromptVersionFactory()
    TradingSignalFactory(strategy=replay_strategy, prompt_version=version, model="m")
    PromptPerformanceFactory(prompt_version=version, model="m", signals=1, buys=1)

    prompt_performance_refresh()

    assert not PromptPerformance.objects.filter(prompt_version=version).exists()


def test_a_replays_failed_run_notifies_nobody_and_stores_nothing(settings, replay_strategy):
    from django.core import mail

    from notifications.models import Notification
    from trading.notifications import notify_run_failed

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.NOTIFY_WEBHOOK_URL = ""
    run = StrategyExecutionFactory(strategy=replay_strategy, status="FAILED", error="boom", trigger="replay")

    assert notify_run_failed(execution=run) is None
    assert mail.outbox == []
    assert not Notification.objects.exists()
