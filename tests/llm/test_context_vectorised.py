"""build_context reads bars and indicator values column by column; its context must be the very one the row-by-row
version built (the reference below is that version, kept verbatim so the comparison can fail)."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import pandas as pd
import pytest

from market.clock import FixedClock
from market.indicators import compute
from tests.factories import PositionFactory
from trading import analysis as steps

DATA = Path(__file__).resolve().parents[2] / "market" / "data" / "SPY_daily_2008-2017_yahoo_mplfinance.csv"

INDICATOR_SETS = {
    "standard": [("RSI 14", "RSI", {"period": 14}), ("MACD", "MACD", {}), ("Supertrend", "SUPERTREND", {})],
    "averages-and-bands": [("SMA 50", "SMA", {"period": 50}), ("EMA 20", "EMA", {"period": 20}), ("BB", "BB", {})],
    "atr-only": [("ATR 14", "ATR", {"period": 14})],
    "none": [],
}


def spy_bars(end: str, count: int) -> pd.DataFrame:
    raw = pd.read_csv(DATA, parse_dates=["Date"])
    raw = raw[raw["Date"] <= end].tail(count)
    index = pd.DatetimeIndex(raw["Date"]).tz_localize("America/New_York") + pd.Timedelta(hours=16)
    return pd.DataFrame(
        {
            "open": raw["Open"].to_numpy(),
            "high": raw["High"].to_numpy(),
            "low": raw["Low"].to_numpy(),
            "close": raw["Close"].to_numpy(),
            "volume": raw["Volume"].to_numpy(),
        },
        index=index.tz_convert("UTC"),
    )


RSI_ON_2013_06_28 = 45.729577  # SPY RSI(14) on 2013-06-28 from its 60 daily bars to then


# --- the row-by-row reference (the implementation this replaced) ----------------------------------------------------


def reference_bars(shown: pd.DataFrame) -> list[dict]:
    return [
        {
            "time": steps._iso(index),
            "open": steps._num(row["open"]),
            "high": steps._num(row["high"]),
            "low": steps._num(row["low"]),
            "close": steps._num(row["close"]),
            "volume": steps._num(row.get("volume", 0)),
        }
        for index, row in shown.iterrows()
    ]


def reference_indicator(name: str, frame, config) -> dict:
    frame = frame.to_frame() if isinstance(frame, pd.Series) else pd.DataFrame(frame)
    kind = (
        config.indicator_type if config else next((t for c, t in steps.COLUMN_TYPES.items() if c in frame.columns), "")
    )
    clean = frame.dropna(how="all")
    latest = {column: steps._num(value) for column, value in clean.iloc[-1].items()} if len(clean) else {}
    recent = [
        {"time": steps._iso(index), **{column: steps._num(value) for column, value in row.items()}}
        for index, row in clean.iloc[-steps.RECENT_INDICATOR_VALUES :].iterrows()
    ]
    return {
        "name": name,
        "type": kind,
        "params": dict(config.parameters) if config else {},
        "latest": latest,
        "recent": recent,
    }


def dump(value) -> str:
    return json.dumps(value, sort_keys=False, allow_nan=False)


@pytest.mark.parametrize("end", ["2009-03-09", "2013-06-28", "2017-12-29"], ids=["crash-low", "mid", "last-bar"])
@pytest.mark.parametrize("indicator_set", list(INDICATOR_SETS), ids=list(INDICATOR_SETS))
def test_context_on_spy_bars_is_the_row_by_row_one(make_strategy, end, indicator_set):
    # given real SPY bars (short and long lookbacks, so some indicators have no value yet) and a strategy's indicators
    strategy = make_strategy(indicators=INDICATOR_SETS[indicator_set])
    for count in (8, 40, 260):
        bars = spy_bars(end, count)
        configs = {
            link.indicator.name: link.indicator for link in strategy.strategy_indicators.select_related("indicator")
        }
        frames = {name: compute(bars, c.indicator_type, c.parameters) for name, c in configs.items()}
        clock = FixedClock(bars.index[-1].to_pydatetime() + dt.timedelta(hours=1))

        # when the context is built
        context = steps.build_context(strategy=strategy, bars_df=bars, indicators=frames, charts=[], clock=clock)

        # then bars, indicator values and both tables are byte for byte the row-by-row ones
        expected_bars = reference_bars(bars.iloc[-steps.PROMPT_BARS :])
        expected_items = [reference_indicator(name, frame, configs.get(name)) for name, frame in frames.items()]
        assert dump(context["bars"]) == dump(expected_bars)
        assert context["bars_table"] == steps._bars_table(expected_bars)
        assert dump(context["indicators"]) == dump(expected_items)
        assert context["indicators_table"] == steps._indicators_table(expected_items)
        assert context["last_close"] == expected_bars[-1]["close"]


@pytest.mark.parametrize(
    "frame",
    [
        pd.Series([math.nan, 1.5, math.nan, 2.25], name="sma"),
        pd.DataFrame({"upper": [math.nan, 3.0, math.nan], "lower": [math.nan, math.nan, math.nan]}),
        pd.DataFrame({"a": [math.nan, math.nan]}),
        pd.DataFrame({"direction": [1, -1, 1], "supertrend": [math.nan, 2.0, math.inf]}),
        pd.DataFrame(index=pd.RangeIndex(3)),
    ],
    ids=["series-with-gaps", "partly-empty-columns", "nothing-yet", "ints-beside-floats", "no-columns"],
)
def test_indicator_values_of_odd_frames_are_the_row_by_row_ones(frame):
    # given frames without a config (type guessed from the columns), gaps, ints and infinities
    frame.index = pd.date_range("2024-01-02", periods=len(frame), freq="D", tz="UTC")
    # when / then
    assert dump(steps._indicator_context("x", frame, None)) == dump(reference_indicator("x", frame, None))


def test_context_pins_spy_values_and_the_open_position(make_strategy):
    # given SPY up to 2013-06-28 with an RSI and an open position in the strategy
    strategy = make_strategy(indicators=[("RSI 14", "RSI", {"period": 14})])
    PositionFactory(strategy=strategy, symbol=strategy.symbol, quantity=10, average_cost="150.00")
    bars = spy_bars("2013-06-28", 60)
    frames = {"RSI 14": compute(bars, "RSI", {"period": 14})}
    clock = FixedClock(dt.datetime(2013, 6, 28, 21, tzinfo=dt.UTC))

    # when
    context = steps.build_context(strategy=strategy, bars_df=bars, indicators=frames, charts=[], clock=clock)

    # then the last bar is SPY's close that day, rounded to 6 places, and the position is valued at it
    assert context["bars_shown"] == 30
    assert context["bars"][-1] == {
        "time": "2013-06-28T20:00:00+00:00",
        "open": 160.630005,
        "high": 161.399994,
        "low": 159.860001,
        "close": 160.419998,
        "volume": 160402900.0,
    }
    assert context["last_close"] == 160.419998
    rsi = context["indicators"][0]
    assert rsi["latest"] == {"rsi": RSI_ON_2013_06_28}
    assert rsi["recent"][-1] == {"time": "2013-06-28T20:00:00+00:00", "rsi": RSI_ON_2013_06_28}
    assert [row["time"][:10] for row in rsi["recent"]] == [
        "2013-06-24",
        "2013-06-25",
        "2013-06-26",
        "2013-06-27",
        "2013-06-28",
    ]
    assert context["position"]["unrealized_pnl"] == round((160.419998 - 150.0) * 10, 2)
