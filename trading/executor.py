"""The strategy run, one call per step, each recorded in lineage (trading.runs has the machinery):

    strategy = load_strategy(run)
    bars = fetch_market_data(run, strategy)
    ...
    execution_complete(run, signal, orders)

The steps read the world through the run's environment (trading.environment): the market clock, the strategy's
bars and broker for a live run; the replay's clock, bars and simulated account for a replay's step. A failing step
records its error and an `execution_error` record closes the lineage (the run is FAILED); an inactive strategy, an
unauthenticated IBKR session or exhausted playback data is a recorded SKIPPED. Steps that write several rows (the
signal; the close) do it in one transaction with their lineage record, so nothing is half-written; no transaction
is held across a broker or LLM call (a replay with the rules analyst runs each step inside a transaction of its
own: its broker is the simulated ledger in this same database, and no LLM is called; see replays.services._step).

With PIPELINE_SPLIT_QUEUES the run hops queues between steps (charts on a process pool, analysis on threads,
orders on their own queue): a step that belongs to another queue hands the run off there, and the next task
reads the earlier steps back from lineage.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import math
import time
import traceback
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, cast

import numpy as np
import pandas as pd
from django.db import transaction

from brokers.interface import Broker, BrokerError, NotAuthenticated
from brokers.models import BrokerKind
from lineage.models import LineageStatus
from lineage.services import ERROR_STEP, ERROR_STEP_NUMBER, lineage_record, lineage_recorded
from lineage.steps import STEP_NUMBERS
from market.calendar import holiday_name
from market.charts import store_chart
from market.clock import FixedClock, MarketClock, bar_age, session_label
from market.indicators import warmup_bars
from market.models import BarSize, MarketDataSource
from market.sources import BarSource, PlaybackBarSource, PlaybackExhausted
from orders.models import Order, OrderLeg, OrderSide, OrderSource, OrderType, TimeInForce
from orders.services import Bracket, order_place
from portfolio.models import Position
from portfolio.services import position_exit_place
from signals_app.llm import Analysis, Answer
from signals_app.models import PromptVersion, TradingSignal
from signals_app.services import signal_record
from trading import analysis as steps
from trading import risk
from trading.environment import LiveEnvironment, RunEnvironment
from trading.models import ExecutionStatus, SkipReason, Strategy, StrategyExecution
from trading.notifications import notify_rejection, notify_run_failed, notify_run_skipped
from trading.runs import Handoff, OnStep, Run, Skip, StepFailed, StepResult, describe, ms_since, step
from trading.services import execution_finish

logger = logging.getLogger(__name__)


@dataclass
class Outcome:
    execution_id: str
    status: str  # an ExecutionStatus; RUNNING with `handoff_queue` when the run continues on another queue
    signal_id: int | None = None
    order_ids: list[int] = field(default_factory=list)
    error: str = ""
    handoff_queue: str | None = None
    signal: Any = field(default=None, repr=False)  # the TradingSignal itself, when this call had it in hand


# --- the workflow --------------------------------------------------------------------------------------------------


def execute(
    execution_id: str | uuid.UUID,
    *,
    env: RunEnvironment | None = None,
    queue: str | None = None,
    on_step: OnStep | None = None,
    started: StrategyExecution | None = None,
) -> Outcome:
    """Run (or resume) one execution to its end, or to the point where it hands off to another queue.

    `env` is what the run is handed (LiveEnvironment when None). `started` is the execution itself when the caller
    has just made it with execution_start (a replay's step): it is RUNNING and has recorded nothing, so neither is
    read back; inside the caller's transaction its lineage is written once, at the close.
    """
    env = env or LiveEnvironment()
    if started is not None:
        in_transaction = env.defers_lineage and transaction.get_connection().in_atomic_block
        run = Run(execution=started, env=env, on_step=on_step, in_callers_transaction=in_transaction)
        run.memo["recorded"] = {}
        return _run(run)
    # By id: a live run only (the default manager). A replay hands its steps their execution (`started`).
    execution = StrategyExecution.objects.select_related("strategy").filter(pk=execution_id).first()
    if execution is None:
        return Outcome(execution_id=str(execution_id), status="GONE")
    if execution.status != ExecutionStatus.RUNNING:
        return _outcome_of_finished(execution)
    return _run(Run(execution=execution, env=env, queue=queue, on_step=on_step))


def _run(run: Run) -> Outcome:
    try:
        strategy = load_strategy(run)
        bars = fetch_market_data(run, strategy)
        indicators = calculate_indicators(run, strategy, bars)
        charts = generate_charts(run, strategy, bars, indicators)
        analysis = llm_analysis(run, strategy, bars, indicators, charts)
        signal = parse_signal(run, strategy, bars, analysis)
        decision = risk_check(run, strategy, signal)
        orders = place_order(run, strategy, signal, decision)
        outcome: Outcome = execution_complete(run, signal, orders)
        return outcome
    except Handoff as handoff:
        run.flush(closing=True)
        return Outcome(execution_id=str(run.execution.pk), status=ExecutionStatus.RUNNING, handoff_queue=handoff.queue)
    except Skip as skip:
        return _close_skipped(run, str(skip), skip.reason)
    except StepFailed as failure:
        return _close_failed(run, failure.step, failure.error)
    except Exception as exc:  # a failure outside any step (reading lineage, the database going away)
        return _close_failed(run, "executor", exc)


# --- the steps -----------------------------------------------------------------------------------------------------


def _strategy(run: Run) -> Strategy:
    if "strategy" not in run.memo:
        run.memo["strategy"] = run.env.strategy(run.execution.strategy_id)
    strategy: Strategy = run.memo["strategy"]
    return strategy


@step("load_strategy", restore=lambda run, output: _strategy(run))
def load_strategy(run: Run) -> StepResult:
    strategy = _strategy(run)
    connection = strategy.broker_connection
    snapshot = {
        "id": strategy.pk,
        "name": strategy.name,
        "symbol": strategy.symbol.symbol,
        "bar_size": strategy.bar_size,
        "lookback_bars": strategy.lookback_bars,
        "weekly_chart": strategy.weekly_chart,
        "analyst": strategy.analyst,
        "llm_model": strategy.llm_model,
        "market_data_source": strategy.market_data_source,
        "max_bar_age_bars": strategy.max_bar_age_bars,
        "trading_days_only": strategy.trading_days_only,
        "broker_connection": connection.name if connection else None,
        "indicators": [
            {"name": link.indicator.name, "type": link.indicator.indicator_type, "params": link.indicator.parameters}
            for link in strategy.strategy_indicators.all()
        ],
        "risk": {
            "risk_per_trade": strategy.risk_per_trade,
            "max_position_value": strategy.max_position_value,
            "max_open_positions": strategy.max_open_positions,
            "daily_loss_limit": strategy.daily_loss_limit,
            "max_orders_per_day": strategy.max_orders_per_day,
            "min_confidence": strategy.min_confidence,
            "reward_risk_ratio": strategy.reward_risk_ratio,
            "use_bracket_orders": strategy.use_bracket_orders,
            "kill_switch": strategy.kill_switch,
        },
        "is_active": strategy.is_active,
        "archived_at": strategy.archived_at,
    }
    if strategy.archived_at is not None:
        raise Skip(f"strategy archived {strategy.archived_at:%Y-%m-%d %H:%M} UTC", reason=SkipReason.STRATEGY_ARCHIVED)
    if not strategy.is_active:
        raise Skip("strategy inactive", reason=SkipReason.INACTIVE)
    ibkr = connection is not None and connection.kind == BrokerKind.IBKR
    if connection is not None and ibkr and not run.execution.dry_run and not connection.authenticated:
        raise Skip(
            f"IBKR session not authenticated ({connection.auth_message or 'log in at the gateway'})",
            reason=SkipReason.SESSION_DOWN,
        )
    if strategy.trading_days_only:
        symbol = strategy.symbol
        day = _clock(run, strategy).trading_day(symbol.time_zone)
        closed = holiday_name(day, symbol.time_zone, symbol.exchange)
        if closed:
            raise Skip(f"the market is closed on {day:%a %Y-%m-%d}: {closed}", reason=SkipReason.MARKET_CLOSED)
    if connection is not None and strategy.symbol.symbol in (connection.drift_halted or []):
        raise Skip(
            f"our {strategy.symbol.symbol} books differ from the broker's on {connection.name}: no new entries and "
            "exits wait until the difference is resolved (see the portfolio page)",
            reason=SkipReason.DRIFT_HALT,
        )
    return StepResult(
        input={"strategy_id": strategy.pk, "trigger": run.execution.trigger, "dry_run": run.execution.dry_run},
        output={"strategy": snapshot, "is_active": strategy.is_active},
        value=strategy,
    )


@dataclass
class Bars:
    """The bar window a run analyses. Recorded by its bounds, so a resumed run reads exactly the same bars again."""

    strategy: Strategy
    window: dict[str, Any]
    source: BarSource
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)

    def frame(self, bar_size: str | None = None) -> pd.DataFrame:
        bar_size = bar_size or self.strategy.bar_size
        if bar_size not in self.frames:
            spec = self.window["series"][bar_size]
            self.frames[bar_size] = self.source.bars(
                self.strategy.symbol, bar_size, end=_parse_time(spec["end"]), limit=spec["count"]
            )
        return self.frames[bar_size]

    @property
    def now(self) -> dt.datetime:
        return _parse_time(self.window["now"])

    @property
    def last_close(self) -> Decimal:
        return Decimal(self.window["series"][self.strategy.bar_size]["last_close"])


def _parse_time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)


def warmup(strategy: Strategy) -> int:
    """The most bars any of the strategy's indicators needs before its first value."""
    return max(
        (
            warmup_bars(link.indicator.indicator_type, link.indicator.parameters)
            for link in strategy.strategy_indicators.all()
        ),
        default=0,
    )


def _clock(run: Run, strategy: Strategy) -> MarketClock:
    """The run's one clock (the market's, or a replay's standing at its bar)."""
    if "clock" not in run.memo:
        run.memo["clock"] = run.env.clock(strategy)
    clock: MarketClock = run.memo["clock"]
    return clock


def _source(run: Run, strategy: Strategy) -> BarSource:
    """The run's one bar source (the strategy's own, or a replay's that never returns a later bar)."""
    if "source" not in run.memo:
        run.memo["source"] = run.env.bar_source(strategy)
    source: BarSource = run.memo["source"]
    return source


@step("fetch_market_data", restore=lambda run, output, strategy: Bars(strategy, output, _source(run, strategy)))
def fetch_market_data(run: Run, strategy: Strategy) -> StepResult:

    source = _source(run, strategy)
    if strategy.market_data_source == MarketDataSource.PLAYBACK and run.env.advances_playback:
        try:
            # one bar per run; recorded here, so a resumed run does not advance again
            cast(PlaybackBarSource, source).advance()
        except PlaybackExhausted as exc:
            raise Skip(str(exc) or "playback data exhausted", reason=SkipReason.PLAYBACK_EXHAUSTED) from exc
    now = _clock(run, strategy).now()
    wanted = strategy.lookback_bars + warmup(strategy)
    sizes = [strategy.bar_size] + ([BarSize.W1] if strategy.weekly_chart and strategy.bar_size != BarSize.W1 else [])
    series, frames = {}, {}
    for bar_size in sizes:
        try:
            frame = source.bars(strategy.symbol, bar_size, end=now, limit=wanted)
        except PlaybackExhausted as exc:
            raise Skip(str(exc) or "playback data exhausted", reason=SkipReason.PLAYBACK_EXHAUSTED) from exc
        if frame.empty:
            raise ValueError(f"no {bar_size} bars for {strategy.symbol.symbol} up to {now.isoformat()}")
        frames[bar_size] = frame
        series[bar_size] = {
            "count": len(frame),
            "start": frame.index[0].isoformat(),
            "end": frame.index[-1].isoformat(),
            "last_close": str(Decimal(str(frame["close"].iloc[-1]))),
            "last_volume": float(frame["volume"].iloc[-1]),
        }
    _freshness_check(strategy, frames[strategy.bar_size], now)
    window = {"now": now.isoformat(), "source": strategy.market_data_source, "series": series}
    return StepResult(
        input={"symbol": strategy.symbol.symbol, "bar_size": strategy.bar_size, "bars_wanted": wanted, "end": now},
        output=window,
        value=Bars(strategy, window, source, frames),
    )


def _freshness_check(strategy: Strategy, frame: pd.DataFrame, now: dt.datetime) -> None:
    """Nothing trades on stale data: a last bar more than `max_bar_age_bars` bar intervals of open market time old
    (by the exchange's calendar) skips the run."""
    symbol = strategy.symbol
    last = frame.index[-1].to_pydatetime()
    age = bar_age(last, strategy.bar_size, now, symbol.time_zone, symbol.exchange)
    if age <= strategy.max_bar_age_bars:
        return
    shown = session_label(last, strategy.bar_size, symbol.time_zone)
    raise Skip(
        f"last bar {shown}, market clock {now:%Y-%m-%d %H:%M} UTC: {age:,.0f} {strategy.bar_size} bars old, more than "
        f"the strategy's limit of {strategy.max_bar_age_bars}",
        reason=SkipReason.STALE_DATA,
    )


@dataclass
class Indicators:
    """The latest value of each indicator (recorded), and their frames (computed again when read back)."""

    bars: Bars
    latest: dict[str, Any]
    env: RunEnvironment
    computed: dict[str, pd.DataFrame] | None = None

    @property
    def frames(self) -> dict[str, pd.DataFrame]:
        if self.computed is None:
            self.computed = self.env.indicator_frames(self.bars.strategy, self.bars.frame())
        return self.computed


@step(
    "calculate_indicators",
    restore=lambda run, output, strategy, bars: Indicators(bars, output["latest"], run.env),
)
def calculate_indicators(run: Run, strategy: Strategy, bars: Bars) -> StepResult:
    frames = run.env.indicator_frames(strategy, bars.frame())
    latest, count = {}, {}
    for name, frame in frames.items():
        values = frame.to_numpy()  # no copy for the usual all-float frame
        kept = np.flatnonzero(~pd.isna(values).all(axis=1))  # the rows dropna(how="all") keeps
        count[name] = len(kept)
        last = values[kept[-1]] if len(kept) else []
        latest[name] = {column: _num(value) for column, value in zip(frame.columns, last, strict=False)}
    return StepResult(
        input={"indicators": list(frames), "bars": len(bars.frame())},
        output={"latest": latest, "count": count},
        value=Indicators(bars, latest, run.env, frames),
    )


def _num(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return round(number, 6) if math.isfinite(number) else None


@step("generate_charts", restore=lambda run, output, *args: output["charts"])
def generate_charts(run: Run, strategy: Strategy, bars: Bars, indicators: Indicators) -> StepResult:

    charts = []
    if run.env.charts_off:
        return StepResult(
            input={"symbol": strategy.symbol.symbol, "timeframes": list(bars.window["series"])},
            output={"charts": [], "chart_count": 0, "chart_keys": [], "note": run.env.charts_off},
            value=[],
        )
    prefix = f"charts/{strategy.pk}/{run.execution.pk}"
    links = strategy.strategy_indicators.all()
    configs = [(link.indicator.indicator_type, link.indicator.parameters) for link in links]
    for bar_size in bars.window["series"]:
        # The strategy's own bars reuse the computed indicators; the weekly chart computes its own on weekly bars.
        drawn = indicators.frames if bar_size == strategy.bar_size else configs
        png = run.env.render_chart(
            bars.frame(bar_size),
            symbol=strategy.symbol.symbol,
            bar_size=bar_size,
            indicators=drawn,
            bars=strategy.lookback_bars,
        )
        stored = store_chart(png, key_prefix=prefix)
        charts.append({**stored, "bar_size": bar_size, "title": f"{strategy.symbol.symbol} {bar_size}"})
    return StepResult(
        input={"symbol": strategy.symbol.symbol, "timeframes": list(bars.window["series"])},
        output={"charts": charts, "chart_count": len(charts), "chart_keys": [c["key"] for c in charts]},
        value=charts,
    )


def _analysis_restore(run: Run, output: dict[str, Any], *args: object) -> Analysis:

    version_id = output.get("prompt_version_id")
    return Analysis(
        analyst=output["analyst"],
        model=output["model"],
        answer=Answer(text=output.get("text", ""), fields=output.get("fields"), stop_reason=output["stop_reason"]),
        prompt_version=PromptVersion.objects.filter(pk=version_id).first() if version_id else None,
        rendered_prompt=output.get("rendered_prompt", ""),
        from_cache=output.get("from_cache", False),
    )


@step("llm_analysis", restore=_analysis_restore)
def llm_analysis(
    run: Run, strategy: Strategy, bars: Bars, indicators: Indicators, charts: list[dict[str, Any]]
) -> StepResult:

    context = steps.build_context(
        strategy=strategy,
        bars_df=bars.frame(),
        indicators=indicators.frames,
        charts=charts,
        clock=FixedClock(bars.now),
        position=run.env.open_position(strategy),
    )
    context = run.env.analyst_view(context)
    analysis = steps.analyse(
        strategy=strategy,
        context=context,
        charts=charts,
        analyst=run.env.analyst,
        model=run.env.model,
        execution=run.execution,
        llm_cache=run.env.llm_cache,
    )
    answer = analysis.answer
    version = cast(PromptVersion | None, analysis.prompt_version)  # the interface knows no models: signals_app.llm
    return StepResult(
        input={
            "chart_keys": [chart["key"] for chart in charts],
            "analyst": strategy.analyst,
            "prompt_version_id": version.pk if version else None,
            "context": {"symbol": strategy.symbol.symbol, "last_close": context["last_close"], "now": context["now"]},
        },
        output={
            "analyst": analysis.analyst,
            "model": analysis.resolved_model,
            "text": answer.text,
            "fields": answer.fields,
            "stop_reason": answer.stop_reason,
            "rendered_prompt": analysis.rendered_prompt,
            "prompt_version_id": version.pk if version else None,
            "llm_call_id": getattr(analysis.llm_call, "pk", None),
            "from_cache": analysis.from_cache,
            "cost_usd": analysis.cost_usd,
        },
        metadata={"prompt_version_id": version.pk if version else None},
        value=analysis,
    )


def _signal_restore(run: Run, output: dict[str, Any], *args: object) -> TradingSignal:

    return TradingSignal.with_replays.select_related("symbol").get(pk=output["signal_id"])


@step("parse_signal", restore=_signal_restore, atomic=True)
def parse_signal(run: Run, strategy: Strategy, bars: Bars, analysis: Analysis) -> StepResult:

    parsed = steps.parse_signal(analysis=analysis, last_close=bars.last_close, strategy=strategy)
    signal = signal_record(
        strategy=strategy,
        execution=run.execution,
        parsed=parsed,
        prompt_version=cast(PromptVersion | None, analysis.prompt_version),
        analyst=analysis.analyst,
        model=analysis.model,
        generated_at=bars.now,
    )
    return StepResult(
        input={"analysis_text_length": len(analysis.answer.text or ""), "last_close": bars.last_close},
        output={"signal_id": signal.pk, **parsed.as_dict()},
        metadata={"signal_id": signal.pk},
        value=signal,
    )


def _decision_restore(run: Run, output: dict[str, Any], *args: object) -> dict[str, Any]:
    return output


@step("risk_check", restore=_decision_restore)
def risk_check(run: Run, strategy: Strategy, signal: TradingSignal) -> StepResult:

    account = None
    if signal.action == "BUY" and strategy.broker_connection is not None:
        try:
            summary = _broker(run, strategy).account_summary()
        except NotAuthenticated as exc:
            if not run.execution.dry_run:
                raise Skip(f"IBKR session not authenticated: {exc}", reason=SkipReason.SESSION_DOWN) from exc
        except BrokerError:
            if not run.execution.dry_run:  # a dry run is sized when the broker answers, and judged without it else
                raise
        else:
            account = risk.Account(
                net_liquidation=summary.net_liquidation, buying_power=summary.buying_power, cash=summary.cash
            )
    decision = risk.risk_check(
        strategy=strategy, signal=signal, clock=_clock(run, strategy), account=account, kill_switch=run.env.kill_switch
    )
    refused = signal.action != "HOLD" and not decision.allowed
    return StepResult(
        input={"signal_id": signal.pk, "action": signal.action, "account": account},
        output=decision.as_dict(),
        value=decision.as_dict(),
        status=LineageStatus.SKIPPED if refused else LineageStatus.SUCCESS,
    )


def _broker(run: Run, strategy: Strategy) -> Broker:
    if "broker" not in run.memo:
        # on the run's one clock and bar source, not new ones
        run.memo["broker"] = run.env.broker(strategy, clock=_clock(run, strategy), bar_source=_source(run, strategy))
    broker: Broker = run.memo["broker"]
    return broker


def _orders_restore(run: Run, output: dict[str, Any], *args: object) -> list[Order]:

    return list(Order.with_replays.filter(pk__in=output.get("order_ids", [])).order_by("pk"))


@step("place_order", restore=_orders_restore)
def place_order(run: Run, strategy: Strategy, signal: TradingSignal, decision: dict[str, Any]) -> StepResult:

    placed, note = [], ""
    try:
        if run.execution.dry_run:
            note = "dry run: nothing placed"
        elif not decision["allowed"]:
            note = "no order: " + "; ".join(decision["refusals"])
        elif signal.action == "BUY":
            run.flush()  # the run's lineage so far is written before an order is
            # a BUY signal has both (the parser and the signal's CheckConstraint)
            assert signal.stop_loss is not None and signal.take_profit is not None and signal.entry_price is not None
            bracket = (
                Bracket(stop_price=signal.stop_loss, take_profit=signal.take_profit)
                if strategy.use_bracket_orders
                else None
            )
            entry = order_place(
                owner=strategy.owner,
                broker_connection=strategy.broker_connection,
                symbol=strategy.symbol,
                side=OrderSide.BUY,
                quantity=Decimal(decision["quantity"]),
                order_type=OrderType.LIMIT,
                limit_price=signal.entry_price,
                tif=TimeInForce.DAY,
                strategy=strategy,
                signal=signal,
                leg=OrderLeg.ENTRY,
                bracket=bracket,
                source=OrderSource.STRATEGY,
                clock=_clock(run, strategy),
                broker=_broker(run, strategy),
            )
            placed = [entry, *Order.with_replays.filter(parent=entry).order_by("pk")]
            note = f"BUY {decision['quantity']} {strategy.symbol.symbol} limit {signal.entry_price} DAY" + (
                " with a GTC stop and target" if bracket else ""
            )
        elif signal.action == "SELL":
            run.flush()
            assert signal.entry_price is not None  # a SELL signal has its exit price (its CheckConstraint)
            position = Position.with_replays.get(pk=decision["exit_position_id"])
            placed = [
                position_exit_place(
                    position=position,
                    limit_price=signal.entry_price,
                    signal=signal,
                    source=OrderSource.STRATEGY,
                    clock=_clock(run, strategy),
                    broker=_broker(run, strategy),
                )
            ]
            note = (
                f"SELL {position.quantity} {strategy.symbol.symbol} limit {signal.entry_price} DAY: closes the position"
            )
    except NotAuthenticated as exc:
        raise Skip(f"IBKR session not authenticated: {exc}", reason=SkipReason.SESSION_DOWN) from exc
    for order in placed:
        if order.status == "REJECTED" and run.env.notifies:
            transaction.on_commit(functools.partial(notify_rejection, order=order))
    return StepResult(
        input={"signal_id": signal.pk, "action": signal.action, "allowed": decision["allowed"]},
        output={
            "order_ids": [order.pk for order in placed],
            "orders": [_order_summary(order) for order in placed],
            "payload": [order.payload for order in placed],
            "note": note,
        },
        metadata={"signal_id": signal.pk},
        value=placed,
    )


def _order_summary(order: Order) -> dict[str, Any]:
    return {
        "id": order.pk,
        "client_order_id": order.client_order_id,
        "broker_order_id": order.broker_order_id,
        "leg": order.leg,
        "side": order.side,
        "quantity": order.quantity,
        "order_type": order.order_type,
        "limit_price": order.limit_price,
        "stop_price": order.stop_price,
        "tif": order.time_in_force,
        "status": order.status,
        "status_reason": order.status_reason,
    }


def _complete_restore(run: Run, output: dict[str, Any], *args: object, signal: TradingSignal | None = None) -> Outcome:
    return Outcome(
        execution_id=str(run.execution.pk),
        status=output["status"],
        signal_id=output.get("signal_id"),
        order_ids=output.get("order_ids", []),
        signal=signal,
    )


@step("execution_complete", restore=_complete_restore, atomic=True)
def execution_complete(run: Run, signal: TradingSignal, orders: list[Order]) -> StepResult:

    total_ms = int((time.monotonic() - run.started) * 1000)
    execution_finish(execution=run.execution, status=ExecutionStatus.COMPLETED)
    output = {
        "status": ExecutionStatus.COMPLETED,
        "signal": signal.action,
        "signal_id": signal.pk,
        "orders_placed": len(orders),
        "order_ids": [order.pk for order in orders],
        "total_duration_ms": total_ms,
    }
    return StepResult(
        input={"execution_id": run.execution.pk}, output=output, value=_complete_restore(run, output, signal=signal)
    )


# --- closing a run that did not complete ------------------------------------------------------------------------


def _close_skipped(run: Run, reason: str, skip_reason: SkipReason) -> Outcome:

    record = run.record(
        step_name="execution_complete",
        step_number=STEP_NUMBERS["execution_complete"],
        status=LineageStatus.SKIPPED,
        output_data={"status": ExecutionStatus.SKIPPED, "reason": reason, "skip_reason": skip_reason},
        metadata={"strategy_id": run.execution.strategy_id},
        duration_ms=ms_since(run.started),
    )
    run.flush(closing=True)
    run.reported(record, read_back=False)
    finished = execution_finish(
        execution=run.execution, status=ExecutionStatus.SKIPPED, error=reason, skip_reason=skip_reason
    )
    if finished and run.env.notifies:  # only skips the trader must act on, once per spell (notify_run_skipped)
        notify_run_skipped(execution=run.execution)
    return Outcome(execution_id=str(run.execution.pk), status=ExecutionStatus.SKIPPED, error=reason)


def _close_failed(run: Run, step_name: str, error: BaseException) -> Outcome:

    message = f"{step_name}: {describe(error)}"
    logger.warning("execution %s failed at %s", run.execution.pk, message)
    record = run.record(
        step_name=ERROR_STEP,
        step_number=ERROR_STEP_NUMBER,
        status=LineageStatus.ERROR,
        error=message,
        input_data={"strategy_id": run.execution.strategy_id, "failed_step": step_name},
        output_data={"traceback": traceback.format_exception(error)[-5:]},
        metadata={"strategy_id": run.execution.strategy_id},
        duration_ms=ms_since(run.started),
    )
    run.flush(closing=True)
    run.reported(record, read_back=False)
    finished = execution_finish(execution=run.execution, status=ExecutionStatus.FAILED, error=message)
    if finished and run.env.notifies:  # a replay stops at a failed run and reports it: nobody is notified
        # Sending is the notifications app's task, after this commits: the record says what was queued, never where
        # (a channel's URL holds secrets).
        notification = notify_run_failed(execution=run.execution)
        lineage_record(
            execution=run.execution,
            step_name="notify",
            step_number=ERROR_STEP_NUMBER + 1,
            status=LineageStatus.SUCCESS if notification else LineageStatus.ERROR,
            error="" if notification else "the notification could not be stored (see the server log)",
            output_data={
                "notification_id": notification.pk if notification else None,
                "kind": "run_failed",
                "deliveries_queued": notification.deliveries.count() if notification else 0,
            },
        )
    return Outcome(execution_id=str(run.execution.pk), status=ExecutionStatus.FAILED, error=message)


def _outcome_of_finished(execution: StrategyExecution) -> Outcome:
    complete = lineage_recorded(execution=execution, step_name="execution_complete")
    output = complete.output_data if complete else {}
    return Outcome(
        execution_id=str(execution.pk),
        status=execution.status,
        signal_id=output.get("signal_id"),
        order_ids=output.get("order_ids", []),
        error=execution.error,
    )
