"""Celery tasks: thin. Each takes ids, re-fetches, returns quietly when the row is gone, and calls services.

- `trading.strategy_due` is what each strategy's PeriodicTask fires: it records the runs whose triggers expired
  since the last one, claims the strategy, creates the execution and enqueues `trading.strategy_run` with its id
  once that is committed (a strategy another run holds gets a SKIPPED claim_held execution instead).
- `trading.strategy_run` runs (or resumes) the execution; with PIPELINE_SPLIT_QUEUES it hops queues between steps.
- `trading.orders_track` fans out one `trading.orders_track_connection` per account with working orders.
- `trading.reconcile` fans out one `trading.reconcile_connection` per account: tracked, then compared with the
  broker (drift halts the symbol). It, `portfolio.stops_watch`, `portfolio.snapshots` and `trading.daily_summaries`
  run on beat's fixed schedule (config/celery.py).
"""

from __future__ import annotations

import datetime as dt
import logging

from celery import shared_task
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from brokers.interface import BrokerError
from brokers.models import BrokerConnection
from core.coordination import LockTimeout, lock
from orders.statuses import OPEN_STATUSES
from portfolio.services import connection_reconcile, connection_track
from trading import executor
from trading.models import ExecutionStatus, SkipReason, Strategy, StrategyExecution
from trading.notifications import notify_daily_summary, notify_fill, notify_rejection
from trading.services import (
    AlreadyRunning,
    execution_claim_renew,
    execution_finish,
    execution_start,
    execution_unstarted_record,
    missed_runs_record,
    strategy_run_enqueue,
)

logger = logging.getLogger(__name__)

# A run the workers have not started within this long is dropped (the next scheduled one will come).


@shared_task(name="trading.strategy_due", ignore_result=True)
def strategy_due(strategy_id: int, trigger: str = "schedule") -> str | None:
    strategy = Strategy.objects.filter(pk=strategy_id).first()  # the default manager: never a replay's copy
    if strategy is None:
        if Strategy.with_replays.filter(pk=strategy_id, is_replay=True).exists():
            logger.error("beat triggered strategy %s, a replay's copy: refused", strategy_id)
        return None
    if trigger == "schedule":
        missed_runs_record(strategy=strategy, now=timezone.now())
    try:
        with transaction.atomic():
            execution = execution_start(strategy=strategy, trigger=trigger)
            execution_id = str(execution.pk)
            transaction.on_commit(lambda: strategy_run_enqueue(execution_id))
    except AlreadyRunning as exc:
        logger.info("%s: not started", exc)
        skipped = execution_unstarted_record(
            strategy=strategy, trigger=trigger, skip_reason=SkipReason.CLAIM_HELD, error=str(exc)
        )
        return str(skipped.pk)
    return execution_id


@shared_task(name="trading.strategy_run", ignore_result=True)
def strategy_run(execution_id: str, queue: str | None = None) -> str | None:
    execution = StrategyExecution.objects.filter(pk=execution_id).first()
    if execution is None or execution.status != ExecutionStatus.RUNNING:
        return None
    if not execution_claim_renew(execution=execution):
        execution_finish(
            execution=execution,
            status=ExecutionStatus.SKIPPED,
            error="another run of this strategy holds it",
            skip_reason=SkipReason.CLAIM_HELD,
        )
        return ExecutionStatus.SKIPPED
    outcome = executor.execute(execution_id, queue=queue)
    if outcome.handoff_queue:
        strategy_run_enqueue(execution_id, outcome.handoff_queue)
    return outcome.status


@shared_task(name="trading.orders_track", ignore_result=True)
def orders_track() -> int:
    """One poll across all strategies: one task per account that has orders still working or unsettled."""
    connection_ids = list(
        BrokerConnection.objects.filter(orders__status__in=[*OPEN_STATUSES, "SUBMITTING"])
        .values_list("pk", flat=True)
        .distinct()
    )
    for connection_id in connection_ids:
        orders_track_connection.apply_async(args=[connection_id], expires=60)
    return len(connection_ids)


@shared_task(name="trading.orders_track_connection", ignore_result=True)
def orders_track_connection(connection_id: int) -> int:
    connection = BrokerConnection.objects.filter(pk=connection_id).first()
    if connection is None:
        return 0
    try:
        # One poll per account at a time; the IBKR client keeps its 1-request-per-5-s endpoints throttled inside.
        with lock(f"orders-track:{connection_id}", ttl=120, wait=0):
            tracked = connection_track(broker_connection=connection, on_fill=notify_fill, on_rejection=notify_rejection)
            return len(tracked)
    except LockTimeout:
        return 0


@shared_task(name="trading.reconcile", ignore_result=True)
def reconcile() -> int:
    """Beat, every 5 minutes: one `trading.reconcile_connection` per account (a replay's is nobody's: its
    broker works on the replay's clock)."""
    connection_ids = list(BrokerConnection.objects.values_list("pk", flat=True))
    for connection_id in connection_ids:
        reconcile_connection.apply_async(args=[connection_id], expires=300)
    return len(connection_ids)


@shared_task(name="trading.reconcile_connection", ignore_result=True)
def reconcile_connection(connection_id: int) -> bool:
    """Track the account (fills booked and told), then compare its books with the broker's. Also sent by the IBKR
    keep-alive when a session comes back. Returns whether drift was found."""
    connection = BrokerConnection.objects.filter(pk=connection_id).first()
    if connection is None:
        return False
    try:
        with lock(f"orders-track:{connection_id}", ttl=120, wait=30):
            found = connection_reconcile(
                broker_connection=connection, on_fill=notify_fill, on_rejection=notify_rejection
            )
            return found.has_drift
    except LockTimeout:
        return False
    except BrokerError as exc:
        logger.info("reconciliation of %s skipped: %s", connection, exc)
        return False


@shared_task(name="trading.daily_summaries", ignore_result=True)
def daily_summaries() -> int:
    """Beat, 21:30 UTC on weekdays (after the US close in summer and winter): one `daily_summary` per user whose
    strategies ran in the last 24 hours."""
    end = timezone.now()
    start = end - dt.timedelta(hours=24)
    owners = User.objects.filter(strategies__executions__started_at__gte=start).distinct()
    sent = 0
    for owner in owners:
        sent += notify_daily_summary(owner=owner, day=end.date(), start=start, end=end) is not None
    return sent
