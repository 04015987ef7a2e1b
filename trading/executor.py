"""The strategy run: one call per step, each recorded in lineage (input, output, duration, status).

    strategy = load_strategy(run)
    bars = fetch_market_data(run, strategy)
    ...
    execution_complete(run, signal, orders)

A step already recorded for this execution is read back, not redone, so a retried or resumed run makes no second
LLM call, no second signal and no second order intent. A failing step records its error and an `execution_error`
record closes the lineage (the run is FAILED); an inactive strategy, an unauthenticated IBKR session or exhausted
playback data is a recorded SKIPPED. Steps that write several rows (the signal; the close) do it in one
transaction with their lineage record, so nothing is half-written; no transaction is held across a broker or LLM
call. (A replay with the rules analyst runs each step inside a transaction of its own: its broker is the simulated
ledger in this same database, and no LLM is called. See Run.record and replays.services._step.)

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
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
from django.conf import settings
from django.db import transaction

from brokers.interface import BrokerError, NotAuthenticated
from brokers.models import BrokerKind
from brokers.services import broker_for
from lineage.models import LineageRecord, LineageStatus
from lineage.services import (
    ERROR_STEP,
    ERROR_STEP_NUMBER,
    lineage_build,
    lineage_record,
    lineage_record_many,
    lineage_recorded,
)
from lineage.steps import STEP_NUMBERS
from market.charts import render_chart, store_chart
from market.clock import FixedClock, clock_for_strategy
from market.indicators import compute, warmup_bars
from market.models import BarSize, MarketDataSource
from market.sources import PlaybackExhausted, source_for_strategy
from orders.models import Order, OrderLeg, OrderSide, OrderSource, OrderType, TimeInForce
from orders.services import Bracket, order_place
from portfolio.models import Position
from portfolio.services import position_exit_place
from signals_app.anonymise import anonymise_context
from signals_app.llm import Analysis, Answer
from signals_app.models import PromptVersion, TradingSignal
from signals_app.services import signal_record
from trading import analysis as steps
from trading import risk
from trading.models import ExecutionStatus, SkipReason, Strategy, StrategyExecution
from trading.notifications import notify_rejection, notify_run_failed
from trading.queues import STEP_QUEUES
from trading.services import execution_finish

logger = logging.getLogger(__name__)


class Skip(Exception):
    """The run cannot go on, and that is not a failure (inactive, not logged in, no more playback data). `reason`
    is the SkipReason the execution is closed with; the message says it in words."""

    def __init__(self, message: str, *, reason: SkipReason) -> None:
        super().__init__(message)
        self.reason = reason


class Handoff(Exception):
    def __init__(self, step: str, queue: str) -> None:
        super().__init__(f"{step} runs on the {queue} queue")
        self.step, self.queue = step, queue


class StepFailed(Exception):
    def __init__(self, step: str, error: BaseException) -> None:
        super().__init__(f"{step}: {error}")
        self.step, self.error = step, error


@dataclass
class Outcome:
    execution_id: str
    status: str  # an ExecutionStatus; RUNNING with `handoff_queue` when the run continues on another queue
    signal_id: int | None = None
    order_ids: list[int] = field(default_factory=list)
    error: str = ""
    handoff_queue: str | None = None
    signal: Any = field(default=None, repr=False)  # the TradingSignal itself, when this call had it in hand


@dataclass
class StepResult:
    """What a step recorded (`input`/`output`/`metadata`) and what it hands to the next step (`value`)."""

    output: dict
    value: Any = None
    input: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)
    # SKIPPED for a step that declined to act while the run goes on (a refused entry): recorded as skipped so the
    # logs show it, read back like a success.
    status: str = LineageStatus.SUCCESS


@dataclass(frozen=True)
class RunContext:
    """What a replay hands the executor for one of its steps (replays.services); live runs have none.

    A replay steps the same pipeline through history: its clock stands at the step's bar, its bar source never
    returns a later bar, and its simulated broker keeps the replay's own account. The options are the replay's:
    how to use the LLM cache, whether to render charts, whether the analyst sees an anonymised series, and the kill
    switch (None: the global TRADING_KILL_SWITCH; a replay passes False, the switch being a live-trading control).
    A replay's run never hands off to other queues: its clock and bars live in the replaying process."""

    clock: Any
    bar_source: Any
    broker: Any
    llm_cache: str = "use"
    render_charts: bool = True
    anonymise: bool = False
    kill_switch: bool | None = None
    # Optional speed-ups a replay may hand in; each gives what the live path would compute, for bars <= the clock.
    strategy: Any = None  # the strategy, loaded once for the whole replay (with its indicators prefetched)
    indicator_frames: Callable[[pd.DataFrame], dict] | None = None  # bars window -> {name: frame on its index}
    chart_renderer: Callable[..., bytes] | None = None  # called like market.charts.render_chart
    open_position: Callable[[], Any] | None = None  # the open Position (or None) as the replay's books hold it


@dataclass
class Run:
    execution: StrategyExecution
    queue: str | None = None  # the queue this task runs on, when the pipeline is split
    on_step: Callable[[LineageRecord, bool], None] | None = None  # (record, read_back): the command prints these
    started: float = field(default_factory=time.monotonic)
    memo: dict = field(default_factory=dict)
    context: RunContext | None = None  # a replay's step (see RunContext); None for live runs
    # A replay's run of an execution it has just started writes its lineage with its next write (see `record`).
    defers_lineage: bool = False
    pending: list[LineageRecord] = field(default_factory=list)
    # ... and when the replay runs it inside a transaction of its own, the whole run commits or rolls back as one:
    # its lineage is written once, at the close, and its own transactions add no savepoints.
    in_callers_transaction: bool = False

    def recorded(self, step_name: str) -> LineageRecord | None:
        """The step as this execution already recorded it (read once per task: one query, not one per step)."""
        if "recorded" not in self.memo:
            self.memo["recorded"] = {
                record.step_name: record for record in LineageRecord.objects.filter(execution=self.execution)
            }
        return self.memo["recorded"].get(step_name)

    def record(self, **fields) -> LineageRecord:
        """Record a step of this execution in lineage. A run that defers its lineage keeps the record until its
        next write (`flush`): the parse_signal and execution_complete transactions, the order service, the close of
        a skipped or failed run; or, inside its caller's transaction, until the close. That is one INSERT for several
        steps, and safe where a lost record costs nothing: a replay's steps before the signal write nothing else,
        and a replay whose runner dies redoes its step."""
        if not self.defers_lineage:
            return lineage_record(execution=self.execution, **fields)
        record = lineage_build(execution=self.execution, **fields)
        self.pending.append(record)
        return record

    def flush(self, *, closing: bool = False) -> None:
        """Write the deferred records (nothing for a run that records each step as it goes); before the close, not
        for a run inside its caller's transaction, which writes them all at its close."""
        if self.in_callers_transaction and not closing:
            return
        records, self.pending = self.pending, []
        try:
            lineage_record_many(records)
        except BaseException:
            self.pending = records + self.pending
            raise

    def unflush(self, records: list[LineageRecord]) -> None:
        """The transaction that wrote these records rolled back: they are pending again."""
        for record in records:
            record.pk, record._state.adding = None, True
        self.pending = records + [record for record in self.pending if record not in records]

    def reported(self, record: LineageRecord, *, read_back: bool) -> None:
        if self.on_step is not None:
            self.on_step(record, read_back)

    def must_hand_off(self, step_name: str) -> str | None:
        if not settings.PIPELINE_SPLIT_QUEUES or self.context is not None:
            return None
        wanted = STEP_QUEUES.get(step_name)
        return wanted if wanted and wanted != self.queue else None


def step(name: str, *, restore: Callable[..., Any], atomic: bool = False):
    """Record the step in lineage, or read it back when this execution already recorded it.

    `restore(run, output, *args)` rebuilds the step's value from its recorded output. An `atomic` step's writes and its
    lineage record commit together (it must not call a broker or an LLM)."""

    def decorate(func: Callable[..., StepResult]):
        @functools.wraps(func)
        def run_step(run: Run, *args):
            recorded = run.recorded(name)
            if recorded is not None and (
                recorded.status == LineageStatus.SUCCESS or recorded.output_data.get("run_continues")
            ):
                run.reported(recorded, read_back=True)
                return restore(run, recorded.output_data, *args)
            if recorded is not None and recorded.status == LineageStatus.ERROR:  # failed before the run was closed
                raise StepFailed(name, RuntimeError(recorded.error))
            if recorded is not None:
                reason = SkipReason(recorded.output_data.get("skip_reason") or SkipReason.INACTIVE)
                raise Skip(recorded.error or f"{name} was skipped", reason=reason)
            queue = run.must_hand_off(name)
            if queue:
                raise Handoff(name, queue)
            started = time.monotonic()
            unsaved = list(run.pending)
            try:
                with transaction.atomic(savepoint=not run.in_callers_transaction) if atomic else nullcontext():
                    result = func(run, *args)
                    record = run.record(
                        step_name=name,
                        step_number=STEP_NUMBERS[name],
                        input_data=result.input,
                        output_data={**result.output, "run_continues": True}
                        if result.status == LineageStatus.SKIPPED
                        else result.output,
                        metadata={"strategy_id": run.execution.strategy_id, **result.metadata},
                        status=result.status,
                        duration_ms=_ms(started),
                    )
                    if atomic:
                        # the step's writes and the lineage so far commit together
                        run.flush(closing=name == "execution_complete")
            except Skip as skip:
                if atomic:
                    run.unflush(unsaved)
                record = _record_problem(run, name, started, LineageStatus.SKIPPED, str(skip), skip_reason=skip.reason)
                run.reported(record, read_back=False)
                raise
            except Exception as exc:
                if atomic:
                    run.unflush(unsaved)
                record = _record_problem(run, name, started, LineageStatus.ERROR, _describe(exc))
                run.reported(record, read_back=False)
                raise StepFailed(name, exc) from exc
            run.reported(record, read_back=False)
            return result.value

        return run_step

    return decorate


def _record_problem(
    run: Run, name: str, started: float, status: str, message: str, *, skip_reason: str = ""
) -> LineageRecord:
    output = {"status": status, "reason": message} | ({"skip_reason": skip_reason} if skip_reason else {})
    return run.record(
        step_name=name,
        step_number=STEP_NUMBERS[name],
        status=status,
        error=message,
        output_data=output,
        metadata={"strategy_id": run.execution.strategy_id},
        duration_ms=_ms(started),
    )


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


# --- the workflow --------------------------------------------------------------------------------------------------


def execute(
    execution_id,
    *,
    queue: str | None = None,
    on_step=None,
    context: RunContext | None = None,
    started: StrategyExecution | None = None,
) -> Outcome:
    """Run (or resume) one execution to its end, or to the point where it hands off to another queue.

    `started` is the execution itself when the caller has just made it with execution_start (a replay's step): it
    is RUNNING and has recorded nothing, so neither is read back, and a replay's run defers its lineage (Run.record).
    """
    if started is not None:
        replay = context is not None
        in_transaction = replay and transaction.get_connection().in_atomic_block
        run = Run(execution=started, context=context, defers_lineage=replay, in_callers_transaction=in_transaction)
        run.memo["recorded"] = {}
        return _run(run)
    execution = StrategyExecution.objects.select_related("strategy").filter(pk=execution_id).first()
    if execution is None:
        return Outcome(execution_id=str(execution_id), status="GONE")
    if execution.status != ExecutionStatus.RUNNING:
        return _outcome_of_finished(execution)
    return _run(Run(execution=execution, queue=queue, on_step=on_step, context=context))


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
        return execution_complete(run, signal, orders)
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
    if "strategy" not in run.memo and run.context is not None and run.context.strategy is not None:
        run.memo["strategy"] = run.context.strategy
    if "strategy" not in run.memo:
        run.memo["strategy"] = (
            Strategy.objects.select_related("symbol", "broker_connection", "owner")
            .prefetch_related("strategy_indicators__indicator")
            .get(pk=run.execution.strategy_id)
        )
    return run.memo["strategy"]


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
    }
    if not strategy.is_active:
        raise Skip("strategy inactive", reason=SkipReason.INACTIVE)
    ibkr = connection is not None and connection.kind == BrokerKind.IBKR
    if ibkr and not run.execution.dry_run and not connection.authenticated:
        raise Skip(
            f"IBKR session not authenticated ({connection.auth_message or 'log in at the gateway'})",
            reason=SkipReason.SESSION_DOWN,
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
    window: dict
    frames: dict = field(default_factory=dict)
    source: Any = None  # the run's bar source (a replay's); None: the strategy's own

    def frame(self, bar_size: str | None = None) -> pd.DataFrame:

        bar_size = bar_size or self.strategy.bar_size
        if bar_size not in self.frames:
            spec = self.window["series"][bar_size]
            source = self.source or source_for_strategy(self.strategy)
            self.frames[bar_size] = source.bars(
                self.strategy.symbol, bar_size, end=_parse_time(spec["end"]), limit=spec["count"]
            )
        return self.frames[bar_size]

    @property
    def now(self):
        return _parse_time(self.window["now"])

    @property
    def last_close(self) -> Decimal:
        return Decimal(self.window["series"][self.strategy.bar_size]["last_close"])


def _parse_time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)


def _warmup(strategy: Strategy) -> int:

    return max(
        (
            warmup_bars(link.indicator.indicator_type, link.indicator.parameters)
            for link in strategy.strategy_indicators.all()
        ),
        default=0,
    )


def _clock(run: Run, strategy: Strategy):
    """The replay's clock for a replay's step, else the strategy's market clock."""

    return run.context.clock if run.context is not None else clock_for_strategy(strategy)


def _source(run: Run, strategy: Strategy):
    """The replay's bar source (never past its clock) for a replay's step, else the strategy's own."""

    return run.context.bar_source if run.context is not None else source_for_strategy(strategy)


@step("fetch_market_data", restore=lambda run, output, strategy: Bars(strategy, output))
def fetch_market_data(run: Run, strategy: Strategy) -> StepResult:

    source = _source(run, strategy)
    if strategy.market_data_source == MarketDataSource.PLAYBACK and run.context is None:
        try:
            source.advance()  # one bar per run; recorded here, so a resumed run does not advance again
        except PlaybackExhausted as exc:
            raise Skip(str(exc) or "playback data exhausted", reason=SkipReason.PLAYBACK_EXHAUSTED) from exc
    now = _clock(run, strategy).now()
    wanted = strategy.lookback_bars + _warmup(strategy)
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
    window = {"now": now.isoformat(), "source": strategy.market_data_source, "series": series}
    return StepResult(
        input={"symbol": strategy.symbol.symbol, "bar_size": strategy.bar_size, "bars_wanted": wanted, "end": now},
        output=window,
        value=Bars(strategy, window, frames, source=source),
    )


@dataclass
class Indicators:
    bars: Bars
    latest: dict
    computed: dict | None = None

    @property
    def frames(self) -> dict[str, pd.DataFrame]:
        if self.computed is None:
            self.computed = _indicator_frames(self.bars)
        return self.computed


def _indicator_frames(bars: Bars) -> dict[str, pd.DataFrame]:

    frame = bars.frame()
    return {
        link.indicator.name: compute(frame, link.indicator.indicator_type, link.indicator.parameters)
        for link in bars.strategy.strategy_indicators.all()
    }


@step("calculate_indicators", restore=lambda run, output, strategy, bars: Indicators(bars, output["latest"]))
def calculate_indicators(run: Run, strategy: Strategy, bars: Bars) -> StepResult:
    provided = run.context.indicator_frames if run.context is not None else None
    frames = provided(bars.frame()) if provided is not None else _indicator_frames(bars)
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
        value=Indicators(bars, latest, frames),
    )


def _num(value):

    if value is None:
        return None
    number = float(value)
    return round(number, 6) if math.isfinite(number) else None


@step("generate_charts", restore=lambda run, output, *args: output["charts"])
def generate_charts(run: Run, strategy: Strategy, bars: Bars, indicators: Indicators) -> StepResult:

    charts = []
    if run.context is not None and (not run.context.render_charts or run.context.anonymise):
        # A replay may run without charts (they cost time, and the rules analyst reads none); an anonymised one
        # sends none because a chart's axis carries the dates.
        reason = "anonymised: no charts" if run.context.anonymise else "charts off for this replay"
        return StepResult(
            input={"symbol": strategy.symbol.symbol, "timeframes": list(bars.window["series"])},
            output={"charts": [], "chart_count": 0, "chart_keys": [], "note": reason},
            value=[],
        )
    prefix = f"charts/{strategy.pk}/{run.execution.pk}"
    links = strategy.strategy_indicators.all()
    configs = [(link.indicator.indicator_type, link.indicator.parameters) for link in links]
    for bar_size in bars.window["series"]:
        # The strategy's own bars reuse the computed indicators; the weekly chart computes its own on weekly bars.
        drawn = indicators.frames if bar_size == strategy.bar_size else configs
        render = run.context.chart_renderer if run.context is not None else None
        png = (render or render_chart)(
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


def _analysis_restore(run: Run, output: dict, *args):

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
def llm_analysis(run: Run, strategy: Strategy, bars: Bars, indicators: Indicators, charts: list[dict]) -> StepResult:

    held = run.context.open_position if run.context is not None else None
    context = steps.build_context(
        strategy=strategy,
        bars_df=bars.frame(),
        indicators=indicators.frames,
        charts=charts,
        clock=FixedClock(bars.now),
        position=steps.LOOK_IT_UP if held is None else held(),
    )
    if run.context is not None and run.context.anonymise:
        context = anonymise_context(context)
    llm_cache = run.context.llm_cache if run.context is not None else "use"
    analysis = steps.analyse(
        strategy=strategy, context=context, charts=charts, execution=run.execution, llm_cache=llm_cache
    )
    answer = analysis.answer
    version = analysis.prompt_version
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


def _signal_restore(run: Run, output: dict, *args):

    return TradingSignal.objects.select_related("symbol").get(pk=output["signal_id"])


@step("parse_signal", restore=_signal_restore, atomic=True)
def parse_signal(run: Run, strategy: Strategy, bars: Bars, analysis) -> StepResult:

    parsed = steps.parse_signal(analysis=analysis, last_close=bars.last_close, strategy=strategy)
    signal = signal_record(
        strategy=strategy,
        execution=run.execution,
        parsed=parsed,
        prompt_version=analysis.prompt_version,
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


def _decision_restore(run: Run, output: dict, *args) -> dict:
    return output


@step("risk_check", restore=_decision_restore)
def risk_check(run: Run, strategy: Strategy, signal) -> StepResult:

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
    kill_switch = run.context.kill_switch if run.context is not None else None
    decision = risk.risk_check(
        strategy=strategy, signal=signal, clock=_clock(run, strategy), account=account, kill_switch=kill_switch
    )
    refused = signal.action != "HOLD" and not decision.allowed
    return StepResult(
        input={"signal_id": signal.pk, "action": signal.action, "account": account},
        output=decision.as_dict(),
        value=decision.as_dict(),
        status=LineageStatus.SKIPPED if refused else LineageStatus.SUCCESS,
    )


def _broker(run: Run, strategy: Strategy):

    if run.context is not None:
        return run.context.broker
    return broker_for(
        strategy.broker_connection,
        clock=_clock(run, strategy),
        bar_source=_source(run, strategy),
        bar_size=strategy.bar_size,
    )


def _orders_restore(run: Run, output: dict, *args) -> list:

    return list(Order.objects.filter(pk__in=output.get("order_ids", [])).order_by("pk"))


@step("place_order", restore=_orders_restore)
def place_order(run: Run, strategy: Strategy, signal, decision: dict) -> StepResult:

    placed, note = [], ""
    try:
        if run.execution.dry_run:
            note = "dry run: nothing placed"
        elif not decision["allowed"]:
            note = "no order: " + "; ".join(decision["refusals"])
        elif signal.action == "BUY":
            run.flush()  # the run's lineage so far is written before an order is
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
                broker=run.context.broker if run.context is not None else None,
            )
            placed = [entry, *entry.children.order_by("pk")]
            note = f"BUY {decision['quantity']} {strategy.symbol.symbol} limit {signal.entry_price} DAY" + (
                " with a GTC stop and target" if bracket else ""
            )
        elif signal.action == "SELL":
            run.flush()
            position = Position.objects.get(pk=decision["exit_position_id"])
            placed = [
                position_exit_place(
                    position=position,
                    limit_price=signal.entry_price,
                    signal=signal,
                    source=OrderSource.STRATEGY,
                    clock=_clock(run, strategy),
                    broker=run.context.broker if run.context is not None else None,
                )
            ]
            note = (
                f"SELL {position.quantity} {strategy.symbol.symbol} limit {signal.entry_price} DAY: closes the position"
            )
    except NotAuthenticated as exc:
        raise Skip(f"IBKR session not authenticated: {exc}", reason=SkipReason.SESSION_DOWN) from exc
    for order in placed:
        if order.status == "REJECTED":
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


def _order_summary(order) -> dict:
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


def _complete_restore(run: Run, output: dict, *args, signal=None) -> Outcome:
    return Outcome(
        execution_id=str(run.execution.pk),
        status=output["status"],
        signal_id=output.get("signal_id"),
        order_ids=output.get("order_ids", []),
        signal=signal,
    )


@step("execution_complete", restore=_complete_restore, atomic=True)
def execution_complete(run: Run, signal, orders: list) -> StepResult:

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
        duration_ms=_ms(run.started),
    )
    run.flush(closing=True)
    run.reported(record, read_back=False)
    execution_finish(execution=run.execution, status=ExecutionStatus.SKIPPED, error=reason, skip_reason=skip_reason)
    return Outcome(execution_id=str(run.execution.pk), status=ExecutionStatus.SKIPPED, error=reason)


def _close_failed(run: Run, step_name: str, error: BaseException) -> Outcome:

    message = f"{step_name}: {_describe(error)}"
    logger.warning("execution %s failed at %s", run.execution.pk, message)
    record = run.record(
        step_name=ERROR_STEP,
        step_number=ERROR_STEP_NUMBER,
        status=LineageStatus.ERROR,
        error=message,
        input_data={"strategy_id": run.execution.strategy_id, "failed_step": step_name},
        output_data={"traceback": traceback.format_exception(error)[-5:]},
        metadata={"strategy_id": run.execution.strategy_id},
        duration_ms=_ms(run.started),
    )
    run.flush(closing=True)
    run.reported(record, read_back=False)
    finished = execution_finish(execution=run.execution, status=ExecutionStatus.FAILED, error=message)
    if finished and run.context is None:  # a replay stops at a failed run and reports it: nobody is notified
        delivered = notify_run_failed(execution=run.execution)
        lineage_record(
            execution=run.execution,
            step_name="notify",
            step_number=ERROR_STEP_NUMBER + 1,
            status=LineageStatus.ERROR if delivered["errors"] else LineageStatus.SUCCESS,
            error="; ".join(delivered["errors"]),
            output_data=delivered,
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
