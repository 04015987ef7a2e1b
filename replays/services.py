"""Replays: create one, run it through the live executor step by step, report on it, prune or delete it.

A replay never gets a pipeline of its own. It runs a marked copy of the strategy (`Replay.shadow_strategy`, with
the analyst, model and prompt version being judged) on a simulated account of its own, and for every bar of the
range it moves the replay clock to that bar and calls the same executor a scheduled run calls, handing it the
replay's clock, bar source and broker. Orders are tracked by the same order and portfolio services as live ones,
so they fill on later bars by the simulated broker's rules.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.db.models import Count, F, Q, Sum
from django.utils import timezone

from brokers.models import BrokerConnection, BrokerKind
from brokers.services import broker_for
from lineage.models import LineageRecord
from market.models import Bar
from orders.models import Order, Trade
from orders.services import orders_sync
from portfolio.models import Position
from portfolio.services import fill_apply, position_watch
from replays import report
from replays.charts import MIN_STEPS, ChartPrefetcher
from replays.environment import ReplayEnvironment
from replays.models import STALE_AFTER, LLMCacheMode, Replay, ReplayStatus, ReplayStep
from replays.playback import ReplayBarSource, ReplayClock, ReplayIndicators, load_history
from signals_app.llm import analyst_unavailable
from signals_app.models import Analyst, LLMCall, PromptType, PromptVersion, TradingSignal
from signals_app.prompts import resolve_prompt_version
from trading import executor
from trading.analysis import open_position
from trading.executor import warmup
from trading.models import ExecutionStatus, Strategy, StrategyIndicator
from trading.services import REPLAY_TRIGGER, execution_start

if TYPE_CHECKING:
    from trading.executor import Outcome

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[Replay, ReplayStep], None]
CENT = Decimal("0.01")
# What a running replay counts as it goes (only its runner writes them: it keeps them and writes them whole)
COUNTERS = ("steps_done", "analyst_calls", "cache_hits", "input_tokens", "output_tokens", "llm_cost_usd")
PROGRESS_EVERY = dt.timedelta(seconds=1)
# SQLite has one write lock for the whole database, and its busy handler lets a waiting writer retry only every
# 100 ms or so: a replay that begins its next step's transaction the moment it commits the last one would starve the
# live runs, the order poller and beat (each gave up after its busy timeout: "database is locked"). Between steps it
# leaves the lock free for longer than a waiter sleeps.
SQLITE_STEP_YIELD_SECONDS = 0.15


class StepFailed(Exception):
    """The executor's run for one bar of the replay failed (its lineage says why)."""


# --- create ---------------------------------------------------------------------------------------------------------


def _day_start(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def _step_bars(symbol, bar_size: str, start: dt.date, end: dt.date):
    """The bars a replay steps through: every stored bar from 00:00 UTC of `start` to the end of `end`."""
    return (
        Bar.objects.for_symbol(symbol)
        .of_size(bar_size)
        .between(_day_start(start), _day_start(end + dt.timedelta(days=1)) - dt.timedelta(microseconds=1))
    )


def _prompt_version(strategy: Strategy, number: int | None) -> PromptVersion:
    """Version `number` of the strategy's analysis template, or the version the strategy uses now."""
    current = resolve_prompt_version(strategy, PromptType.ANALYSIS)
    if number is None:
        return current
    template = strategy.prompt_template or current.template
    version = template.versions.filter(number=number).first()
    if version is None:
        numbers = ", ".join(str(n) for n in template.versions.order_by("number").values_list("number", flat=True))
        raise ValidationError(
            {"prompt_version": f"prompt '{template.name}' has no version {number} (it has: {numbers or 'none'})"}
        )
    return version


def replay_create(
    *,
    owner,
    strategy: Strategy,
    start: dt.date,
    end: dt.date,
    analyst: str | None = None,
    model: str | None = None,
    prompt_version: int | None = None,
    budget_usd: Decimal | None = None,
    llm_cache: str = LLMCacheMode.USE,
    anonymise: bool = False,
    render_charts: bool = True,
    baseline_of: Replay | None = None,
) -> Replay:
    """Validate the request and store the replay as PENDING. Bad input is a ValidationError naming the field;
    nothing is written then."""
    errors: dict[str, str] = {}
    if strategy.owner_id != owner.pk:
        errors["strategy"] = "that strategy belongs to someone else"
    if Replay.objects.filter(shadow_strategy=strategy).exists():
        errors["strategy"] = "that is a replay's own copy of a strategy: replay the strategy itself"
    if end < start:
        errors["end"] = f"the end ({end}) is before the start ({start})"
    analyst = analyst or strategy.analyst
    if analyst not in Analyst.values:
        errors["analyst"] = f"unknown analyst {analyst!r}: use one of {', '.join(Analyst.values)}"
    elif llm_cache != LLMCacheMode.ONLY and (unavailable := analyst_unavailable(analyst)):
        errors["analyst"] = f"{unavailable}; pick the rules analyst, or replay from the LLM cache only"
    if llm_cache not in LLMCacheMode.values:
        errors["llm_cache"] = f"unknown LLM cache mode {llm_cache!r}: use one of {', '.join(LLMCacheMode.values)}"
    if budget_usd is not None and budget_usd < 0:
        errors["budget_usd"] = "the budget cannot be negative"
    if errors:
        raise ValidationError(errors)
    steps = _step_bars(strategy.symbol, strategy.bar_size, start, end).count()
    if steps == 0:
        raise ValidationError(
            {
                "start": f"no stored {strategy.bar_size} bars for {strategy.symbol.symbol} between {start} and {end}: "
                "import them first (manage.py import_bars)"
            }
        )
    version = _prompt_version(strategy, prompt_version) if analyst != Analyst.RULES or prompt_version else None
    return Replay.objects.create(
        owner=owner,
        strategy=strategy,
        baseline_of=baseline_of,
        symbol=strategy.symbol,
        bar_size=strategy.bar_size,
        start=start,
        end=end,
        analyst=analyst,
        llm_model=(model or strategy.llm_model or "") if analyst != Analyst.RULES else "",
        prompt_version=version,
        llm_cache=llm_cache,
        budget_usd=budget_usd,
        anonymise=anonymise,
        render_charts=render_charts,
        starting_cash=(
            strategy.broker_connection.starting_cash if strategy.broker_connection is not None else Decimal("100000.00")
        ),
        settings_snapshot=_snapshot(strategy),
        steps_total=steps,
    )


def _snapshot(strategy: Strategy) -> dict:
    """What is judged, as it was when the replay was asked for."""
    return {
        "name": strategy.name,
        "symbol": strategy.symbol.symbol,
        "bar_size": strategy.bar_size,
        "lookback_bars": strategy.lookback_bars,
        "indicators": [
            {"name": link.indicator.name, "type": link.indicator.indicator_type, "params": link.indicator.parameters}
            for link in strategy.strategy_indicators.select_related("indicator")
        ],
        "risk_per_trade": str(strategy.risk_per_trade),
        "max_position_value": str(strategy.max_position_value),
        "max_open_positions": strategy.max_open_positions,
        "daily_loss_limit": str(strategy.daily_loss_limit),
        "max_orders_per_day": strategy.max_orders_per_day,
        "min_confidence": str(strategy.min_confidence),
        "reward_risk_ratio": str(strategy.reward_risk_ratio),
        "use_bracket_orders": strategy.use_bracket_orders,
    }


# --- the shadow strategy and its account ------------------------------------------------------------------------------

_NOT_COPIED = {"id", "name", "periodic_task", "broker_connection", "created_at", "updated_at", "last_execution_at",
               "next_execution_at"}  # fmt: skip


@transaction.atomic
def _shadow_create(replay: Replay) -> Strategy:
    """The strategy as the replay runs it: the same settings, the judged analyst/model/prompt, no schedule, no kill
    switch (a live-trading control, not part of the strategy's logic), and a simulated account of its own."""
    source = replay.strategy
    if source is None:  # SET_NULL: the strategy was deleted before the replay first ran
        raise RuntimeError(f"replay {replay.pk}: its strategy was deleted before the replay started")
    connection = BrokerConnection.objects.create(
        owner=replay.owner,
        name=f"replay {replay.pk}",
        kind=BrokerKind.SIMULATED,
        starting_cash=replay.starting_cash,
        is_replay=True,
    )
    fields = {f.name: getattr(source, f.name) for f in Strategy._meta.concrete_fields if f.name not in _NOT_COPIED}
    fields.update(
        name=f"{source.name[:70]} · replay {replay.pk}",
        broker_connection=connection,
        analyst=replay.analyst,
        llm_model=replay.llm_model,
        pinned_prompt_version=replay.prompt_version or source.pinned_prompt_version,
        kill_switch=False,
        is_active=True,
        is_replay=True,
    )
    shadow = Strategy.objects.create(**fields)
    StrategyIndicator.objects.bulk_create(
        StrategyIndicator(strategy=shadow, indicator_id=link.indicator_id, position=link.position)
        for link in source.strategy_indicators.all()
    )
    Replay.objects.filter(pk=replay.pk).update(shadow_strategy=shadow, broker_connection=connection)
    replay.shadow_strategy, replay.broker_connection = shadow, connection
    return shadow


# --- run --------------------------------------------------------------------------------------------------------------


@dataclass
class _Spend:
    cost: Decimal = Decimal(0)
    largest_call: Decimal = Decimal(0)

    def would_exceed(self, budget: Decimal | None) -> bool:
        """Stop before the next analysis if it could take the bill past the budget: the next call is assumed to
        cost as much as the dearest one so far."""
        return budget is not None and self.cost + self.largest_call > budget


def replay_run(*, replay: Replay, progress: ProgressCallback | None = None) -> Replay:
    """Run a PENDING replay to the end (or to its budget), or resume one whose runner died (no step for
    STALE_AFTER). The claim is atomic: a second caller returns at once."""
    now = timezone.now()
    claimed = Replay.objects.filter(pk=replay.pk, status=ReplayStatus.PENDING).update(
        status=ReplayStatus.RUNNING, started_at=now, heartbeat_at=now
    ) or Replay.objects.filter(pk=replay.pk, status=ReplayStatus.RUNNING, heartbeat_at__lt=now - STALE_AFTER).update(
        heartbeat_at=now
    )
    if claimed != 1:
        replay.refresh_from_db()
        return replay
    replay.refresh_from_db()
    try:
        with _relaxed_commits():
            status = _run_steps(replay, progress)
        if replay.analyst != Analyst.RULES and status == ReplayStatus.COMPLETED and replay.strategy_id:
            _baseline_run(replay)
        report_data = replay_report(replay=replay)
    except Exception as exc:  # the replay is closed FAILED with the reason; the traceback goes to the log
        logger.exception("replay %s failed", replay.pk)
        Replay.objects.filter(pk=replay.pk).update(
            status=ReplayStatus.FAILED,
            error=f"{type(exc).__name__}: {exc}"[:5000],
            finished_at=timezone.now(),
            **_counters(replay),
        )
        replay.refresh_from_db()
        return replay
    Replay.objects.filter(pk=replay.pk).update(
        status=status, report=report_data, finished_at=timezone.now(), **_counters(replay)
    )
    replay.refresh_from_db()
    return replay


@contextmanager
def _relaxed_commits():
    """A replay writes thousands of small rows that it can always write again, so its commits need not wait for the
    disk: PostgreSQL's synchronous_commit=off may lose the last moments of work in a crash, and never corrupts."""
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit TO OFF")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET synchronous_commit TO DEFAULT")


def _run_steps(replay: Replay, progress: ProgressCallback | None) -> str:
    shadow = replay.shadow_strategy or _shadow_create(replay)
    # Loaded once: nothing a replay runs changes its own copy of the strategy.
    shadow = (
        Strategy.with_replays.select_related("symbol", "broker_connection", "owner")
        .prefetch_related("strategy_indicators__indicator")
        .get(pk=shadow.pk)
    )
    bars = list(_step_bars(replay.symbol, replay.bar_size, replay.start, replay.end).chronological().ohlcv())
    clock = ReplayClock(replay.bar_size, replay.symbol.time_zone)
    source = ReplayBarSource(replay.symbol, load_history(replay.symbol, replay.bar_size, end=bars[-1][0]), clock)
    broker = broker_for(replay.broker_connection, clock=clock, bar_source=source, bar_size=replay.bar_size)
    indicators = ReplayIndicators(source.history, [link.indicator for link in shadow.strategy_indicators.all()])
    done = dict(replay.steps.values_list("index", "llm_cost_usd"))  # a resumed replay keeps the steps it has
    replay.steps_done = max(replay.steps_done, len(done))  # steps run one after another: the first len(done)
    charts = _chart_prefetcher(replay, shadow, source, indicators, bars, steps=len(bars) - len(done))
    spend = _Spend(cost=sum(done.values(), Decimal(0)), largest_call=max(done.values(), default=Decimal(0)))
    books = _Books(replay, shadow)
    try:
        for index, (timestamp, _open, _high, _low, close, _volume) in enumerate(bars):
            if index in done:
                clock.advance_to(timestamp)
                continue
            if replay.analyst != Analyst.RULES and spend.would_exceed(replay.budget_usd):
                return ReplayStatus.BUDGET_STOPPED
            clock.advance_to(timestamp)
            if charts is not None:
                charts.prefetch(index)
            env = ReplayEnvironment(
                strategy_copy=shadow,
                replay_clock=clock,
                source=source,
                account=broker,
                indicators=indicators.window,
                position=books.open_position,
                llm_cache=replay.llm_cache,
                render_charts=replay.render_charts,
                anonymise=replay.anonymise,
                chart_renderer=charts.render if charts is not None else None,
            )
            step, outcome = _step(replay, index, timestamp, close, env, books)
            if connection.vendor == "sqlite":
                time.sleep(SQLITE_STEP_YIELD_SECONDS)
            if outcome.status == ExecutionStatus.FAILED:
                # A replay with holes would judge a different strategy: it stops at the first failed run.
                raise StepFailed(f"the run at {timestamp:%Y-%m-%d %H:%M} failed: {outcome.error}")
            spend.cost += step.llm_cost_usd
            spend.largest_call = max(spend.largest_call, step.llm_cost_usd)
            if progress is not None:
                progress(replay, step)
    finally:
        if charts is not None:
            charts.close()
    return ReplayStatus.COMPLETED


def _step(replay: Replay, index: int, timestamp, close, env: ReplayEnvironment, books: _Books):
    """One step: the orders tracked to the clock, the live executor's run, and the step's row.

    With the rules analyst the step commits as one transaction, so a runner that dies leaves the replay between two
    steps and a resumed replay goes on from the first step without a row. A step whose transaction fails (a database
    error, a constraint checked at COMMIT) is rolled back and run again the live way, committing write by write, so
    the failure is recorded in lineage where it happened. An LLM analyst's step always runs the live way: no
    transaction is held across an LLM call, and an answer paid for is never rolled back."""
    if replay.analyst == Analyst.RULES:
        counters = {**_counters(replay), "heartbeat_at": replay.heartbeat_at}
        try:
            with transaction.atomic():
                return _step_writes(replay, index, timestamp, close, env, books)
        except Exception:
            logger.warning("replay %s: step %s rolled back; running it again write by write", replay.pk, index)
            books.forget()
            for name, value in counters.items():
                setattr(replay, name, value)
    return _step_writes(replay, index, timestamp, close, env, books)


def _step_writes(replay: Replay, index: int, timestamp, close, env: ReplayEnvironment, books: _Books):
    books.track(env.account, env.replay_clock)
    books.watch(env.account, env.replay_clock, close)
    outcome = _execute(env)
    books.placed = books.placed or bool(outcome.order_ids)
    return _record_step(replay, index, timestamp, close, outcome, env.replay_clock, books), outcome


def _chart_prefetcher(replay: Replay, shadow: Strategy, source, indicators, bars, *, steps: int):
    """Charts drawn ahead on a process pool: a step's chart depends only on the bars up to it, so the next steps'
    charts are rendered while this one runs. None when the replay draws no charts, or so few that the executor may
    as well draw them itself."""
    if not replay.render_charts or replay.anonymise or steps < MIN_STEPS:
        return None
    return ChartPrefetcher(
        source=source,
        indicators=indicators,
        cursors=[row[0] for row in bars],
        symbol=shadow.symbol.symbol,
        bar_size=shadow.bar_size,
        window=shadow.lookback_bars + warmup(shadow),
        drawn=shadow.lookback_bars,
    )


def _baseline_run(replay: Replay) -> Replay:
    """The rules analyst over the same range, for the report's side-by-side column (charts off: rules reads none).
    A resumed replay finishes the baseline it started rather than starting another."""
    baseline = replay.baselines.first()
    if baseline is None:
        assert replay.strategy is not None  # replay_run asks for a baseline only while the strategy exists
        baseline = replay_create(
            owner=replay.owner,
            strategy=replay.strategy,
            start=replay.start,
            end=replay.end,
            analyst=Analyst.RULES,
            render_charts=False,
            baseline_of=replay,
        )
    return replay_run(replay=baseline)


class _Books:
    """What the live order poller (portfolio.services.connection_track) and stop/target watch do, for this replay's
    account only and without notifying anyone: order states and fills by the bars up to the clock, each fill booked
    into positions, and a position exited once the close reaches its stop or target.
    It also keeps the account's cash and shares and the strategy's open position, read again only after something
    could have changed them: a fill booked here is the only thing that does.

    Only the replay moves its account's orders: the executor places them (`placed`) and tracking settles them. So
    once tracking has left no order open, the next steps have nothing to poll until the executor places one."""

    def __init__(self, replay: Replay, shadow: Strategy) -> None:
        self.replay, self.shadow = replay, shadow
        self.forget()

    def forget(self) -> None:
        """Know nothing yet: at the start (a resumed replay, a runner that died between fill and booking), or after
        a step's transaction rolled back what this knew."""
        self.placed = True
        self.open_orders = True
        self.changed = True
        self.account: tuple[Decimal, Decimal] = (Decimal(0), Decimal(0))
        self.position: Position | None = None

    def track(self, broker, clock) -> None:
        if not (self.open_orders or self.placed):
            return  # orders_sync would find no order to poll
        connection = self.replay.broker_connection
        recorded = orders_sync(broker_connection=connection, broker=broker, clock=clock)
        if recorded or self.placed:
            # every fill not booked yet, including one a dead runner left between recording and booking it, or one
            # the broker filled as the order was placed
            for trade in Trade.with_replays.filter(
                order__broker_connection=connection, realized_pnl__isnull=True
            ).order_by("executed_at", "pk"):
                fill_apply(trade=trade)
            self.changed = True
        ours = Order.with_replays.for_connection(connection)
        self.placed, self.open_orders = False, (ours.unsettled() | ours.working()).exists()

    def watch(self, broker, clock, close) -> None:
        """The live stop/target watch (portfolio.services.position_watch) for the open position, at the bar's close:
        the last price a watch running at this instant would see. It does not see a stop touched and recovered
        within one bar; a bracket's stop, worked by the simulated broker on each bar's range, does."""
        position = self.open_position()
        if position is None or (position.stop_loss is None and position.take_profit is None):
            return
        if position_watch(position=position, price=Decimal(str(close)), clock=clock, broker=broker) is not None:
            self.placed = True

    def cash_and_shares(self) -> tuple[Decimal, Decimal]:
        self._read_again()
        return self.account

    def open_position(self) -> Position | None:
        self._read_again()
        return self.position

    def _read_again(self) -> None:
        if self.changed:
            self.account, self.position, self.changed = _account(self.replay), open_position(self.shadow), False


def _execute(env: ReplayEnvironment) -> Outcome:
    """One run of the live executor at the replay clock's instant, with the replay's clock, bars and broker."""
    execution = execution_start(strategy=env.strategy_copy, trigger=REPLAY_TRIGGER)
    return executor.execute(execution.pk, env=env, started=execution)


def _account(replay: Replay) -> tuple[Decimal, Decimal]:
    """Cash and shares held by the replay's books: the starting cash plus sales, less purchases and commissions
    (the simulated broker's ledger moves the same way; reconciliation compares the two)."""
    flows = Trade.with_replays.filter(order__strategy=replay.shadow_strategy).aggregate(
        bought=Sum(F("quantity") * F("price"), filter=Q(order__side="BUY")),
        sold=Sum(F("quantity") * F("price"), filter=Q(order__side="SELL")),
        fees=Sum("commission"),
    )
    cash = replay.starting_cash - (flows["bought"] or 0) + (flows["sold"] or 0) - (flows["fees"] or 0)
    held = (
        Position.with_replays.filter(strategy=replay.shadow_strategy).open().aggregate(total=Sum("quantity"))["total"]
    )
    return cash.quantize(CENT), held or Decimal(0)


def _record_step(replay: Replay, index: int, timestamp, close, outcome, clock, books: _Books) -> ReplayStep:
    fields = ("action", "confidence", "entry_price", "stop_loss", "take_profit")
    if outcome.signal is not None:
        signal = {name: getattr(outcome.signal, name) for name in fields}
    elif outcome.signal_id:
        signal = TradingSignal.with_replays.filter(pk=outcome.signal_id).values(*fields).first()
    else:
        signal = None
    usage: dict[str, Any] = {"cost": None, "sent": 0, "hits": 0, "input_tokens": None, "output_tokens": None}
    if replay.analyst != Analyst.RULES:  # the rules analyst records no LLM calls
        usage = LLMCall.objects.filter(execution_id=outcome.execution_id).aggregate(
            cost=Sum("cost_usd"),
            sent=Count("id", filter=Q(from_cache=False)),
            hits=Count("id", filter=Q(from_cache=True)),
            input_tokens=Sum("input_tokens"),
            output_tokens=Sum("output_tokens"),
        )
    cash, held = books.cash_and_shares()
    step = ReplayStep.objects.create(
        replay=replay,
        index=index,
        at=clock.now(),
        bar_timestamp=timestamp,
        close=close,
        execution_id=outcome.execution_id,
        execution_status=outcome.status,
        action=signal["action"] if signal else "",
        confidence=signal["confidence"] if signal else None,
        entry_price=signal["entry_price"] if signal else None,
        stop_loss=signal["stop_loss"] if signal else None,
        take_profit=signal["take_profit"] if signal else None,
        cash=cash,
        position_quantity=held,
        equity=(cash + held * close).quantize(CENT),
        llm_cost_usd=usage["cost"] or Decimal(0),
        analyst_calls=usage["sent"],
    )
    # Only this process writes a running replay's counters, so it keeps them and writes them whole: at every step
    # that used an analyst, else at most every PROGRESS_EVERY (the page's progress and the runner's heartbeat), and
    # at the end (replay_run).
    replay.steps_done = index + 1
    replay.analyst_calls += usage["sent"]
    replay.cache_hits += usage["hits"]
    replay.input_tokens += usage["input_tokens"] or 0
    replay.output_tokens += usage["output_tokens"] or 0
    replay.llm_cost_usd += step.llm_cost_usd
    now = timezone.now()
    if usage["sent"] or usage["hits"] or replay.heartbeat_at is None or now - replay.heartbeat_at >= PROGRESS_EVERY:
        Replay.objects.filter(pk=replay.pk).update(heartbeat_at=now, **_counters(replay))
        replay.heartbeat_at = now
    return step


def _counters(replay: Replay) -> dict:
    return {name: getattr(replay, name) for name in COUNTERS}


# --- report -----------------------------------------------------------------------------------------------------------


def _fills(replay: Replay) -> list[report.Fill]:
    trades = (
        Trade.with_replays.filter(order__strategy=replay.shadow_strategy)
        .select_related("order__signal")
        .order_by("executed_at", "pk")
    )
    return [
        report.Fill(
            side=t.order.side,
            quantity=t.quantity,
            price=t.price,
            commission=t.commission,
            at=t.executed_at,
            stop_loss=t.order.signal.stop_loss if t.order.signal is not None else None,
        )
        for t in trades
    ]


def _curve(replay: Replay) -> tuple[list[ReplayStep], list[float], list[dt.date]]:
    steps = list(replay.steps.order_by("index"))
    return steps, [float(s.equity) for s in steps], [s.bar_timestamp.date() for s in steps]


def replay_report(*, replay: Replay) -> dict:
    """The report's figures (the replay, buy-and-hold and the rules analyst side by side), trades, calibration and
    plots. Stored on the replay; the page and the command show it."""
    steps, equity, days = _curve(replay)
    if not steps:
        return {"empty": True}
    closes = [float(s.close) for s in steps]
    trips = report.round_trips(_fills(replay)) if replay.shadow_strategy_id else []
    fees = float(sum((t.fees for t in trips), Decimal(0)))
    llm_cost = float(replay.llm_cost_usd)
    columns = {
        "replay": report.figures(
            equity=equity,
            days=days,
            bar_size=replay.bar_size,
            position_quantities=[float(s.position_quantity) for s in steps],
            trips=trips,
            fees=fees,
            llm_cost=llm_cost,
        ),
        "buy_and_hold": report.figures(
            equity=report.buy_and_hold_equity(closes, float(replay.starting_cash)), days=days, bar_size=replay.bar_size
        ),
    }
    curves: dict[str, Sequence[float]] = {
        "replay": equity,
        "buy and hold": report.buy_and_hold_equity(closes, float(replay.starting_cash)),
    }
    baseline = replay.baselines.filter(status__in=[ReplayStatus.COMPLETED]).first()
    if replay.analyst == Analyst.RULES:
        columns["rules"] = columns["replay"]
    elif baseline is not None:
        b_steps, b_equity, b_days = _curve(baseline)
        columns["rules"] = baseline.report.get("columns", {}).get("replay") or report.figures(
            equity=b_equity, days=b_days, bar_size=baseline.bar_size
        )
        curves["rules analyst"] = b_equity[: len(equity)]
    decisions = [
        report.Decision(s.index, s.action, float(s.confidence))
        for s in steps
        if s.action in {"BUY", "SELL"} and s.confidence is not None
    ]
    title = "Replay" if replay.anonymise else f"{replay.symbol.symbol} {replay.bar_size} {days[0]} – {days[-1]}"
    key = _store_plot(replay, report.plot_png(days, curves, title=title))
    return {
        "columns": columns,
        "trades": [_trip_row(t) for t in trips],
        "calibration": report.calibration(decisions, closes),
        "calibration_horizon": report.CALIBRATION_HORIZON,
        "plot_key": key,
        "steps": len(steps),
        "analyst_calls": replay.analyst_calls,
        "cache_hits": replay.cache_hits,
        "input_tokens": replay.input_tokens,
        "output_tokens": replay.output_tokens,
        "llm_cost_usd": llm_cost,
        "anonymised": replay.anonymise,
    }


def _trip_row(trip: report.RoundTrip) -> dict:
    return {
        "opened_at": trip.opened_at.isoformat(),
        "closed_at": trip.closed_at.isoformat() if trip.closed_at else None,
        "quantity": float(trip.quantity),
        "entry_price": float(trip.entry_price),
        "exit_price": float(trip.exit_price) if trip.exit_price is not None else None,
        "stop_loss": float(trip.stop_loss) if trip.stop_loss is not None else None,
        "fees": float(trip.fees),
        "pnl": float(trip.pnl) if trip.pnl is not None else None,
        "r_multiple": trip.r_multiple,
    }


def _store_plot(replay: Replay, png: bytes) -> str:
    key = f"replays/{replay.pk}/equity-drawdown.png"
    if default_storage.exists(key):
        default_storage.delete(key)
    return default_storage.save(key, ContentFile(png))


# --- prune and delete -------------------------------------------------------------------------------------------------


def replay_lineage_prune(*, older_than: dt.timedelta, owner=None) -> int:
    """Delete the lineage of finished replays older than `older_than`; their steps and reports stay. Returns the
    number of lineage rows deleted."""
    replays = Replay.objects.finished_before(timezone.now() - older_than).filter(shadow_strategy__isnull=False)
    if owner is not None:
        replays = replays.for_owner(owner)
    shadow_ids = list(replays.values_list("shadow_strategy_id", flat=True))
    deleted, _ = LineageRecord.with_replays.filter(execution__strategy_id__in=shadow_ids).delete()
    replays.update(lineage_pruned_at=timezone.now())
    return deleted


@transaction.atomic
def replay_delete(*, replay: Replay) -> None:
    """Remove a replay with everything it made: orders, positions, signals, executions, lineage, its account."""
    shadow, connection = replay.shadow_strategy, replay.broker_connection
    for baseline in replay.baselines.all():
        replay_delete(replay=baseline)
    if shadow is not None:
        Order.with_replays.filter(strategy=shadow).delete()
        Position.with_replays.filter(strategy=shadow).delete()
    key = (replay.report or {}).get("plot_key")
    replay.delete()
    if shadow is not None:
        shadow.delete()
    if connection is not None:
        connection.delete()
    if key:
        transaction.on_commit(lambda: default_storage.delete(key))
