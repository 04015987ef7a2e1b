"""IBKR history as a BarSource (market/sources.py), on the one IBKR client.

- Our bar sizes map to IBKR's `bar` names one to one; the `period` is always spelled in minutes, days or weeks,
  never IBKR's `m`, which means months.
- At most 1000 points come back per request, so a longer span is fetched in pages, each ending (`startTime`, which
  IBKR counts back from) just before the oldest bar already fetched.
- At most 5 history requests run at once per gateway (a shared semaphore); IBKR answers a 6th with 429.
- `t` is epoch milliseconds. Intraday bars are keyed at that instant (UTC); daily and weekly bars at 00:00 UTC of
  the exchange-local session date, the foundation's bar keys (market.models.Bar).
- Volume: IBKR sends `v` in units of `volumeFactor`, so shares = v x volumeFactor. Source: IBKR's OpenAPI spec
  "IB REST API" v2.29.0, example `iserverHistoryLastSuccessExample` (reference/ibkr-samples.md section 7): AAPL daily
  bars with v = 266616.18 and volumeFactor = 100, i.e. 26.7 million shares, which is AAPL's daily volume (26.7
  thousand shares would be three orders of magnitude short). A missing volumeFactor counts as 1.
"""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal
from typing import Any, Protocol, cast
from zoneinfo import ZoneInfo

import pandas as pd
from django.utils import timezone

from brokers.ibkr import IbkrBroker
from brokers.interface import BrokerError, Transient
from brokers.models import BrokerConnection
from core.coordination import LockTimeout, semaphore
from market.clock import DEFAULT_EXCHANGE_TZ
from market.models import BarSize, Symbol
from market.sources import BAR_COLUMNS, BarSource, BarSourceError, register_bar_source

MAX_POINTS = 1000
MAX_PAGES = 30
IBKR_BAR: dict[str, str] = {
    BarSize.MIN1: "1min",
    BarSize.MIN5: "5min",
    BarSize.MIN15: "15min",
    BarSize.MIN30: "30min",
    BarSize.H1: "1h",
    BarSize.H4: "4h",
    BarSize.D1: "1d",
    BarSize.W1: "1w",
}
BAR_MINUTES = {"1min": 1, "5min": 5, "15min": 15, "30min": 30, "1h": 60, "4h": 240}
SESSION_MINUTES = 390  # 09:30-16:00, regular hours only (outsideRth=false)


def history_period(bar_size: str, bars: int) -> str:
    """The IBKR `period` that covers `bars` bars of `bar_size` in one request of at most 1000 points."""
    bars = max(1, min(bars, MAX_POINTS))
    if bar_size == BarSize.W1:
        return f"{min(bars, 792)}w"
    if bar_size == BarSize.D1:
        # calendar days: a week has 5 sessions; ask a little more for holidays
        return f"{min(math.ceil(bars * 7 / 5) + 3, 1000)}d"
    # n days hold at most n sessions, so the points stay under the cap; weekends just make a page shorter
    per_session = max(1, SESSION_MINUTES // BAR_MINUTES[IBKR_BAR[bar_size]])
    return f"{max(1, bars // per_session)}d"


def bar_key(t_ms: int, bar_size: str, tz: str = DEFAULT_EXCHANGE_TZ) -> dt.datetime:
    instant = dt.datetime.fromtimestamp(t_ms / 1000, tz=dt.UTC)
    if BarSize.is_daily_or_longer(bar_size):
        session = instant.astimezone(ZoneInfo(tz)).date()
        return dt.datetime.combine(session, dt.time(0), tzinfo=dt.UTC)
    return instant


class StrategyWithConnection(Protocol):
    """What the IBKR source reads of a trading.models.Strategy (a higher layer)."""

    broker_connection: BrokerConnection | None


class IbkrBarSource(BarSource):
    def __init__(self, broker: IbkrBroker) -> None:
        self.broker = broker

    @classmethod
    def for_connection(cls, connection: BrokerConnection | None) -> IbkrBarSource:
        return cls(IbkrBroker.for_connection(connection))

    def _history(self, conid: int, *, period: str, bar: str, before: dt.datetime | None) -> dict[str, Any]:
        client = self.broker.client
        try:
            with semaphore(f"ibkr:{client.gateway}:history", size=5, ttl=client.timeout * 2 + 5, wait=60):
                try:
                    return client.history(conid, period=period, bar=bar, start_time=before)
                except Transient:
                    # "No data." and "Chart data is not available" are worth exactly one more try
                    return client.history(conid, period=period, bar=bar, start_time=before)
        except LockTimeout as exc:
            raise BarSourceError(f"all 5 IBKR history slots stayed busy: {exc}") from exc

    def bars(
        self,
        symbol: Symbol,
        bar_size: str,
        *,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
        limit: int | None = None,
    ) -> pd.DataFrame:
        if bar_size not in IBKR_BAR:
            raise BarSourceError(f"IBKR has no {bar_size} bars")
        try:
            conid = self.broker.conid_of(symbol)
        except BrokerError as exc:
            raise BarSourceError(str(exc)) from exc
        tz = getattr(symbol, "time_zone", DEFAULT_EXCHANGE_TZ)
        wanted = limit or MAX_POINTS
        rows: dict[dt.datetime, list[float]] = {}
        before = end
        for _ in range(MAX_PAGES):
            try:
                body = self._history(
                    conid, period=history_period(bar_size, wanted), bar=IBKR_BAR[bar_size], before=before
                )
            except Transient:
                break  # no (more) data
            except BrokerError as exc:
                raise BarSourceError(str(exc)) from exc
            factor = float(body.get("volumeFactor") or 1)
            points = body.get("data") or []
            if not points:
                break
            for point in points:
                key = bar_key(int(point["t"]), bar_size, tz)
                rows[key] = [point["o"], point["h"], point["l"], point["c"], float(point.get("v") or 0) * factor]
            oldest = dt.datetime.fromtimestamp(min(int(p["t"]) for p in points) / 1000, tz=dt.UTC)
            in_range = [k for k in rows if (end is None or k <= end) and (start is None or k >= start)]
            if (start is not None and oldest <= start) or (start is None and len(in_range) >= wanted):
                break
            before = oldest - dt.timedelta(seconds=1)
        frame = pd.DataFrame.from_dict(rows, orient="index", columns=BAR_COLUMNS, dtype=float).sort_index()
        frame.index = pd.DatetimeIndex(frame.index, tz=dt.UTC) if len(frame) else pd.DatetimeIndex([], tz=dt.UTC)
        if end is not None:
            frame = frame[frame.index <= end]
        if start is not None:
            frame = frame[frame.index >= start]
        return frame.iloc[-limit:] if limit else frame

    def latest_price(self, symbol: Symbol, *, at: dt.datetime | None = None) -> Decimal:
        if at is None or at >= timezone.now() - dt.timedelta(minutes=2):
            try:
                return self.broker.last_price(symbol)
            except BrokerError as exc:
                raise BarSourceError(str(exc)) from exc
        frame = self.bars(symbol, BarSize.MIN5, end=at, limit=1)
        if frame.empty:
            raise BarSourceError(f"no IBKR bars for {symbol} at or before {at:%Y-%m-%d %H:%M}")
        return Decimal(str(frame["close"].iloc[-1]))


def register() -> None:
    """Make MarketDataSource.IBKR strategies read IBKR history through their broker connection."""
    register_bar_source(
        "ibkr",
        lambda strategy: IbkrBarSource.for_connection(cast(StrategyWithConnection, strategy).broker_connection),
    )
