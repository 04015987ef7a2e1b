"""Where bars come from. Every source answers the same two questions; the strategy picks one."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal

import pandas as pd

from market.clock import trading_day
from market.errors import BarSourceError, PlaybackExhausted
from market.frames import BAR_COLUMNS, frame_from_rows, resample_weekly
from market.models import Bar, BarSize, MarketDataSource, Symbol
from market.playback import playback_advance, playback_cursor

__all__ = [
    "BAR_COLUMNS",
    "BarSource",
    "BarSourceError",
    "PlaybackBarSource",
    "PlaybackExhausted",
    "StoredBarSource",
    "register_bar_source",
    "source_for_strategy",
]


class BarSource:
    """bars(): a DataFrame indexed by aware UTC timestamps (ascending), float columns BAR_COLUMNS, only bars with
    timestamp <= `end` (and >= `start` when given), at most `limit` of the latest ones."""

    def bars(
        self,
        symbol,
        bar_size: str,
        *,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
        limit: int | None = None,
    ) -> pd.DataFrame:
        raise NotImplementedError

    def latest_price(self, symbol, *, at: dt.datetime | None = None) -> Decimal:
        raise NotImplementedError


def resolve_symbol(symbol):
    """A Symbol from a Symbol or a ticker. An unknown ticker or one listed on several exchanges is a BarSourceError."""
    if isinstance(symbol, Symbol):
        return symbol
    matches = list(Symbol.objects.by_ticker(str(symbol)))
    if not matches:
        raise BarSourceError(f"unknown symbol {symbol!r}: import bars for it first (manage.py import_bars)")
    if len(matches) > 1:
        listed = ", ".join(str(m) for m in matches)
        raise BarSourceError(f"symbol {symbol!r} is ambiguous: {listed}")
    return matches[0]


class StoredBarSource(BarSource):
    """Bars already in the database. Weekly bars come from stored 1w bars, or are resampled from daily ones."""

    def bars(self, symbol, bar_size, *, start=None, end=None, limit=None):
        symbol = resolve_symbol(symbol)
        if bar_size == BarSize.W1 and not Bar.objects.for_symbol(symbol).of_size(BarSize.W1).exists():
            return self._weekly_from_daily(symbol, start=start, end=end, limit=limit)
        return _read_bars(symbol, bar_size, start=start, end=end, limit=limit)

    def _weekly_from_daily(self, symbol, *, start, end, limit, as_of: dt.date | None = None) -> pd.DataFrame:
        # Read a little more than asked so the first week is whole, then cut it back.
        daily_start = start - dt.timedelta(days=7) if start else None
        daily_limit = (limit + 1) * 7 if limit else None
        daily = _read_bars(symbol, "1d", start=daily_start, end=end, limit=daily_limit)
        if as_of is None and end is not None and len(daily):
            # A Friday bar keyed at 00:00 UTC is that Friday's session even though 00:00 UTC is Thursday in New York.
            as_of = max(trading_day(end, symbol.time_zone), daily.index[-1].date())
        weekly = resample_weekly(daily, as_of=as_of)
        if daily_limit and len(daily) == daily_limit and len(weekly):
            weekly = weekly.iloc[1:]
        if start is not None:
            weekly = weekly[weekly.index >= start]
        return weekly.iloc[-limit:] if limit else weekly

    def latest_price(self, symbol, *, at=None, bar_size: str | None = None) -> Decimal:
        """Close of the newest bar at or before `at` (default: any time), of `bar_size` or else the finest size
        stored for the symbol."""
        symbol = resolve_symbol(symbol)
        bars = Bar.objects.for_symbol(symbol)
        if at is not None:
            bars = bars.up_to(at)
        if bar_size is None:
            stored = set(bars.values_list("bar_size", flat=True).distinct())
            bar_size = next((size for size in BarSize.values if size in stored), None)
        bar = bars.of_size(bar_size).newest_first().first() if bar_size else None
        if bar is None:
            when = f" at or before {at:%Y-%m-%d %H:%M}" if at else ""
            raise BarSourceError(f"no stored bars for {symbol.symbol}{when}")
        return bar.close


def _read_bars(symbol, bar_size: str, *, start=None, end=None, limit=None) -> pd.DataFrame:
    bars = Bar.objects.for_symbol(symbol).of_size(bar_size).between(start, end)
    if limit is not None:
        rows = list(bars.newest_first().ohlcv()[:limit])
        rows.reverse()
    else:
        rows = list(bars.chronological().ohlcv())
    return frame_from_rows(rows)


class PlaybackBarSource(BarSource):
    """Stored history replayed one bar per run for one strategy. Nothing after the cursor is ever returned: reads
    are clamped to it whatever `end` the caller asks for. Weekly bars for a daily strategy are resampled from the
    daily bars up to the cursor (the current week marked partial)."""

    def __init__(self, strategy):
        self.strategy = strategy

    def cursor(self) -> dt.datetime:
        return playback_cursor(self.strategy)

    def advance(self) -> dt.datetime:
        """Move to the next bar (the first call starts after the warm-up); PlaybackExhausted at the end."""
        return playback_advance(strategy=self.strategy)

    def bars(self, symbol, bar_size, *, start=None, end=None, limit=None):
        symbol = self._check_symbol(symbol)
        cursor = self.cursor()
        own_size = self.strategy.bar_size
        if bar_size == own_size:
            return _read_bars(symbol, bar_size, start=start, end=min(end, cursor) if end else cursor, limit=limit)
        if bar_size == BarSize.W1 and own_size == BarSize.D1:
            daily_end = min(end, cursor) if end else cursor
            return StoredBarSource()._weekly_from_daily(
                symbol, start=start, end=daily_end, limit=limit, as_of=trading_day(cursor, "UTC")
            )
        raise BarSourceError(f"playback serves {own_size} bars (and weekly from daily), not {bar_size}")

    def latest_price(self, symbol, *, at=None) -> Decimal:
        symbol = self._check_symbol(symbol)
        cursor = self.cursor()
        bar = (
            Bar.objects.for_symbol(symbol)
            .of_size(self.strategy.bar_size)
            .up_to(min(at, cursor) if at else cursor)
            .newest_first()
            .first()
        )
        if bar is None:
            raise BarSourceError(f"no {self.strategy.bar_size} bars for {symbol.symbol} before the playback cursor")
        return bar.close

    def _check_symbol(self, symbol):
        symbol = resolve_symbol(symbol)
        if symbol.pk != self.strategy.symbol_id:
            raise BarSourceError(f"this playback feed replays {self.strategy.symbol}, not {symbol}")
        return symbol


BAR_SOURCE_FACTORIES: dict[str, Callable[[object], BarSource]] = {}


def register_bar_source(kind: str, factory: Callable[[object], BarSource]) -> None:
    """Plug in a source for a MarketDataSource value (the IBKR one registers itself from its app)."""
    BAR_SOURCE_FACTORIES[kind] = factory


def source_for_strategy(strategy) -> BarSource:
    kind = strategy.market_data_source
    if kind == MarketDataSource.STORED:
        return StoredBarSource()
    if kind == MarketDataSource.PLAYBACK:
        return PlaybackBarSource(strategy)
    if kind in BAR_SOURCE_FACTORIES:
        return BAR_SOURCE_FACTORIES[kind](strategy)
    raise BarSourceError(f"no bar source is installed for '{kind}'")
