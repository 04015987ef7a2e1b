"""manage.py render_chart SYMBOL [--bar-size 1d] [--bars 120] [--indicator NAME[:k=v,...] ...] --out FILE.png"""

from __future__ import annotations

from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from core.cli import parse_indicator_spec
from market.charts import default_indicators, png_size, render_chart
from market.cli import bar_size_arg, resolve_symbol
from market.indicators import validate_config, warmup_bars
from market.sources import BarSourceError, StoredBarSource


class Command(BaseCommand):
    help = "Render a candlestick chart with volume and indicators from stored bars to a PNG file (1400x788)."

    def add_arguments(self, parser):
        parser.add_argument("symbol", metavar="SYMBOL")
        parser.add_argument("--bar-size", default="1d", type=bar_size_arg, help="1min 5min 15min 30min 1h 4h 1d 1w")
        parser.add_argument("--bars", type=int, default=120, help="bars drawn (default 120)")
        parser.add_argument(
            "--indicator",
            action="append",
            default=[],
            metavar="NAME[:k=v,...]",
            help="repeat for each indicator, e.g. --indicator RSI --indicator BB:period=20,std=2.5 "
            "(default: all seven with their defaults)",
        )
        parser.add_argument("--out", required=True, metavar="FILE.png")

    def handle(self, *args, symbol, bar_size, bars, indicator, out, **options):
        if bars < 2:
            raise CommandError("--bars must be at least 2")
        out_path = Path(out)
        if out_path.suffix.lower() != ".png":
            raise CommandError(f"--out {out}: the chart is a PNG, name the file *.png")
        if not out_path.parent.is_dir():
            raise CommandError(f"--out {out}: the folder {out_path.parent} does not exist")
        try:
            configs = [_validated(spec) for spec in indicator] if indicator else default_indicators()
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        instrument = resolve_symbol(symbol)
        # Enough history before the drawn bars for every indicator to have settled.
        history = bars + 3 * max(warmup_bars(name, params) for name, params in configs)
        try:
            frame = StoredBarSource().bars(instrument, bar_size, limit=history)
        except BarSourceError as exc:
            raise CommandError(str(exc)) from exc
        if frame.empty:
            raise CommandError(f"no {bar_size} bars stored for {instrument.symbol}")
        png = render_chart(frame, symbol=instrument.symbol, bar_size=bar_size, indicators=configs, bars=bars)
        out_path.write_bytes(png)
        width, height = png_size(png)
        drawn = min(bars, len(frame))
        self.stdout.write(f"{out_path}: {width}x{height} px, {len(png)} bytes, {drawn} {bar_size} bars")


def _validated(text: str) -> tuple[str, dict]:
    name, params = parse_indicator_spec(text)
    return name, validate_config(name, params)
