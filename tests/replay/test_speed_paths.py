"""What a replay does once instead of every step gives each step exactly what the step would have computed itself:
indicators sliced from one pass over the history, charts drawn ahead on a process pool. And a step's reads stay few."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from market.charts import render_chart
from market.indicators import compute
from market.models import BarSize
from replays.charts import ChartPrefetcher
from replays.playback import ReplayBarSource, ReplayClock, ReplayIndicators
from replays.services import replay_create, replay_run

CONFIGS = [("SUPERTREND", {}), ("EMA", {"period": 20}), ("RSI", {}), ("MACD", {}), ("ATR", {}), ("BB", {}), ("SMA", {})]
WINDOW = 160  # lookback plus warm-up, as a strategy's run asks for


class Config:
    def __init__(self, name: str, indicator_type: str, parameters: dict) -> None:
        self.name, self.indicator_type, self.parameters = name, indicator_type, parameters


def _configs() -> list[Config]:
    return [Config(f"{kind} {position}", kind, params) for position, (kind, params) in enumerate(CONFIGS)]


@pytest.mark.parametrize("t", [40, 159, 300, 700], ids=["inside-warm-up", "first-full-window", "year-2", "late"])
def test_indicator_slice_at_t_equals_computing_on_every_bar_up_to_t(spy_frame, t):
    # given the seven indicators computed once over the whole history, as a replay does
    provider = ReplayIndicators(spy_frame, _configs())

    # when step t asks for them on its window (the last WINDOW bars up to t)
    window = spy_frame.iloc[max(t + 1 - WINDOW, 0) : t + 1]
    sliced = provider.window(window)

    # then each is what computing on all the bars up to t gives, on exactly the window's rows
    for config in _configs():
        expected = compute(spy_frame.iloc[: t + 1], config.indicator_type, config.parameters).iloc[-len(window) :]
        assert sliced[config.name].index.equals(window.index)
        np.testing.assert_allclose(
            sliced[config.name].to_numpy(dtype=float), expected.to_numpy(dtype=float), rtol=1e-9, equal_nan=True
        )


def test_bars_that_are_not_a_window_of_the_history_get_indicators_computed_on_themselves(spy_frame):
    provider = ReplayIndicators(spy_frame, _configs())
    other = spy_frame.iloc[200:360] * 1.5  # same dates, other prices: not the history the provider holds
    other.index = other.index + pd.Timedelta(hours=1)

    sliced = provider.window(other)

    for config in _configs():
        pd.testing.assert_frame_equal(sliced[config.name], compute(other, config.indicator_type, config.parameters))


def _prefetching(spy, spy_frame, *, configs: int, steps: tuple[int, int], drawn: int):
    """A replay clock and source over SPY, indicators for the first `configs` configurations, and a one-worker
    prefetcher over the bars at positions steps[0]..steps[1]."""
    clock = ReplayClock(BarSize.D1)
    source = ReplayBarSource(spy, spy_frame, clock)
    provider = ReplayIndicators(spy_frame, _configs()[:configs])
    cursors = [t.to_pydatetime() for t in spy_frame.index[steps[0] : steps[1]]]
    prefetcher = ChartPrefetcher(
        source=source,
        indicators=provider,
        cursors=cursors,
        symbol="SPY",
        bar_size=BarSize.D1,
        window=WINDOW,
        drawn=drawn,
        workers=1,
    )
    return clock, source, provider, cursors, prefetcher


def test_a_chart_drawn_ahead_on_the_pool_is_the_png_the_executor_would_draw(spy, spy_frame):
    # given a replay's source standing at a cursor, and a prefetcher over the next steps
    clock, source, provider, cursors, prefetcher = _prefetching(spy, spy_frame, configs=5, steps=(400, 404), drawn=120)
    try:
        clock.advance_to(cursors[0])
        prefetcher.prefetch(0)
        future = next(iter(prefetcher.futures.values()))
        future.result(timeout=120)  # drawn by the worker, not by the caller

        # when the executor asks for step 0's chart with the arguments it uses
        frame = source.bars(spy, BarSize.D1, limit=WINDOW)
        arguments = {"symbol": "SPY", "bar_size": BarSize.D1, "indicators": provider.window(frame), "bars": 120}
        png = prefetcher.render(frame, **arguments)

        # then it gets the pool's chart, byte for byte the one drawn in process
        assert png == future.result()
        assert png == render_chart(frame, **arguments)
        assert len(prefetcher.futures) == len(cursors) - 1
    finally:
        prefetcher.close()


def test_a_chart_not_drawn_ahead_is_drawn_in_process(spy, spy_frame):
    clock = ReplayClock(BarSize.D1)
    source = ReplayBarSource(spy, spy_frame, clock)
    provider = ReplayIndicators(spy_frame, _configs()[:2])
    prefetcher = ChartPrefetcher(
        source=source, indicators=provider, cursors=[], symbol="SPY", bar_size=BarSize.D1, window=WINDOW, drawn=60
    )
    prefetcher.close()  # no pool at all
    clock.advance_to(spy_frame.index[300].to_pydatetime())
    frame = source.bars(spy, BarSize.D1, limit=WINDOW)

    png = prefetcher.render(frame, symbol="SPY", bar_size=BarSize.D1, indicators=provider.window(frame), bars=60)

    assert png == render_chart(frame, symbol="SPY", bar_size=BarSize.D1, indicators=provider.window(frame), bars=60)


def _february_replay(strategy):
    """A month of daily steps (19) replayed with the rules analyst, and the SQL it sent."""
    start, end = dt.date(2010, 2, 1), dt.date(2010, 2, 26)
    replay = replay_create(owner=strategy.owner, strategy=strategy, start=start, end=end, render_charts=False)
    with CaptureQueriesContext(connection) as queries:
        return replay_run(replay=replay), queries


def test_a_replay_step_reads_the_strategy_and_indicator_configs_once_per_replay_not_per_step(rules_strategy):
    # given a month of daily steps with the rules analyst, when it runs
    replay, queries = _february_replay(rules_strategy)

    # then the strategy and its indicator configs are read a fixed number of times, not once per step, and the
    # whole run stays under a per-step bound (today ~19 statements a step, SAVEPOINTs included; was ~62)
    assert replay.status == "COMPLETED" and replay.steps_done == 19
    statements = [q["sql"] for q in queries.captured_queries]
    strategy_reads = [s for s in statements if s.startswith('SELECT "trading_strategy"."id"')]
    config_reads = [s for s in statements if s.startswith('SELECT "market_indicatorconfig"."id"')]
    assert len(strategy_reads) <= 4
    assert len(config_reads) <= 4
    assert len(statements) / replay.steps_done < 22


def test_a_chart_worker_that_dies_costs_the_step_nothing_but_time(spy, spy_frame):
    # given charts being drawn ahead, and the pool's worker killed before it answers
    clock, source, provider, cursors, prefetcher = _prefetching(spy, spy_frame, configs=2, steps=(500, 503), drawn=60)
    try:
        clock.advance_to(cursors[0])
        prefetcher.prefetch(0)
        for process in list(prefetcher.pool._processes.values()):
            process.kill()

        # when the executor asks for the step's chart, then for the next step's
        frame = source.bars(spy, BarSize.D1, limit=WINDOW)
        png = prefetcher.render(frame, symbol="SPY", bar_size=BarSize.D1, indicators=provider.window(frame), bars=60)
        clock.advance_to(cursors[1])
        prefetcher.prefetch(1)
        later = source.bars(spy, BarSize.D1, limit=WINDOW)
        next_png = prefetcher.render(
            later, symbol="SPY", bar_size=BarSize.D1, indicators=provider.window(later), bars=60
        )

        # then both are drawn in process, the same as ever
        assert png == render_chart(frame, symbol="SPY", bar_size=BarSize.D1, indicators=provider.window(frame), bars=60)
        assert next_png == render_chart(
            later, symbol="SPY", bar_size=BarSize.D1, indicators=provider.window(later), bars=60
        )
    finally:
        prefetcher.close()


def _lineage_by_execution(replay) -> dict[str, list[tuple[int, str, str]]]:
    from lineage.models import LineageRecord

    records = LineageRecord.with_replays.filter(execution__strategy=replay.shadow_strategy).order_by("step_number")
    lineage: dict[str, list[tuple[int, str, str]]] = {}
    for execution_id, number, name, status in records.values_list("execution_id", "step_number", "step_name", "status"):
        lineage.setdefault(str(execution_id), []).append((number, name, status))
    return lineage


def test_a_replay_step_writes_its_nine_lineage_records_with_its_writes_not_one_insert_each(rules_strategy):
    from lineage.steps import STEPS
    from orders.models import Order

    # given a month of daily steps with the rules analyst, when it runs
    replay, queries = _february_replay(rules_strategy)

    # then every step's run has its nine records, in order, all successful or a recorded refusal
    lineage = _lineage_by_execution(replay)
    assert len(lineage) == replay.steps_done == 19
    for records in lineage.values():
        assert [(number, name) for number, name, _ in records] == list(enumerate(STEPS, start=1))
        assert {status for *_, status in records} <= {"success", "skipped"}
    # written a few at a time: with the signal, before an order is sent, and with the close
    inserts = [q for q in queries.captured_queries if q["sql"].startswith('INSERT INTO "lineage_lineagerecord"')]
    orders = Order.with_replays.filter(strategy=replay.shadow_strategy).values("signal_id").distinct().count()
    assert len(inserts) <= 2 * replay.steps_done + orders
    # and the replay's progress is written at most once a second (19 daily steps take well under 19 seconds)
    progress_write = 'UPDATE "replays_replay" SET "heartbeat_at"'
    progress = [q for q in queries.captured_queries if q["sql"].startswith(progress_write)]
    assert len(progress) < replay.steps_done


@pytest.mark.parametrize(
    "breakage, reason",
    [
        ({"confidence": 5}, "check constraint"),  # refused at once, before the step writes its lineage
        ({"execution_id": "00000000-0000-4000-8000-000000000000"}, "foreign key constraint"),  # refused at COMMIT
    ],
    ids=["refused-at-once", "refused-at-commit"],
)
@pytest.mark.django_db(transaction=True)  # real commits: a deferred foreign key is checked at COMMIT
def test_a_replay_step_whose_signal_write_fails_still_records_every_step_before_it(
    rules_strategy, monkeypatch, breakage, reason
):
    from lineage.models import LineageRecord
    from lineage.steps import ANALYSIS_STEPS
    from orders.models import Order
    from signals_app.models import TradingSignal
    from trading import executor
    from trading.models import StrategyExecution

    # given a signal write the database refuses, inside the parse_signal transaction that also writes the lineage
    # of the steps before it
    real_record = executor.signal_record

    def refused_signal(**fields):
        signal = real_record(**fields)
        TradingSignal.with_replays.filter(pk=signal.pk).update(**breakage)
        return signal

    monkeypatch.setattr(executor, "signal_record", refused_signal)
    replay = replay_create(
        owner=rules_strategy.owner,
        strategy=rules_strategy,
        start=dt.date(2010, 2, 1),
        end=dt.date(2010, 2, 5),
        render_charts=False,
    )

    # when the first step's transaction rolls back (and the step is run again write by write, failing the same way)
    replay = replay_run(replay=replay)

    # then the replay stopped there with one failed run, no signal and no order, and the lineage holds the five
    # steps before it, the failed step with the database's reason, and the error that closed the run
    assert replay.status == "FAILED" and replay.steps_done == 1
    assert StrategyExecution.with_replays.filter(strategy=replay.shadow_strategy).count() == 1
    assert not TradingSignal.with_replays.filter(strategy=replay.shadow_strategy).exists()
    assert not Order.with_replays.filter(strategy=replay.shadow_strategy).exists()
    [records] = _lineage_by_execution(replay).values()
    assert [name for _, name, _ in records] == [*ANALYSIS_STEPS, "execution_error"]
    assert [status for *_, status in records] == ["success"] * 5 + ["error", "error"]
    failed = LineageRecord.with_replays.get(execution__strategy=replay.shadow_strategy, step_name="parse_signal")
    assert reason in failed.error.lower() and "IntegrityError" in failed.error  # SQLite says it in capitals
