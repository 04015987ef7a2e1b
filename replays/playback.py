"""The replay's clock and bar source: the only two things that know where a replay stands in history.

A replay steps through the bars of its range. At step t the cursor is bar t's timestamp and the clock reads the
instant bar t is complete (`market.clock.bar_close`, as the playback feed does), so fills, expiry, "per day"
limits, charts and prompts all see the same moment. History is loaded once; every answer is cut at the cursor
whatever `end` the caller asks for, so a step cannot see a later bar even through a caller that forgets `end`.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pandas as pd

from market.clock import DEFAULT_EXCHANGE_TZ, MarketClock, bar_close, trading_day
from market.frames import frame_from_rows, resample_weekly
from market.indicators import compute
from market.models import Bar, BarSize
from market.sources import BarSource, BarSourceError, PlaybackExhausted


class ReplayClock(MarketClock):
    """The clock of one replay: at the close of the cursor bar. It only moves forward."""

    def __init__(self, bar_size: str, tz: str = DEFAULT_EXCHANGE_TZ) -> None:
        self.bar_size = bar_size
        self.tz = tz
        self.cursor: dt.datetime | None = None

    def advance_to(self, cursor: dt.datetime) -> None:
        if self.cursor is not None and cursor <= self.cursor:
            raise ValueError(f"a replay clock only moves forward: {cursor.isoformat()} is not after {self.cursor}")
        self.cursor = cursor

    def now(self) -> dt.datetime:
        if self.cursor is None:
            raise RuntimeError("the replay clock has not started")
        return bar_close(self.cursor, self.bar_size, self.tz)


def load_history(symbol, bar_size: str, *, end: dt.datetime) -> pd.DataFrame:
    """Every stored bar of `symbol` at `bar_size` up to `end`, as a BarSource frame."""
    return frame_from_rows(Bar.objects.for_symbol(symbol).of_size(bar_size).up_to(end).chronological().ohlcv())


class ReplayBarSource(BarSource):
    """Preloaded history of one symbol at the replay's bar size, cut at the replay clock's cursor.

    Weekly bars for a daily replay are resampled from the daily bars up to the cursor, so the current week is the
    week so far (and marked partial), never the whole week."""

    def __init__(self, symbol, history: pd.DataFrame, clock: ReplayClock) -> None:
        self.symbol = symbol
        self.history = history
        self.clock = clock

    def visible(self, end: dt.datetime | None = None) -> pd.DataFrame:
        cursor = self.clock.cursor
        if cursor is None:
            raise PlaybackExhausted("the replay has not started")
        cut = cursor if end is None else min(end, cursor)
        return self.history.iloc[: self.history.index.searchsorted(pd.Timestamp(cut), side="right")]

    def bars(self, symbol, bar_size, *, start=None, end=None, limit=None) -> pd.DataFrame:
        self._check_symbol(symbol)
        if bar_size == self.clock.bar_size:
            frame = self.visible(end)
        elif bar_size == BarSize.W1 and self.clock.bar_size == BarSize.D1:
            daily = self.visible(end)
            assert self.clock.cursor is not None  # visible() raised if the clock had not started
            frame = resample_weekly(daily, as_of=trading_day(self.clock.cursor, "UTC"))
        else:
            served = f"{self.clock.bar_size} bars (and weekly from daily)"
            raise BarSourceError(f"this replay serves {served}, not {bar_size}")
        if start is not None:
            frame = frame.iloc[frame.index.searchsorted(pd.Timestamp(start), side="left") :]
        if limit is not None:
            frame = frame.iloc[-limit:] if limit > 0 else frame.iloc[:0]
        return frame.copy()

    def latest_price(self, symbol, *, at=None) -> Decimal:
        self._check_symbol(symbol)
        frame = self.visible(at)
        if frame.empty:
            raise BarSourceError(f"no {self.symbol.symbol} bar at or before the replay cursor")
        return Decimal(str(frame["close"].iloc[-1]))

    def _check_symbol(self, symbol) -> None:
        same = symbol == self.symbol or getattr(symbol, "pk", None) == self.symbol.pk
        if not same and str(symbol).upper() != self.symbol.symbol.upper():
            raise BarSourceError(f"this replay has bars for {self.symbol.symbol} only, not {symbol}")


class ReplayIndicators:
    """The strategy's indicators computed once over the replay's whole history, handed to each step as the slice on
    that step's bar window.

    Allowed because every indicator in `market.indicators` is causal (its value at bar t uses bars <= t only;
    tests/replay/test_no_look_ahead.py checks all seven), so the slice at step t holds exactly what computing on all
    the bars up to t gives. It differs from a live run's values only by warm-up: a live run starts its averages at
    the first bar of its window, the replay at the first stored bar, so the replay's are the settled ones."""

    def __init__(self, history: pd.DataFrame, configs) -> None:
        self.history = history
        self.configs = list(configs)
        self.full = {c.name: compute(history, c.indicator_type, c.parameters) for c in self.configs}

    def window(self, frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
        """{name: values on `frame`'s index} for a window of the history (computed on `frame` itself if it is not
        one, e.g. bars from elsewhere)."""
        index = self.history.index
        start = int(index.searchsorted(frame.index[0])) if len(frame) else 0
        stop = start + len(frame)
        if stop > len(index) or (len(frame) and (index[start] != frame.index[0] or index[stop - 1] != frame.index[-1])):
            return {c.name: compute(frame, c.indicator_type, c.parameters) for c in self.configs}
        return {name: values.iloc[start:stop] for name, values in self.full.items()}
