"""The replay's clock and bar source: the only two things that know where the replay stands in history.

The history is loaded once, then every answer is cut at the clock. `ReplayBarSource.bars(end=...)` never returns a
bar after `clock.now()`, whatever `end` the caller asks for, so a step cannot see the future even through a caller
that forgets to pass `end`. The same cut applies to `latest_price`.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pandas as pd
from django.utils import timezone

from market.clock import MarketClock
from market.models import Bar, BarSize
from market.sources import BAR_COLUMNS, BarSource, BarSourceError, PlaybackExhausted


class ReplayClock(MarketClock):
    """A clock the replay moves forward one step at a time; it refuses to go back."""

    def __init__(self, at: dt.datetime) -> None:
        if timezone.is_naive(at):
            raise ValueError("ReplayClock needs an aware datetime")
        self._at = at

    def now(self) -> dt.datetime:
        return self._at

    def advance_to(self, at: dt.datetime) -> None:
        if at < self._at:
            raise ValueError(f"a replay clock never goes back ({at.isoformat()} < {self._at.isoformat()})")
        self._at = at


def load_history(symbol, bar_size: str, *, end: dt.datetime) -> pd.DataFrame:
    """Every stored bar of `symbol` at `bar_size` up to `end`, as a BarSource frame (float columns, UTC index)."""
    rows = list(
        Bar.objects.for_symbol(symbol)
        .of_size(bar_size)
        .up_to(end)
        .chronological()
        .values_list("timestamp", *BAR_COLUMNS)
    )
    frame = pd.DataFrame(rows, columns=["timestamp", *BAR_COLUMNS])
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    frame = frame.set_index("timestamp")
    return frame.astype(float)


class ReplayBarSource(BarSource):
    """Serves preloaded history for one symbol, cut at the replay clock.

    `frames` maps bar size to a BarSource frame. Weekly bars are resampled from the daily bars at or before the
    clock (a stored weekly bar keyed at its first day would carry the rest of its week).
    """

    def __init__(self, symbol, frames: dict[str, pd.DataFrame], clock: MarketClock) -> None:
        self.symbol = symbol
        self.frames = frames
        self.clock = clock

    def _visible(self, bar_size: str, end: dt.datetime | None) -> pd.DataFrame:
        cut = self.clock.now() if end is None else min(end, self.clock.now())
        if bar_size == BarSize.W1 and BarSize.W1 not in self.frames:
            return resample_weekly(self._visible(BarSize.D1, cut))
        try:
            frame = self.frames[bar_size]
        except KeyError:
            raise BarSourceError(f"the replay has no {bar_size} bars for {self.symbol}") from None
        stop = frame.index.searchsorted(pd.Timestamp(cut), side="right")
        return frame.iloc[:stop]

    def bars(
        self,
        symbol,
        bar_size: str,
        *,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
        limit: int | None = None,
    ) -> pd.DataFrame:
        self._check_symbol(symbol)
        frame = self._visible(bar_size, end)
        if start is not None:
            frame = frame.iloc[frame.index.searchsorted(pd.Timestamp(start), side="left") :]
        if limit is not None:
            frame = frame.iloc[-limit:] if limit > 0 else frame.iloc[:0]
        return frame.copy()

    def latest_price(self, symbol, *, at: dt.datetime | None = None) -> Decimal:
        self._check_symbol(symbol)
        size = next(iter(self.frames))
        frame = self._visible(size, at)
        if frame.empty:
            raise PlaybackExhausted(f"no {symbol} bar at or before {self.clock.now().isoformat()}")
        return Decimal(str(frame["close"].iloc[-1]))

    def _check_symbol(self, symbol) -> None:
        symbol_id = getattr(symbol, "pk", symbol)
        if symbol_id != self.symbol.pk and str(symbol) != self.symbol.symbol:
            raise BarSourceError(f"this replay only has bars for {self.symbol}, not {symbol}")


def resample_weekly(daily: pd.DataFrame) -> pd.DataFrame:
    """Weeks ending Friday, keyed at the week's first session (00:00 UTC), from the daily bars given."""
    if daily.empty:
        return daily
    weeks = daily.groupby(daily.index.to_period("W-FRI"))
    frame = pd.DataFrame(
        {
            "open": weeks["open"].first(),
            "high": weeks["high"].max(),
            "low": weeks["low"].min(),
            "close": weeks["close"].last(),
            "volume": weeks["volume"].sum(),
        }
    )
    frame.index = pd.DatetimeIndex([daily.index[weeks.indices[p][0]] for p in frame.index], name="timestamp")
    return frame
