"""Runs never pile up: one execution per strategy at a time (a row claim that a crashed run loses after its TTL),
the beat task creates the execution and enqueues its run on commit, and a trigger expires if not started in time."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.db import connection
from django.utils import timezone

from lineage.models import LineageRecord
from tests.factories import StrategyFactory, SymbolFactory
from tests.pipeline.conftest import strategy_with_indicators
from trading import tasks
from trading.models import ExecutionStatus, SkipReason, StrategyClaim, StrategyExecution
from trading.services import (
    TRIGGER_EXPIRES_SECONDS,
    AlreadyRunning,
    execution_claim_renew,
    execution_finish,
    execution_start,
    missed_runs_record,
    strategy_create,
)


@pytest.mark.parametrize("ran_before", [False, True], ids=["first-run", "claim-row-free"])
@pytest.mark.django_db(transaction=True)
def test_two_triggers_at_the_same_moment_start_one_execution(ran_before):
    # given a strategy never run (no claim row yet), or one whose last run finished (its row free: the UPDATE path)
    strategy = StrategyFactory()
    if ran_before:
        execution_finish(execution=execution_start(strategy=strategy), status=ExecutionStatus.COMPLETED)
    barrier = threading.Barrier(2)
    results: list[str] = []

    def trigger() -> None:
        barrier.wait()
        try:
            execution_start(strategy=strategy)
            results.append("started")
        except AlreadyRunning:
            results.append("already running")
        finally:
            connection.close()

    threads = [threading.Thread(target=trigger) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(results) == ["already running", "started"]
    assert StrategyExecution.objects.filter(strategy=strategy, status=ExecutionStatus.RUNNING).count() == 1
    assert StrategyExecution.objects.filter(strategy=strategy).count() == 1 + ran_before


@pytest.mark.django_db
def test_a_running_strategy_is_started_again_only_after_its_run_finishes():
    strategy = StrategyFactory()
    first = execution_start(strategy=strategy)

    with pytest.raises(AlreadyRunning):
        execution_start(strategy=strategy)
    execution_finish(execution=first, status=ExecutionStatus.COMPLETED)
    second = execution_start(strategy=strategy)

    assert second.pk != first.pk


@pytest.mark.django_db
def test_a_claim_left_by_a_crashed_run_lapses_after_its_ttl():
    strategy = StrategyFactory()
    crashed = execution_start(strategy=strategy)
    StrategyClaim.objects.filter(strategy=strategy).update(expires_at=timezone.now() - dt.timedelta(seconds=1))

    replacement = execution_start(strategy=strategy)

    assert replacement.pk != crashed.pk
    assert not execution_claim_renew(execution=crashed)  # the crashed run, redelivered, must not run alongside
    crashed.refresh_from_db()
    assert crashed.status == ExecutionStatus.FAILED
    assert "abandoned" in crashed.error
    assert crashed.lineage.get(step_name="execution_error").status == "error"


@pytest.mark.django_db
def test_a_redelivered_run_whose_strategy_another_run_holds_is_skipped():
    strategy = StrategyFactory()
    crashed = execution_start(strategy=strategy)
    other = StrategyExecution.objects.create(strategy=strategy, started_at=timezone.now())
    StrategyClaim.objects.filter(strategy=strategy).update(execution=other)  # another run took the strategy

    tasks.strategy_run(str(crashed.pk))

    crashed.refresh_from_db()
    assert crashed.status == ExecutionStatus.SKIPPED
    assert "another run" in crashed.error


@pytest.mark.django_db
def test_the_beat_task_creates_the_execution_and_enqueues_its_run_after_commit(
    celery_eager, django_capture_on_commit_callbacks, owner
):
    strategy = strategy_with_indicators(owner)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        execution_id = tasks.strategy_due(strategy.pk)
    execution = StrategyExecution.objects.get(pk=execution_id)
    assert (execution.status, execution.trigger, len(callbacks)) == (ExecutionStatus.RUNNING, "schedule", 1)

    callbacks[0]()  # the commit happens: the run is enqueued (and, eagerly, runs)

    execution.refresh_from_db()
    assert execution.status == ExecutionStatus.COMPLETED
    strategy.refresh_from_db()
    assert strategy.last_execution_at == execution.started_at


@pytest.mark.django_db
def test_the_scheduled_trigger_expires_if_no_worker_starts_it_in_time(owner):
    strategy = strategy_create(owner=owner, name="s", symbol=SymbolFactory(), schedule_cron="* * * * *")

    assert strategy.periodic_task.expire_seconds == TRIGGER_EXPIRES_SECONDS
    assert 0 < TRIGGER_EXPIRES_SECONDS <= 600


@pytest.mark.django_db
def test_the_beat_task_of_a_deleted_strategy_does_nothing():
    assert tasks.strategy_due(987654) is None


@pytest.mark.django_db
def test_the_next_trigger_records_each_run_whose_trigger_expired_in_the_queue(owner, settings):
    # given an every-minute strategy that last ran at 10:00, whose 10:01 .. 10:08 triggers expired unseen
    strategy = strategy_create(owner=owner, name="s", symbol=SymbolFactory(), schedule_cron="* * * * *")
    last_run = dt.datetime(2026, 3, 2, 15, 0, tzinfo=dt.UTC)
    strategy.next_execution_at = last_run + dt.timedelta(minutes=1)
    now = dt.datetime(2026, 3, 2, 15, 9, 5, tzinfo=dt.UTC)

    # when the 10:09 trigger comes
    missed = missed_runs_record(strategy=strategy, now=now)

    # then every due time older than the expiry horizon is a SKIPPED trigger_expired run with its lineage; the ones
    # whose triggers may still be queued (within TRIGGER_EXPIRES_SECONDS) are not
    horizon = now - dt.timedelta(seconds=TRIGGER_EXPIRES_SECONDS)
    expected = [
        last_run + dt.timedelta(minutes=m) for m in range(1, 10) if last_run + dt.timedelta(minutes=m) < horizon
    ]
    rows = StrategyExecution.objects.filter(strategy=strategy).order_by("started_at")
    assert [e.started_at for e in rows] == expected == [e.started_at for e in missed]
    assert {(e.status, e.skip_reason) for e in rows} == {(ExecutionStatus.SKIPPED, SkipReason.TRIGGER_EXPIRED)}
    assert "expired before a worker took it" in rows[0].error
    closing = LineageRecord.objects.filter(execution__strategy=strategy, step_name="execution_complete")
    assert closing.count() == len(expected) and {r.output_data["skip_reason"] for r in closing} == {"trigger_expired"}


@pytest.mark.django_db
def test_a_strategy_that_ran_on_time_has_no_missed_runs(owner):
    strategy = strategy_create(owner=owner, name="s", symbol=SymbolFactory(), schedule_cron="* * * * *")
    strategy.next_execution_at = timezone.now() + dt.timedelta(seconds=30)

    assert missed_runs_record(strategy=strategy, now=timezone.now()) == []


@pytest.mark.django_db
def test_a_trigger_for_a_strategy_another_run_holds_is_recorded_as_skipped(owner):
    # given a strategy whose run is in progress
    strategy = strategy_create(owner=owner, name="s", symbol=SymbolFactory(), schedule_cron="* * * * *")
    running = execution_start(strategy=strategy)

    # when beat triggers it again
    skipped_id = tasks.strategy_due(strategy.pk)

    # then the trigger is a SKIPPED claim_held execution, and the running one is untouched
    skipped = StrategyExecution.objects.get(pk=skipped_id)
    assert (skipped.status, skipped.skip_reason) == (ExecutionStatus.SKIPPED, SkipReason.CLAIM_HELD)
    running.refresh_from_db()
    assert running.status == ExecutionStatus.RUNNING
