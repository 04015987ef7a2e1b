"""manage.py indicators [SYMBOL] [--csv PATH] --indicator NAME [--param k=v ...] [--bar-size 1d] [--last N] [--json]"""

from __future__ import annotations

import json
import math

import pandas as pd
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from core.cli import parse_params
from market.cli import bar_size_arg, resolve_symbol
from market.frames import frame_from_rows
from market.importers import UnreadableFile, read_bars_file
from market.indicators import compute, indicator_spec, validate_config
from market.sources import BarSourceError, StoredBarSource


class Command(BaseCommand):
    help = "Compute an indicator over stored bars, or over a CSV file without importing it."

    def add_arguments(self, parser):
        parser.add_argument("symbol", nargs="?", metavar="SYMBOL", help="stored symbol; with --csv only a label")
        parser.add_argument("--csv", metavar="PATH", help="read bars from this file instead of the database")
        parser.add_argument("--tz", default="UTC", help="with --csv: time zone of naive intraday times")
        parser.add_argument("--indicator", required=True, metavar="NAME", help="RSI MACD ATR SMA EMA BB SUPERTREND")
        parser.add_argument("--param", action="append", default=[], metavar="k=v", help="repeat for each parameter")
        parser.add_argument("--bar-size", default="1d", type=bar_size_arg, help="1min 5min 15min 30min 1h 4h 1d 1w")
        parser.add_argument("--last", type=int, default=1, metavar="N", help="rows to show (default 1)")
        parser.add_argument("--json", action="store_true", help="print JSON instead of a table")

    def handle(self, *args, symbol, csv, tz, indicator, param, bar_size, last, json, **options):
        if last < 1:
            raise CommandError("--last must be at least 1")
        try:
            spec = indicator_spec(indicator)
            params = validate_config(spec.name, parse_params(param))
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        bars = self._bars(symbol, csv, tz, bar_size)
        if bars.empty:
            raise CommandError(f"no {bar_size} bars for {symbol or csv}")
        values = compute(bars, spec.name, params).tail(last)
        daily = bar_size in {"1d", "1w"}
        if json:
            self.stdout.write(_as_json(spec.name, params, values, daily))
        else:
            label = symbol.upper() if symbol else csv
            self.stdout.write(f"{spec.name} {_show_params(params)} on {label} {bar_size}")
            self.stdout.write(_as_table(values, daily))

    def _bars(self, symbol: str | None, csv: str | None, tz: str, bar_size: str) -> pd.DataFrame:
        if csv:
            try:
                parsed = read_bars_file(csv, bar_size=bar_size, tz=tz)
            except UnreadableFile as exc:
                raise CommandError(f"{csv}: {exc}") from exc
            for bad in parsed.bad_rows:
                self.stderr.write(f"skipped {bad}")
            rows = [(r.timestamp, r.open, r.high, r.low, r.close, r.volume) for r in parsed.rows]
            return frame_from_rows(rows)
        if not symbol:
            raise CommandError("name a SYMBOL, or a file with --csv PATH")
        try:
            return StoredBarSource().bars(resolve_symbol(symbol), bar_size)
        except BarSourceError as exc:
            raise CommandError(str(exc)) from exc


def _stamp(timestamp: pd.Timestamp, daily: bool) -> str:
    return timestamp.strftime("%Y-%m-%d") if daily else timestamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def _number(column: str, value: float) -> float | int | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return int(value) if column == "direction" else round(float(value), 8)


def _as_json(name: str, params: dict, values: pd.DataFrame, daily: bool) -> str:
    rows = [
        {"t": _stamp(stamp, daily), **{column: _number(column, row[column]) for column in values.columns}}
        for stamp, row in values.iterrows()
    ]
    return json.dumps({"indicator": name, "params": params, "values": rows})


def _show_params(params: dict) -> str:
    return "(" + ", ".join(f"{key}={value:g}" for key, value in params.items()) + ")"


def _as_table(values: pd.DataFrame, daily: bool) -> str:
    header = ["t", *values.columns]
    lines = [
        [_stamp(stamp, daily), *(_cell(column, row[column]) for column in values.columns)]
        for stamp, row in values.iterrows()
    ]
    widths = [max(len(header[i]), *(len(line[i]) for line in lines)) for i in range(len(header))]

    def render(cells: list[str]) -> str:
        first, *rest = cells
        return "  ".join([first.ljust(widths[0]), *(cell.rjust(w) for cell, w in zip(rest, widths[1:], strict=True))])

    return "\n".join([render(header), *(render(line) for line in lines)])


def _cell(column: str, value: float) -> str:
    number = _number(column, value)
    if number is None:
        return "-"
    if column == "direction":
        return f"{number:+d}"
    return f"{number:.4f}"
