"""Strategies and their schedules, and the claim that keeps one run per strategy at a time.

Every write to a strategy goes through here (admin, pages, API), so its django-celery-beat PeriodicTask always
matches it. PeriodicTask and CrontabSchedule rows are written with `save()`/`delete()` inside the strategy's own
transaction: django-celery-beat's signal handlers bump `PeriodicTasks.last_change()` on those calls, which is what
makes a running beat reload its schedule at once.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterable
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from celery import current_app
from celery.schedules import crontab as celery_crontab
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask
from django_celery_beat.validators import crontab_validator

from brokers.models import BrokerConnection, BrokerKind
from lineage.models import LineageStatus
from lineage.services import ERROR_STEP, ERROR_STEP_NUMBER, lineage_build, lineage_record, lineage_record_many
from lineage.steps import STEP_NUMBERS
from market.models import IndicatorConfig, MarketDataSource
from orders.models import Order, Trade
from orders.statuses import TERMINAL_STATUSES
from portfolio.models import Position
from trading.models import ExecutionStatus, SkipReason, Strategy, StrategyClaim, StrategyExecution, StrategyIndicator
from trading.queues import first_queue

BEAT_TASK = "trading.strategy_due"
DEFAULT_TIMEZONE = "America/New_York"
# A scheduled trigger not picked up within this long is dropped by the worker instead of running late.
TRIGGER_EXPIRES_SECONDS = 300
# How long a run holds its strategy. A run that outlives it (a crashed worker) no longer blocks the next one.
CLAIM_TTL = dt.timedelta(minutes=10)

_CRON_FIELDS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")


# --- cron ----------------------------------------------------------------------------------------------------------


def cron_fields(expression: str) -> dict[str, str]:
    """The five fields of a cron expression ("minute hour day-of-month month day-of-week"), validated.

    Raises ValidationError naming what is wrong; nothing else is accepted (no @daily, no six-field seconds).
    """
    parts = (expression or "").split()
    if len(parts) != 5:
        raise ValidationError(
            f"{expression!r} is not a cron expression: give five fields, minute hour day-of-month month day-of-week"
        )
    crontab_validator(" ".join(parts))
    fields = dict(zip(_CRON_FIELDS, parts, strict=True))
    try:
        celery_crontab(**fields)
    except (ValueError, TypeError) as exc:
        raise ValidationError(f"{expression!r}: {exc}") from exc
    return fields


def timezone_validate(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError(f"{name!r} is not a time zone name (e.g. America/New_York)") from exc
    return name


def cron_next(expression: str, tz: str, *, after: dt.datetime) -> dt.datetime | None:
    """The first instant strictly after `after` that the cron expression names, in the zone `tz`, as aware UTC.

    Beat evaluates the same CrontabSchedule (celery's rule: month, day of month and day of week must all match).
    """
    schedule = celery_crontab(**cron_fields(expression))
    zone = ZoneInfo(tz)
    start = after.astimezone(zone).replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    hours, minutes = sorted(schedule.hour), sorted(schedule.minute)
    for offset in range(366 * 5):  # Feb 29 schedules repeat within four years
        day = start.date() + dt.timedelta(days=offset)
        if day.month not in schedule.month_of_year or day.day not in schedule.day_of_month:
            continue
        if day.isoweekday() % 7 not in schedule.day_of_week:  # celery counts Sunday as 0
            continue
        for hour in hours:
            for minute in minutes:
                candidate = dt.datetime.combine(day, dt.time(hour, minute), tzinfo=zone)
                if candidate >= start:
                    return candidate.astimezone(dt.UTC)
    return None


# --- strategies ----------------------------------------------------------------------------------------------------


def strategy_create(*, owner, name: str, symbol, indicators: Iterable[IndicatorConfig] = (), **fields: Any) -> Strategy:
    """Create a strategy (active unless told otherwise) with its schedule."""
    strategy = Strategy(owner=owner, name=name, symbol=symbol, **fields)
    with transaction.atomic():
        strategy_save(strategy=strategy)
        _indicators_set(strategy, indicators, owner=owner)
    return strategy


def strategy_update(
    *, strategy: Strategy, indicators: Iterable[IndicatorConfig] | None = None, **changes: Any
) -> Strategy:
    """Change fields of a strategy; the schedule follows in the same transaction."""
    for name, value in changes.items():
        if name in {"id", "pk", "owner", "owner_id", "periodic_task", "periodic_task_id"}:
            raise ValidationError(f"{name} cannot be changed")
        setattr(strategy, name, value)
    with transaction.atomic():
        strategy_save(strategy=strategy)
        if indicators is not None:
            _indicators_set(strategy, indicators, owner=strategy.owner)
    return strategy


def strategy_save(*, strategy: Strategy) -> Strategy:
    """Validate and save a strategy built elsewhere (an admin or page form), then bring its PeriodicTask in line.

    Bad input raises ValidationError before anything is written; so does a change to an archived strategy.
    """
    if strategy.pk and Strategy.objects.filter(pk=strategy.pk, archived_at__isnull=False).exists():
        raise ValidationError(f"{strategy.name} is archived: it cannot be changed or resumed")
    strategy.schedule_timezone = strategy.schedule_timezone or DEFAULT_TIMEZONE
    errors: dict[str, list[str]] = {}
    try:
        cron_fields(strategy.schedule_cron)
    except ValidationError as exc:
        errors["schedule_cron"] = exc.messages
    try:
        timezone_validate(strategy.schedule_timezone)
    except ValidationError as exc:
        errors["schedule_timezone"] = exc.messages
    if errors:
        raise ValidationError(errors)
    strategy.full_clean(exclude=["periodic_task"])
    with transaction.atomic():
        _account_of_its_own(strategy)
        strategy.save()
        schedule_sync(strategy=strategy)
    return strategy


def _account_of_its_own(strategy: Strategy) -> None:
    """One clock per simulated account. A playback strategy runs on its own clock, so sharing a simulated account
    would value (and size) the same account at two instants: it gets an account of its own, made with it, with the
    chosen account's starting cash. Strategies on the wall clock share their account, but not with a playback one.
    Only when the strategy is new or is moved to the account, so an account that holds its orders is never left."""
    connection = strategy.broker_connection
    if connection is None or connection.kind != BrokerKind.SIMULATED:
        return
    before = Strategy.objects.filter(pk=strategy.pk).values("broker_connection_id", "market_data_source").first()
    if before == {"broker_connection_id": connection.pk, "market_data_source": strategy.market_data_source}:
        return
    sharing = Strategy.objects.current().filter(broker_connection=connection).exclude(pk=strategy.pk)
    own_clock = strategy.market_data_source == MarketDataSource.PLAYBACK
    if not (sharing.exists() if own_clock else sharing.filter(market_data_source=MarketDataSource.PLAYBACK).exists()):
        return
    taken = set(BrokerConnection.objects.filter(owner=strategy.owner).values_list("name", flat=True))
    name = f"{strategy.name} account"[:100]
    for number in range(2, 1000):
        if name not in taken:
            break
        name = f"{strategy.name} account {number}"[:100]
    strategy.broker_connection = BrokerConnection.objects.create(
        owner=strategy.owner, name=name, kind=BrokerKind.SIMULATED, starting_cash=connection.starting_cash
    )


def strategy_pause(*, strategy: Strategy) -> Strategy:
    if strategy.archived_at is not None:  # paused for good already
        return strategy
    return strategy_update(strategy=strategy, is_active=False)


def strategy_resume(*, strategy: Strategy) -> Strategy:
    """Raises StrategyPaused for an archived strategy: it never runs again."""
    if strategy.archived_at is not None:
        raise StrategyPaused(f"{strategy.name} is archived: it runs nothing more")
    return strategy_update(strategy=strategy, is_active=True)


class StrategyInUse(Exception):
    """Archiving would leave an open position or working orders behind: the caller must ask to archive anyway."""


def strategy_in_use(*, strategy: Strategy) -> str:
    """Why archiving the strategy needs a second thought, in words, or "": its open position, its working orders."""
    reasons = []
    for position in Position.objects.filter(strategy=strategy).open().select_related("symbol"):
        protect = " and ".join(
            f"{name} {value}"
            for name, value in (("stop", position.stop_loss), ("target", position.take_profit))
            if value
        )
        reasons.append(
            f"an open position of {position.quantity.normalize():f} {position.symbol.symbol}"
            + (f" ({protect})" if protect else "")
        )
    working = Order.objects.filter(strategy=strategy).exclude(status__in=TERMINAL_STATUSES).count()
    if working:
        reasons.append(f"{working} working order{'s' if working != 1 else ''}")
    return "; ".join(reasons)


def strategy_archive(*, strategy: Strategy, anyway: bool = False) -> Strategy:
    """What deleting a strategy does: it is archived, never deleted. Its schedule goes and it runs nothing more; its
    executions, lineage, signals and orders stay, and the stop/target watch keeps watching its open position until it
    is closed. With an open position or working orders, StrategyInUse unless `anyway`."""
    reason = strategy_in_use(strategy=strategy)
    if reason and not anyway:
        raise StrategyInUse(f"{strategy.name} still has {reason}: archive it anyway, or close them first")
    if strategy.archived_at is not None:
        return strategy
    with transaction.atomic():
        task = strategy.periodic_task
        Strategy.objects.filter(pk=strategy.pk).update(
            archived_at=timezone.now(), is_active=False, periodic_task=None, next_execution_at=None
        )
        if task is not None:
            crontab_id = task.crontab_id
            task.delete()
            _crontab_drop_if_unused(crontab_id)
        strategy.refresh_from_db()
    return strategy


def _indicators_set(strategy: Strategy, indicators: Iterable[IndicatorConfig], *, owner) -> None:
    indicators = list(indicators)
    foreign = [i.name for i in indicators if i.owner_id != owner.pk]
    if foreign:
        raise ValidationError(f"indicators not yours: {', '.join(foreign)}")
    StrategyIndicator.objects.filter(strategy=strategy).delete()
    StrategyIndicator.objects.bulk_create(
        StrategyIndicator(strategy=strategy, indicator=indicator, position=position)
        for position, indicator in enumerate(indicators)
    )


# --- the schedule ----------------------------------------------------------------------------------------------


class ReplayCopyNotScheduled(Exception):
    """A replay runs its copy of a strategy by its own clock: beat must never run it (nor can it: a constraint)."""


def schedule_sync(*, strategy: Strategy) -> PeriodicTask:
    """Make the strategy's PeriodicTask match it: crontab, time zone, enabled = active. Call inside a transaction."""
    if strategy.is_replay:
        raise ReplayCopyNotScheduled(f"strategy {strategy.pk} is a replay's copy: it has no schedule")
    fields = cron_fields(strategy.schedule_cron)
    zone = strategy.schedule_timezone or DEFAULT_TIMEZONE
    schedule = CrontabSchedule.objects.filter(timezone=zone, **fields).order_by("id").first()
    if schedule is None:
        schedule = CrontabSchedule(timezone=zone, **fields)
        schedule.save()

    task = strategy.periodic_task
    previous_crontab_id = task.crontab_id if task is not None else None
    if task is None:
        task = PeriodicTask(name=f"strategy-{strategy.pk}")
    task.task = BEAT_TASK
    task.crontab = schedule
    task.args = json.dumps([strategy.pk])
    task.kwargs = "{}"
    task.enabled = strategy.is_active
    task.expire_seconds = TRIGGER_EXPIRES_SECONDS
    task.description = f"{strategy.name} ({strategy.owner})"
    task.save()  # save(), not update(): beat only notices changes made through the model's signals

    if previous_crontab_id and previous_crontab_id != schedule.pk:
        _crontab_drop_if_unused(previous_crontab_id)

    next_at = cron_next(strategy.schedule_cron, zone, after=timezone.now()) if strategy.is_active else None
    Strategy.objects.filter(pk=strategy.pk).update(periodic_task=task, next_execution_at=next_at)
    strategy.periodic_task = task
    strategy.next_execution_at = next_at
    return task


def _crontab_drop_if_unused(crontab_id: int | None) -> None:
    if crontab_id and not PeriodicTask.objects.filter(crontab_id=crontab_id).exists():
        CrontabSchedule.objects.filter(pk=crontab_id).delete()


# --- executions and the claim -------------------------------------------------------------------------------------


REPLAY_TRIGGER = "replay"  # StrategyExecution.trigger of a replay's step
MISSED_RUNS_RECORDED = 60  # after a long outage, the newest this many missed runs are recorded one by one


def execution_unstarted_record(
    *, strategy: Strategy, trigger: str, skip_reason: SkipReason, error: str
) -> StrategyExecution:
    """A trigger that could not start a run (another run holds the strategy), kept as a SKIPPED execution so Logs
    shows it. It takes no claim."""
    now = timezone.now()
    execution = _skipped(strategy, trigger=trigger, skip_reason=skip_reason, error=error, at=now, now=now)
    _skipped_save([execution])
    return execution


def missed_runs_record(*, strategy: Strategy, now: dt.datetime) -> list[StrategyExecution]:
    """Record as SKIPPED (trigger_expired) each run the schedule named since the strategy last ran that no worker
    took in time. Beat's trigger for such a run expired in the queue (TRIGGER_EXPIRES_SECONDS) and never reached
    task code, so the next trigger records the gap: every due time from `next_execution_at` (set when the strategy
    last ran) up to the expiry horizon, none of which can still run."""
    due = strategy.next_execution_at
    if due is None or not strategy.is_active or strategy.is_replay:
        return []
    zone = strategy.schedule_timezone or DEFAULT_TIMEZONE
    horizon = now - dt.timedelta(seconds=TRIGGER_EXPIRES_SECONDS)
    missed: list[dt.datetime] = []
    while due is not None and due < horizon:
        missed.append(due)
        due = cron_next(strategy.schedule_cron, zone, after=due)
    earlier, missed = len(missed) - MISSED_RUNS_RECORDED, missed[-MISSED_RUNS_RECORDED:]
    executions = []
    for at in missed:
        reason = f"the run due at {at:%Y-%m-%d %H:%M} UTC expired before a worker took it"
        if earlier > 0 and at == missed[0]:
            reason += f" ({earlier} runs due before it were missed too)"
        executions.append(
            _skipped(strategy, trigger="schedule", skip_reason=SkipReason.TRIGGER_EXPIRED, error=reason, at=at, now=now)
        )
    _skipped_save(executions)
    return executions


def _skipped(
    strategy: Strategy, *, trigger: str, skip_reason: SkipReason, error: str, at: dt.datetime, now: dt.datetime
) -> StrategyExecution:
    """A SKIPPED execution that never ran (not saved): due `at`, closed `now`."""
    return StrategyExecution(
        strategy=strategy,
        is_replay=strategy.is_replay,
        trigger=trigger,
        status=ExecutionStatus.SKIPPED,
        skip_reason=skip_reason,
        error=error,
        started_at=at,
        finished_at=now,
    )


def _skipped_save(executions: list[StrategyExecution]) -> None:
    """Save executions that never ran, each with the lineage record that closes it (why it was skipped)."""
    if not executions:
        return
    with transaction.atomic():
        StrategyExecution.objects.bulk_create(executions)
        lineage_record_many(
            [
                lineage_build(
                    execution=execution,
                    step_name="execution_complete",
                    step_number=STEP_NUMBERS["execution_complete"],
                    status=LineageStatus.SKIPPED,
                    error=execution.error,
                    output_data={
                        "status": ExecutionStatus.SKIPPED,
                        "reason": execution.error,
                        "skip_reason": execution.skip_reason,
                    },
                )
                for execution in executions
            ]
        )


class AlreadyRunning(Exception):
    """The strategy is held by another execution whose claim has not lapsed."""


def execution_start(*, strategy: Strategy, trigger: str = "schedule", dry_run: bool = False) -> StrategyExecution:
    """Claim the strategy and create its StrategyExecution, in one transaction.

    Raises AlreadyRunning when another execution holds a live claim. A strategy nobody holds is claimed by one
    conditional UPDATE; two triggers racing there serialise on the row: the second's UPDATE waits for the first to
    commit, then finds the row held and takes the locking path, which reads who holds it and refuses.
    """
    now = timezone.now()
    execution_id = uuid.uuid4()
    # The usual case. Nested in a caller's transaction (a replay's step) it adds no savepoint: nothing here refuses,
    # so nothing here can leave that transaction broken.
    with transaction.atomic(savepoint=False):
        free = StrategyClaim.objects.filter(pk=strategy.pk, execution__isnull=True)
        if free.update(execution_id=execution_id, expires_at=now + CLAIM_TTL):
            return _execution_create(strategy, execution_id, now, trigger=trigger, dry_run=dry_run)
    # Held, lapsed, or never run: the locking path, which may refuse (a savepoint when nested, so a caller that
    # catches AlreadyRunning can go on).
    with transaction.atomic():
        _claim_contended(strategy, execution_id, now)
        return _execution_create(strategy, execution_id, now, trigger=trigger, dry_run=dry_run)


def _execution_create(strategy: Strategy, execution_id, now: dt.datetime, *, trigger: str, dry_run: bool):
    """The execution the claim already names (the claim's foreign key is checked at COMMIT)."""
    execution = StrategyExecution.objects.create(
        execution_id=execution_id,
        strategy=strategy,
        is_replay=strategy.is_replay,
        trigger=trigger,
        dry_run=dry_run,
        started_at=now,
    )
    if trigger != REPLAY_TRIGGER:  # a replay's copy of a strategy has no schedule to keep
        zone = strategy.schedule_timezone or DEFAULT_TIMEZONE
        next_at = cron_next(strategy.schedule_cron, zone, after=now) if strategy.is_active else None
        Strategy.objects.filter(pk=strategy.pk).update(last_execution_at=now, next_execution_at=next_at)
    return execution


def _claim_contended(strategy: Strategy, execution_id, now: dt.datetime) -> None:
    """Claim a strategy whose row is held or missing: under the row's lock, refuse a live holder, close a lapsed one
    as abandoned, then hand the row to `execution_id`."""
    claim = StrategyClaim.objects.select_for_update().filter(pk=strategy.pk).first()
    if claim is None:  # the strategy's first run: make its row (a racing maker's insert waits for ours), lock it
        StrategyClaim.objects.bulk_create([StrategyClaim(strategy=strategy, expires_at=now)], ignore_conflicts=True)
        claim = _claim_locked(strategy.pk)
    if _claim_is_live(claim, now):
        raise AlreadyRunning(f"strategy {strategy.pk} is already running (execution {claim.execution_id})")
    if claim.execution_id is not None:
        _execution_abandon(claim.execution_id, now)
    StrategyClaim.objects.filter(strategy=strategy).update(execution_id=execution_id, expires_at=now + CLAIM_TTL)


class StrategyPaused(Exception):
    """A person asked to run a paused strategy now: it would only be skipped as inactive."""


def strategy_runnable_check(*, strategy: Strategy) -> None:
    """Raises StrategyPaused for a paused strategy, before anything is created. A person's run-now asks this; the
    beat's run of an inactive strategy is instead recorded as a SKIPPED execution."""
    if strategy.archived_at is not None:
        raise StrategyPaused(f"{strategy.name} is archived: it runs nothing more")
    if not strategy.is_active:
        raise StrategyPaused(f"{strategy.name} is paused: resume it first")


RUN_EXPIRES_SECONDS = 600  # a run task not picked up within 10 minutes is dropped (its execution stays resumable)


def strategy_run_enqueue(execution_id: str, queue: str | None = None) -> None:
    """Send the run task for a created execution: to `queue`, else where a run starts (executor.first_queue)."""
    queue = queue or first_queue()
    options: dict[str, int | str] = {"expires": RUN_EXPIRES_SECONDS}
    if queue:
        options["queue"] = queue
    # By its registered name: the task module imports this one.
    current_app.tasks["trading.strategy_run"].apply_async(args=[execution_id], kwargs={"queue": queue}, **options)


def strategy_run_now(*, strategy: Strategy) -> StrategyExecution:
    """A manual run: claim the strategy and create its execution, then enqueue the run once that is committed, as
    the beat trigger does. Raises StrategyPaused (nothing created) or AlreadyRunning."""
    strategy_runnable_check(strategy=strategy)
    with transaction.atomic():
        execution = execution_start(strategy=strategy, trigger="manual")
        execution_id = str(execution.pk)
        transaction.on_commit(lambda: strategy_run_enqueue(execution_id))
    return execution


def _execution_abandon(execution_id, now: dt.datetime) -> None:
    """A run whose claim lapsed while it was still RUNNING stopped without finishing (its worker died and the task
    was not delivered again): it is closed as FAILED, with an `execution_error` record saying so."""
    message = "abandoned: the run stopped without finishing and its claim on the strategy lapsed"
    abandoned = StrategyExecution.with_replays.filter(pk=execution_id, status=ExecutionStatus.RUNNING)
    for execution in abandoned:
        lineage_record(
            execution=execution,
            step_name=ERROR_STEP,
            step_number=ERROR_STEP_NUMBER,
            status=LineageStatus.ERROR,
            error=message,
        )
        execution_finish(execution=execution, status=ExecutionStatus.FAILED, error=message)


def execution_claim_renew(*, execution: StrategyExecution) -> bool:
    """Extend this execution's hold on its strategy (a resumed run), or take it back if it lapsed and nobody else
    took it. False means another execution holds the strategy now."""
    now = timezone.now()
    StrategyClaim.objects.bulk_create(
        [StrategyClaim(strategy_id=execution.strategy_id, expires_at=now)], ignore_conflicts=True
    )
    with transaction.atomic():
        claim = _claim_locked(execution.strategy_id)
        if claim.execution_id != execution.pk and _claim_is_live(claim, now):
            return False
        StrategyClaim.objects.filter(pk=claim.pk).update(execution=execution, expires_at=now + CLAIM_TTL)
    return True


def _claim_locked(strategy_id: int) -> StrategyClaim:
    return StrategyClaim.objects.select_for_update().get(pk=strategy_id)


def _claim_is_live(claim: StrategyClaim, now: dt.datetime) -> bool:
    # The holder's status is read by a statement of its own, after the lock is ours: under READ COMMITTED it then
    # sees the execution a racing caller committed while we waited (a join in the locking query would not).
    if claim.execution_id is None or claim.expires_at <= now:
        return False
    status = StrategyExecution.with_replays.filter(pk=claim.execution_id).values_list("status", flat=True).first()
    return status == ExecutionStatus.RUNNING


def execution_claim_release(*, execution: StrategyExecution) -> None:
    StrategyClaim.objects.filter(execution=execution).update(execution=None, expires_at=timezone.now())


def execution_finish(*, execution: StrategyExecution, status: str, error: str = "", skip_reason: str = "") -> bool:
    """Close a RUNNING execution (COMPLETED, SKIPPED or FAILED) and release its claim. False if it was already
    closed: finishing is a claim too, so a run and a resumed copy of it cannot both close it. A SKIPPED one names
    its SkipReason (and only a SKIPPED one)."""
    if (status == ExecutionStatus.SKIPPED) != bool(skip_reason):
        raise ValueError(f"a {status} execution {'needs' if not skip_reason else 'has no'} skip reason")
    now = timezone.now()
    # Inside a caller's transaction (the execution_complete step) a failure fails that transaction: no savepoint.
    with transaction.atomic(savepoint=False):
        changed = StrategyExecution.with_replays.filter(pk=execution.pk, status=ExecutionStatus.RUNNING).update(
            status=status, error=error[:10_000], skip_reason=skip_reason, finished_at=max(now, execution.started_at)
        )
        execution_claim_release(execution=execution)
    if changed:
        execution.status, execution.error, execution.finished_at = status, error, max(now, execution.started_at)
        execution.skip_reason = skip_reason
    return changed == 1


def user_data_delete(*, user: User, keep_user: bool = False) -> dict[str, int]:
    """Every row of one user's data, deleted for good in one transaction (the staff command `user_data_delete`),
    replays' included, with their strategies' PeriodicTasks. Returns how many rows of each model went."""
    owned = [
        Trade.with_replays.filter(order__owner=user),
        Order.with_replays.filter(owner=user),
        Position.with_replays.filter(owner=user),
        StrategyExecution.with_replays.filter(strategy__owner=user),
        Strategy.with_replays.filter(owner=user),
        BrokerConnection.with_replays.filter(owner=user),
    ]
    with transaction.atomic():
        tasks = list(
            Strategy.with_replays.filter(owner=user, periodic_task__isnull=False).values_list(
                "periodic_task", flat=True
            )
        )
        counts: dict[str, int] = {}
        for rows in owned:
            _, by_model = rows.delete()
            for label, count in by_model.items():
                counts[label] = counts.get(label, 0) + count
        _, by_model = PeriodicTask.objects.filter(pk__in=tasks).delete()
        for label, count in by_model.items():
            counts[label] = counts.get(label, 0) + count
        if not keep_user:
            _, by_model = user.delete()
            for label, count in by_model.items():
                counts[label] = counts.get(label, 0) + count
    return {label: count for label, count in counts.items() if count}
