"""What a replay step can see: bars up to its cursor and nothing after, and indicators that only look back."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from market import indicators
from market.clock import bar_close
from market.models import BarSize
from replays.playback import ReplayBarSource, ReplayClock, load_history


@pytest.mark.parametrize("name", sorted(indicators.REGISTRY))
def test_indicator_over_the_whole_series_equals_the_one_on_bars_up_to_t(spy_frame, name):
    # given real SPY bars, the indicator computed once over all of them
    whole = indicators.compute(spy_frame, name)

    # when it is computed again on only the bars up to t, at steps through the warm-up and well after it
    for t in (5, 30, 60, 250, 500, len(spy_frame) - 2):
        partial = indicators.compute(spy_frame.iloc[: t + 1], name)

        # then every value up to t is the same: nothing at t depends on a later bar
        np.testing.assert_allclose(
            partial.to_numpy(dtype=float), whole.iloc[: t + 1].to_numpy(dtype=float), rtol=1e-9, equal_nan=True
        )


def _source(spy) -> tuple[ReplayBarSource, ReplayClock]:
    clock = ReplayClock(BarSize.D1)
    history = load_history(spy, BarSize.D1, end=dt.datetime(2013, 1, 1, tzinfo=dt.UTC))
    return ReplayBarSource(spy, history, clock), clock


def test_replay_source_never_returns_a_bar_after_the_cursor_even_when_asked(spy):
    # given a replay standing at 2010-06-01
    source, clock = _source(spy)
    cursor = dt.datetime(2010, 6, 1, tzinfo=dt.UTC)
    clock.advance_to(cursor)

    # when a caller asks for everything up to 2012
    bars = source.bars(spy, BarSize.D1, end=dt.datetime(2012, 12, 31, tzinfo=dt.UTC))
    latest = source.latest_price("SPY", at=dt.datetime(2012, 12, 31, tzinfo=dt.UTC))

    # then the newest bar it gets is the cursor's, and so is the price
    assert bars.index[-1] == pd.Timestamp(cursor)
    assert float(latest) == pytest.approx(bars["close"].iloc[-1])


def test_replay_clock_reads_the_close_of_the_cursor_bar_and_only_moves_forward(spy):
    source, clock = _source(spy)
    cursor = dt.datetime(2010, 6, 1, tzinfo=dt.UTC)
    clock.advance_to(cursor)

    # 16:00 in New York on the session date, so the trading day is the bar's own date
    assert clock.now() == bar_close(cursor, BarSize.D1) == dt.datetime(2010, 6, 1, 20, 0, tzinfo=dt.UTC)
    assert clock.trading_day() == dt.date(2010, 6, 1)
    with pytest.raises(ValueError, match="only moves forward"):
        clock.advance_to(cursor - dt.timedelta(days=1))


def test_weekly_bars_of_a_daily_replay_hold_only_the_days_so_far(spy):
    # given a replay on Wednesday 2010-06-02
    source, clock = _source(spy)
    clock.advance_to(dt.datetime(2010, 6, 2, tzinfo=dt.UTC))

    weekly = source.bars(spy, BarSize.W1, limit=3)

    # then the current week closes at Wednesday's close, is marked partial, and Thursday's high is not in it
    daily = source.bars(spy, BarSize.D1, limit=2)
    assert weekly["close"].iloc[-1] == daily["close"].iloc[-1]
    assert bool(weekly["partial"].iloc[-1]) is True
    assert weekly["high"].iloc[-1] == daily["high"].max()


def test_other_symbols_are_refused(spy):
    source, clock = _source(spy)
    clock.advance_to(dt.datetime(2010, 6, 2, tzinfo=dt.UTC))
    with pytest.raises(Exception, match="SPY only"):
        source.bars("AAPL", BarSize.D1)
