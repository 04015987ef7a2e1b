"""Fixtures for market data tests: the excerpts in tests/data and small helpers to store bars."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from market.services import bars_upsert
from tests.factories import SymbolFactory

DATA = Path(__file__).resolve().parent.parent / "data"
LAYOUTS = DATA / "layouts"


@pytest.fixture
def data_dir() -> Path:
    return DATA


def daily_rows(count: int, *, start: dt.date = dt.date(2024, 1, 1), base: float = 100.0, weekdays_only=True):
    """`count` simple daily bars on consecutive sessions: close rises by 1 a day, high/low 1 either side."""
    rows, day, n = [], start, 0
    while n < count:
        if not weekdays_only or day.weekday() < 5:
            close = Decimal(str(base + n))
            stamp = dt.datetime.combine(day, dt.time(0), tzinfo=dt.UTC)
            rows.append((stamp, close - Decimal("0.5"), close + 1, close - 1, close, Decimal(1000 + n)))
            n += 1
        day += dt.timedelta(days=1)
    return rows


@pytest.fixture
def stored_daily(db):
    """A symbol with `count` stored daily bars: `stored_daily(250)`."""

    def make(count: int, **kwargs):
        symbol = SymbolFactory(symbol=kwargs.pop("ticker", "TEST"), exchange="")
        bars_upsert(symbol=symbol, bar_size="1d", rows=daily_rows(count, **kwargs))
        return symbol

    return make
