"""Fixtures for the strategy-run tests: a symbol with a clean uptrend of daily bars (the rules analyst reads it as a
BUY), strategies on the simulated broker, and charts stored in a temporary directory."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal

import pytest

from market.models import Bar, BarSize, IndicatorType
from tests.books import books_agree_with_their_trades  # noqa: F401  (autouse: the books invariant after each test)
from tests.factories import IndicatorConfigFactory, StrategyFactory, StrategyIndicatorFactory, SymbolFactory

BARS = 220


def last_session(days_back: int = 1) -> dt.datetime:
    """00:00 UTC of a recent weekday: daily bars are keyed there."""
    day = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=days_back)
    while day.weekday() >= 5:
        day -= dt.timedelta(days=1)
    return dt.datetime.combine(day, dt.time(0, 0), tzinfo=dt.UTC)


def bars_create(symbol, *, closes: list[float], end: dt.datetime | None = None) -> list[Bar]:
    """Daily bars ending at `end` (default: the last weekday before today), one per weekday, around `closes`."""
    end = end or last_session()
    days = []
    day = end
    while len(days) < len(closes):
        if day.weekday() < 5:
            days.append(day)
        day -= dt.timedelta(days=1)
    days.reverse()
    rows = []
    for timestamp, close in zip(days, closes, strict=True):
        close = Decimal(str(round(close, 2)))
        open_ = close - Decimal("0.30")
        rows.append(
            Bar(
                symbol=symbol,
                bar_size=BarSize.D1,
                timestamp=timestamp,
                open=open_,
                high=close + Decimal("0.60"),
                low=open_ - Decimal("0.60"),
                close=close,
                volume=Decimal(1_000_000),
            )
        )
    return Bar.objects.bulk_create(rows)


def uptrend(n: int = BARS, *, start: float = 80.0, end: float = 100.0) -> list[float]:
    """A steady climb with a small wobble: above its averages, RSI high, the last close at `end`."""
    step = (end - start) / (n - 1)
    return [start + step * i + 0.4 * math.sin(i / 3) for i in range(n - 1)] + [end]


def downtrend(n: int = BARS, *, start: float = 120.0, end: float = 100.0) -> list[float]:
    return uptrend(n, start=start, end=end)


@pytest.fixture(autouse=True)
def chart_storage(settings, tmp_path):
    """Charts go to a temporary directory, not var/media."""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "media"), "base_url": "/media/"},
        },
    }
    return tmp_path / "media"


def strategy_with_indicators(owner, *, symbol=None, closes=None, **fields):
    """A daily strategy on its own simulated broker with SMA 20, RSI 14 and ATR 14 (what the rules analyst needs)."""
    symbol = symbol or SymbolFactory()
    if closes is not False:
        bars_create(symbol, closes=closes or uptrend())
    fields.setdefault("lookback_bars", 60)
    strategy = StrategyFactory(owner=owner, symbol=symbol, **fields)
    for position, (kind, params) in enumerate(
        [(IndicatorType.SMA, {"period": 20}), (IndicatorType.RSI, {"period": 14}), (IndicatorType.ATR, {"period": 14})]
    ):
        indicator = IndicatorConfigFactory(owner=owner, name=f"{kind} {position} {symbol.symbol}", indicator_type=kind)
        indicator.parameters = params
        indicator.save()
        StrategyIndicatorFactory(strategy=strategy, indicator=indicator, position=position)
    return strategy


@pytest.fixture
def buying_strategy(owner):
    return strategy_with_indicators(owner)
