"""Reading bar files: every CSV layout in shared/data, the impossible rows reported with their line numbers.

Nothing here writes. `read_bars_file` either raises UnreadableFile (and nothing may be written) or returns the
good rows, ascending, with every skipped line and why. `market.services.import_bars_file` writes them;
`manage.py indicators --csv` computes over them without importing.

Layouts recognised by their header (names are matched case-insensitively, in any order):
- Yahoo: Date,Open,High,Low,Close,Adj Close,Volume. Close is stored; Adj Close is ignored.
- pandas-ta: an unnamed row-index column before `date`.
- Date,Open,Close,High,Low,Volume (the 1-minute S&P file): columns are taken by name, so order does not matter.
- CryptoDataDownload: a preamble line before the header, `2019-10-17 09-AM` dates, newest first, a `symbol`
  column, and two volumes: `volume_btc` (base currency, stored) and `volume` (quote currency, ignored).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from market.clock import INTRADAY_DURATIONS

PRICE_QUANTUM = Decimal("0.000001")
VOLUME_QUANTUM = Decimal("0.00000001")
MAX_PRICE = Decimal("1e12")  # Bar price fields: 18 digits, 6 after the point
MAX_VOLUME = Decimal("1e16")  # Bar.volume: 24 digits, 8 after the point

DATE_COLUMNS = ("date", "datetime", "timestamp", "time")
DATE_FORMATS = (
    "%Y-%m-%d",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d %I-%p",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%dT%H:%M",
    "%Y/%m/%d",
    "%Y/%m/%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S%z",
    "%Y-%m-%d %H:%M:%S%z",
)


class UnreadableFile(Exception):
    """The file cannot be read as bars at all; nothing may be written."""


@dataclass(frozen=True)
class BadRow:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass(frozen=True)
class BarRow:
    timestamp: dt.datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


@dataclass
class ParsedBars:
    layout: str
    read: int = 0  # data lines seen
    rows: list[BarRow] = field(default_factory=list)  # good rows, ascending
    bad_rows: list[BadRow] = field(default_factory=list)  # by line number
    symbol_in_file: str = ""

    @property
    def first(self) -> dt.datetime | None:
        return self.rows[0].timestamp if self.rows else None

    @property
    def last(self) -> dt.datetime | None:
        return self.rows[-1].timestamp if self.rows else None


def bar_problem(open_: Decimal, high: Decimal, low: Decimal, close: Decimal, volume: Decimal) -> str | None:
    """Why these prices cannot be a bar, or None. The same rules as Bar's database constraints."""
    o, h, lo, c, v = (_plain(value) for value in (open_, high, low, close, volume))
    for name, value, shown in (("open", open_, o), ("high", high, h), ("low", low, lo), ("close", close, c)):
        if value <= 0:
            return f"{name} {shown} is not a positive price"
    if high < low:
        return f"high {h} is below low {lo}"
    if not low <= open_ <= high:
        return f"open {o} is outside the low-high range {lo}-{h}"
    if not low <= close <= high:
        return f"close {c} is outside the low-high range {lo}-{h}"
    if volume < 0:
        return f"volume {v} is negative"
    return None


def _plain(value) -> str:
    """9.000000 -> 9, 209.419998 -> 209.419998: the number as a person would write it."""
    return f"{Decimal(str(value)).normalize():f}"


def read_bars_file(path: str | Path, *, bar_size: str = "1d", tz: str = "UTC", symbol: str | None = None) -> ParsedBars:
    """Parse a bar file. `tz` is the zone of naive intraday times (daily dates are session dates whatever the zone).
    `symbol` picks the base-currency volume column of a crypto file and must match its `symbol` column."""
    if bar_size not in INTRADAY_DURATIONS and bar_size not in {"1d", "1w"}:
        raise UnreadableFile(f"unknown bar size {bar_size!r}")
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise UnreadableFile(f"unknown time zone {tz!r}") from exc
    lines = _read_lines(Path(path))
    header_index = _find_header(lines)
    reader = csv.reader(io.StringIO("\n".join(lines[header_index:])))
    header = [name.strip().lower() for name in next(reader)]
    columns = _columns(header, symbol)
    needed = max(columns.values()) + 1
    layout = _layout_name(header, header_index)
    parsed = ParsedBars(layout=layout)
    daily = bar_size in {"1d", "1w"}
    symbol_column = header.index("symbol") if "symbol" in header else None
    file_symbols: set[str] = set()
    by_stamp: dict[dt.datetime, list[int]] = {}
    good: dict[int, BarRow] = {}
    date_format: list[str | None] = [None]
    any_time_of_day = False
    for record in reader:
        line = header_index + reader.line_num
        if not record or all(not cell.strip() for cell in record):
            continue
        parsed.read += 1
        if len(record) < needed:
            parsed.bad_rows.append(BadRow(line, f"{len(record)} fields where the header has {len(header)}"))
            continue
        if symbol_column is not None:
            file_symbols.add(record[symbol_column].strip().upper())
        raw_stamp = record[columns["date"]].strip()
        stamp = _parse_stamp(raw_stamp, date_format)
        if stamp is None:
            parsed.bad_rows.append(BadRow(line, f"cannot read the date {raw_stamp!r}"))
            continue
        if daily:
            if (stamp.hour, stamp.minute, stamp.second) != (0, 0, 0):
                raise UnreadableFile(
                    f"line {line} has a time of day ({raw_stamp}): this looks like intraday data, "
                    f"pass --bar-size (one of {', '.join(INTRADAY_DURATIONS)})"
                )
            stamp = dt.datetime.combine(stamp.date(), dt.time(0), tzinfo=dt.UTC)
        else:
            any_time_of_day = any_time_of_day or _has_time_of_day(date_format[0])
            stamp, problem = _to_utc(stamp, zone, tz)
            if problem:
                parsed.bad_rows.append(BadRow(line, problem))
                continue
        values, problem = _numbers(record, columns)
        if problem is None:
            problem = bar_problem(*values)
        if problem:
            parsed.bad_rows.append(BadRow(line, problem))
            continue
        by_stamp.setdefault(stamp, []).append(line)
        good[line] = BarRow(stamp, *values)
    if parsed.read == 0:
        raise UnreadableFile("the file has a header but no rows")
    if not daily and by_stamp and not any_time_of_day:
        raise UnreadableFile(
            f"the dates have no time of day: this looks like daily data, not {bar_size}; pass --bar-size 1d or 1w"
        )
    if symbol_column is not None:
        parsed.symbol_in_file = ",".join(sorted(file_symbols))
        if symbol and file_symbols and file_symbols != {symbol.upper()}:
            raise UnreadableFile(f"the file holds {parsed.symbol_in_file}, not {symbol.upper()}")
    for stamp, stamp_lines in by_stamp.items():
        if len(stamp_lines) > 1:
            # Neither copy can be trusted over the other, so both go.
            for line in stamp_lines:
                others = ", ".join(str(other) for other in stamp_lines if other != line)
                parsed.bad_rows.append(BadRow(line, f"duplicate timestamp {_show(stamp, daily)} (also line {others})"))
                del good[line]
    parsed.rows = sorted(good.values(), key=lambda row: row.timestamp)
    parsed.bad_rows.sort(key=lambda bad: bad.line)
    return parsed


def _read_lines(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as exc:
        raise UnreadableFile("no such file") from exc
    except IsADirectoryError as exc:
        raise UnreadableFile("a directory, not a file") from exc
    except PermissionError as exc:
        raise UnreadableFile("permission denied") from exc
    except UnicodeDecodeError as exc:
        raise UnreadableFile("not a text (UTF-8) file") from exc
    return text.splitlines()


def _find_header(lines: list[str]) -> int:
    """The header is the first line naming open, high, low and close; at most one preamble line may precede it."""
    for index, line in enumerate(lines[:2]):
        names = {name.strip().lower() for name in next(csv.reader([line]), [])}
        if {"open", "high", "low", "close"} <= names:
            return index
    raise UnreadableFile("no header line with open, high, low and close columns in the first two lines")


def _columns(header: list[str], symbol: str | None) -> dict[str, int]:
    columns: dict[str, int] = {}
    date_names = [name for name in DATE_COLUMNS if name in header]
    if not date_names:
        raise UnreadableFile(f"no date column (one of {', '.join(DATE_COLUMNS)}) in the header")
    columns["date"] = header.index(date_names[0])
    for name in ("open", "high", "low", "close"):
        columns[name] = header.index(name)
    base_volumes = [name for name in header if name.startswith("volume_")]
    chosen = None
    if symbol:
        chosen = next((name for name in base_volumes if symbol.upper().startswith(name[7:].upper())), None)
    if chosen is None and len(base_volumes) == 1 and "symbol" in header:
        chosen = base_volumes[0]
    if chosen is None and "volume" in header:
        chosen = "volume"
    if chosen is not None:
        columns["volume"] = header.index(chosen)
    return columns


def _layout_name(header: list[str], header_index: int) -> str:
    if "adj close" in header:
        return "yahoo"
    if header[0] == "" and "date" in header:
        return "pandas-ta"
    if header_index == 1 and "symbol" in header:
        return "cryptodatadownload"
    return "csv"


def _parse_stamp(raw: str, last_format: list[str | None]) -> dt.datetime | None:
    formats = (last_format[0], *DATE_FORMATS) if last_format[0] else DATE_FORMATS
    text = raw.replace("Z", "+0000") if raw.endswith("Z") else raw
    for fmt in formats:
        try:
            stamp = dt.datetime.strptime(text, fmt)  # noqa: DTZ007 - the zone is applied by the caller
        except ValueError:
            continue
        last_format[0] = fmt
        return stamp
    return None


def _has_time_of_day(date_format: str | None) -> bool:
    return date_format is not None and ("%H" in date_format or "%I" in date_format)


def _to_utc(stamp: dt.datetime, zone: ZoneInfo, tz: str) -> tuple[dt.datetime, str | None]:
    if stamp.tzinfo is not None:
        return stamp.astimezone(dt.UTC), None
    early, late = stamp.replace(tzinfo=zone, fold=0), stamp.replace(tzinfo=zone, fold=1)
    utc = early.astimezone(dt.UTC)
    if utc.astimezone(zone).replace(tzinfo=None) != stamp:
        return stamp, f"{stamp:%Y-%m-%d %H:%M} does not exist in {tz} (clocks went forward)"
    if early.utcoffset() != late.utcoffset():
        return stamp, f"{stamp:%Y-%m-%d %H:%M} happens twice in {tz} (clocks went back): ambiguous"
    return utc, None


def _numbers(record: list[str], columns: dict[str, int]) -> tuple[tuple[Decimal, ...], str | None]:
    values = []
    for name in ("open", "high", "low", "close", "volume"):
        if name not in columns:
            values.append(Decimal(0))
            continue
        raw = record[columns[name]].strip()
        try:
            value = Decimal(raw)
        except InvalidOperation:
            return (), f"{name} {raw!r} is not a number"
        if not value.is_finite():
            return (), f"{name} {raw!r} is not a number"
        limit, quantum = (MAX_VOLUME, VOLUME_QUANTUM) if name == "volume" else (MAX_PRICE, PRICE_QUANTUM)
        if abs(value) >= limit:
            return (), f"{name} {raw} is too large"
        values.append(value.quantize(quantum, rounding=ROUND_HALF_EVEN))
    return tuple(values), None


def _show(stamp: dt.datetime, daily: bool) -> str:
    return f"{stamp:%Y-%m-%d}" if daily else stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
