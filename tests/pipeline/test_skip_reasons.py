"""One vocabulary for skipped runs: a SKIPPED execution always names its SkipReason, the database refuses one that
does not, and the strategy page and Logs show it."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from tests.factories import StrategyExecutionFactory, StrategyFactory
from trading import tasks
from trading.models import ExecutionStatus, SkipReason, StrategyExecution
from trading.services import execution_finish, execution_start

THE_ELEVEN = {
    "inactive",
    "claim_held",
    "trigger_expired",
    "playback_exhausted",
    "session_down",
    "stale_data",
    "market_closed",
    "llm_budget",
    "drift_halt",
    "protection_halt",
    "strategy_archived",
}


def test_the_vocabulary_is_exactly_the_eleven_reasons():
    assert set(SkipReason.values) == THE_ELEVEN


@pytest.mark.django_db
def test_the_database_refuses_a_skipped_execution_without_a_reason_and_a_reason_on_any_other():
    execution = StrategyExecutionFactory()

    for status, reason in [(ExecutionStatus.SKIPPED, ""), (ExecutionStatus.COMPLETED, SkipReason.INACTIVE)]:
        with pytest.raises(IntegrityError), transaction.atomic():
            StrategyExecution.objects.filter(pk=execution.pk).update(status=status, skip_reason=reason)


@pytest.mark.django_db
def test_finishing_a_skip_without_its_reason_is_refused_before_anything_is_written():
    execution = execution_start(strategy=StrategyFactory(), trigger="manual")

    with pytest.raises(ValueError, match="needs skip reason"):
        execution_finish(execution=execution, status=ExecutionStatus.SKIPPED, error="why not")

    execution.refresh_from_db()
    assert execution.status == ExecutionStatus.RUNNING


@pytest.mark.django_db
def test_a_run_whose_claim_another_run_holds_is_skipped_as_claim_held():
    # given an execution whose claim was taken over by a later run of the same strategy
    strategy = StrategyFactory()
    first = execution_start(strategy=strategy, trigger="manual")
    execution_finish(execution=first, status=ExecutionStatus.COMPLETED)
    stale = StrategyExecution.objects.create(strategy=strategy, started_at=first.started_at, trigger="schedule")
    execution_start(strategy=strategy, trigger="manual")  # holds the strategy now

    # when the stale execution's task runs
    tasks.strategy_run(str(stale.pk))

    # then it is closed as a skip that says why
    stale.refresh_from_db()
    assert (stale.status, stale.skip_reason) == (ExecutionStatus.SKIPPED, SkipReason.CLAIM_HELD)


@pytest.mark.django_db
def test_the_strategy_page_and_logs_show_why_a_run_was_skipped(client):
    strategy = StrategyFactory()
    StrategyExecutionFactory(
        strategy=strategy, status=ExecutionStatus.SKIPPED, skip_reason=SkipReason.SESSION_DOWN, finished=True
    )
    client.force_login(strategy.owner)

    detail = client.get(f"/strategies/{strategy.pk}/").content.decode()
    logs = client.get("/logs/").content.decode()

    assert "Broker session down" in detail
    assert "SKIPPED: Broker session down" in logs
