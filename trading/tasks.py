"""Celery tasks: thin. Each takes ids, re-fetches, returns quietly when the row is gone, and calls services.

- `trading.strategy_due` is what each strategy's PeriodicTask fires: it claims the strategy, creates the execution
  and enqueues `trading.strategy_run` with its id once that is committed.
- `trading.strategy_run` runs (or resumes) the execution; with PIPELINE_SPLIT_QUEUES it hops queues between steps.
- `trading.orders_track` fans out one `trading.orders_track_connection` per account with working orders.
- `trading.stops_watch` and `trading.portfolio_snapshots` run on beat's fixed schedule (config/celery.py).
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings
from django.db import transaction

from trading import executor
from trading.coordination import LockTimeout, lock
from trading.models import BrokerConnection, ExecutionStatus, Strategy, StrategyExecution
from trading.services import AlreadyRunning, execution_claim_renew, execution_finish, execution_start

logger = logging.getLogger(__name__)

# A run the workers have not started within this long is dropped (the next scheduled one will come).
RUN_EXPIRES_SECONDS = 600


@shared_task(name="trading.strategy_due", ignore_result=True)
def strategy_due(strategy_id: int, trigger: str = "schedule") -> str | None:
    strategy = Strategy.objects.filter(pk=strategy_id).first()
    if strategy is None:
        return None
    try:
        with transaction.atomic():
            execution = execution_start(strategy=strategy, trigger=trigger)
            execution_id = str(execution.pk)
            transaction.on_commit(lambda: strategy_run_enqueue(execution_id))
    except AlreadyRunning as exc:
        logger.info("%s: not started", exc)
        return None
    return execution_id


def strategy_run_enqueue(execution_id: str, queue: str | None = None) -> None:
    """Send the run task for a created execution: to `queue`, else where a run starts (executor.first_queue)."""
    queue = queue or executor.first_queue()
    options = {"expires": RUN_EXPIRES_SECONDS}
    if queue:
        options["queue"] = queue
    strategy_run.apply_async(args=[execution_id], kwargs={"queue": queue}, **options)


@shared_task(name="trading.strategy_run", ignore_result=True)
def strategy_run(execution_id: str, queue: str | None = None) -> str | None:
    execution = StrategyExecution.objects.filter(pk=execution_id).first()
    if execution is None or execution.status != ExecutionStatus.RUNNING:
        return None
    if not execution_claim_renew(execution=execution):
        execution_finish(
            execution=execution, status=ExecutionStatus.SKIPPED, error="another run of this strategy holds it"
        )
        return ExecutionStatus.SKIPPED
    outcome = executor.execute(execution_id, queue=queue)
    if outcome.handoff_queue:
        strategy_run_enqueue(execution_id, outcome.handoff_queue)
    return outcome.status


@shared_task(name="trading.orders_track", ignore_result=True)
def orders_track() -> int:
    """One poll across all strategies: one task per account that has orders still working or unsettled."""
    from orders.models import OPEN_STATUSES

    connection_ids = list(
        BrokerConnection.objects.filter(orders__status__in=[*OPEN_STATUSES, "SUBMITTING"])
        .filter(replay_of__isnull=True)  # a replay tracks its own account by its own clock (replays.services)
        .values_list("pk", flat=True)
        .distinct()
    )
    for connection_id in connection_ids:
        orders_track_connection.apply_async(args=[connection_id], expires=60)
    return len(connection_ids)


@shared_task(name="trading.orders_track_connection", ignore_result=True)
def orders_track_connection(connection_id: int) -> int:
    from portfolio.services import connection_track

    connection = BrokerConnection.objects.filter(pk=connection_id).first()
    if connection is None:
        return 0
    try:
        # One poll per account at a time; the IBKR client keeps its 1-request-per-5-s endpoints throttled inside.
        with lock(f"orders-track:{connection_id}", ttl=120, wait=0):
            return len(connection_track(broker_connection=connection))
    except LockTimeout:
        return 0


@shared_task(name="trading.stops_watch", ignore_result=True)
def stops_watch() -> int:
    from portfolio.services import stops_watch as watch

    try:
        with lock("stops-watch", ttl=120, wait=0):
            return len(watch())
    except LockTimeout:
        return 0


@shared_task(name="trading.portfolio_snapshots", ignore_result=True)
def portfolio_snapshots() -> int:
    """Snapshots of every portfolio, then each account's positions compared with the broker's (drift flagged)."""
    from portfolio.services import connection_reconcile, snapshots_take
    from trading.broker import BrokerError

    taken = snapshots_take()
    # A replay's account is compared by nobody: its broker works on the replay's clock, not this one.
    for connection in BrokerConnection.objects.filter(replay_of__isnull=True):
        try:
            connection_reconcile(broker_connection=connection)
        except BrokerError as exc:
            logger.info("reconciliation of %s skipped: %s", connection, exc)
    return len(taken)


@shared_task(name="trading.ibkr_keepalive", ignore_result=True)
def ibkr_keepalive() -> int:
    """Beat, every 60 s: one keep-alive per IBKR connection (an idle gateway session dies after about 5 minutes)."""
    from trading.models import BrokerKind

    connection_ids = list(BrokerConnection.objects.filter(kind=BrokerKind.IBKR).values_list("pk", flat=True))
    for connection_id in connection_ids:
        ibkr_keepalive_connection.apply_async(args=[connection_id], expires=55)
    if settings.IBKR_GATEWAY_URL:  # the gateway of strategies with no broker connection
        ibkr_keepalive_environment.apply_async(expires=55)
    return len(connection_ids) + bool(settings.IBKR_GATEWAY_URL)


@shared_task(name="trading.ibkr_keepalive_environment", ignore_result=True)
def ibkr_keepalive_environment() -> bool | None:
    """Tickle the gateway of IBKR_GATEWAY_URL (no BrokerConnection row). No retry: the next beat is one."""
    from trading.broker.ibkr import session_keepalive

    try:
        with lock("ibkr-keepalive:environment", ttl=60, wait=0):
            return session_keepalive(connection=None).can_trade
    except LockTimeout:
        return None


@shared_task(name="trading.ibkr_keepalive_connection", ignore_result=True)
def ibkr_keepalive_connection(connection_id: int) -> bool | None:
    """Tickle one gateway and store its session state on the connection. No retry: the next beat is one."""
    from trading.broker.ibkr import session_keepalive

    connection = BrokerConnection.objects.filter(pk=connection_id).first()
    if connection is None:
        return None
    try:
        with lock(f"ibkr-keepalive:{connection_id}", ttl=60, wait=0):
            return session_keepalive(connection=connection).can_trade
    except LockTimeout:
        return None
