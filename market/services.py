"""Writes to market data: bars (idempotent upserts, file imports) and the playback cursor."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from django.core.exceptions import ValidationError
from django.db import transaction

from market.importers import BadRow, BarRow, bar_problem, read_bars_file
from market.models import AssetType, Bar, BarSize, Symbol

UPSERT_BATCH = 2000
Progress = Callable[[int, int], None]


def symbol_get_or_create(*, ticker: str, **defaults) -> Symbol:
    """The one Symbol with this ticker (any exchange), created without an exchange when there is none."""
    ticker = ticker.strip().upper()
    if not ticker:
        raise ValidationError("a symbol is required")
    matches = list(Symbol.objects.by_ticker(ticker))
    if len(matches) > 1:
        raise ValidationError(f"symbol {ticker} is listed on several exchanges: {', '.join(map(str, matches))}")
    if matches:
        return matches[0]
    symbol, _ = Symbol.objects.get_or_create(symbol=ticker, exchange="", defaults=defaults)
    return symbol


def bars_upsert(
    *,
    symbol: Symbol | str,
    bar_size: str,
    rows: Iterable[BarRow | Mapping | tuple],
    progress: Progress | None = None,
) -> int:
    """Insert or update bars keyed by (symbol, bar size, timestamp); writing the same rows again changes nothing.

    Rows are BarRow, mappings with timestamp/open/high/low/close[/volume], or (timestamp, o, h, l, c[, v]) tuples.
    Timestamps must be aware; daily and weekly ones 00:00 UTC of the session date. An impossible row raises
    ValidationError naming it, and nothing is written. Returns the number of rows written."""
    if bar_size not in BarSize.values:
        raise ValidationError(f"unknown bar size {bar_size!r}: use one of {' '.join(BarSize.values)}")
    if isinstance(symbol, str):
        symbol = symbol_get_or_create(ticker=symbol)
    bars = [_bar(symbol, bar_size, _as_bar_row(row), position) for position, row in enumerate(rows, start=1)]
    with transaction.atomic():
        for start in range(0, len(bars), UPSERT_BATCH):
            Bar.objects.bulk_create(
                bars[start : start + UPSERT_BATCH],
                update_conflicts=True,
                unique_fields=["symbol", "bar_size", "timestamp"],
                update_fields=["open", "high", "low", "close", "volume"],
            )
            if progress:
                progress(min(start + UPSERT_BATCH, len(bars)), len(bars))
    return len(bars)


def _as_bar_row(row) -> BarRow:
    if isinstance(row, BarRow):
        return row
    if isinstance(row, Mapping):
        values = [row[name] for name in ("timestamp", "open", "high", "low", "close")] + [row.get("volume", 0)]
    else:
        values = [*row, 0][:6] if len(row) == 5 else list(row)
    timestamp, *numbers = values
    return BarRow(timestamp, *(Decimal(str(number)) for number in numbers))


def _bar(symbol: Symbol, bar_size: str, row: BarRow, position: int) -> Bar:
    where = f"bar {position} ({row.timestamp})"
    if not isinstance(row.timestamp, dt.datetime) or row.timestamp.tzinfo is None:
        raise ValidationError(f"{where}: the timestamp must be an aware datetime")
    timestamp = row.timestamp.astimezone(dt.UTC)
    if BarSize.is_daily_or_longer(bar_size) and timestamp.time() != dt.time(0):
        raise ValidationError(f"{where}: {bar_size} bars are keyed at 00:00 UTC of their session date")
    problem = bar_problem(row.open, row.high, row.low, row.close, row.volume)
    if problem:
        raise ValidationError(f"{where}: {problem}")
    return Bar(
        symbol=symbol,
        bar_size=bar_size,
        timestamp=timestamp,
        open=row.open,
        high=row.high,
        low=row.low,
        close=row.close,
        volume=row.volume,
    )


@dataclass
class ImportSummary:
    symbol: str
    bar_size: str
    layout: str
    read: int
    written: int
    skipped: list[BadRow] = field(default_factory=list)
    first: dt.datetime | None = None
    last: dt.datetime | None = None


def import_bars_file(
    path: str | Path,
    *,
    symbol: str,
    bar_size: str = BarSize.D1,
    tz: str = "UTC",
    progress: Progress | None = None,
) -> ImportSummary:
    """Read a bar file (any layout market.importers knows) and upsert its good rows for `symbol`.

    The file is read whole before anything is written: an unreadable one raises UnreadableFile and changes nothing
    (not even the Symbol). Impossible rows are skipped and listed in the summary with their line numbers."""
    parsed = read_bars_file(path, bar_size=bar_size, tz=tz, symbol=symbol)
    crypto = parsed.layout == "cryptodatadownload"
    defaults = {"asset_type": AssetType.CRYPTO, "time_zone": "UTC"} if crypto else {}
    with transaction.atomic():
        instrument = symbol_get_or_create(ticker=symbol, **defaults)
        written = bars_upsert(symbol=instrument, bar_size=bar_size, rows=parsed.rows, progress=progress)
    return ImportSummary(
        symbol=instrument.symbol,
        bar_size=bar_size,
        layout=parsed.layout,
        read=parsed.read,
        written=written,
        skipped=parsed.bad_rows,
        first=parsed.first,
        last=parsed.last,
    )


# --- Playback -------------------------------------------------------------------------------------------------------
