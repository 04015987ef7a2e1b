"""manage.py import_bars PATH --symbol SYM [--bar-size 1d] [--tz UTC]"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from market.cli import bar_size_arg
from market.importers import UnreadableFile
from market.services import import_bars_file

LARGE_FILE_ROWS = 5000  # from this many rows on, the write shows a progress bar
BAR_WIDTH = 40


class Command(BaseCommand):
    help = (
        "Import OHLCV bars from a CSV file (Yahoo, pandas-ta, CryptoDataDownload and plain layouts). "
        "Impossible rows are reported with their line numbers and skipped; an unreadable file changes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", metavar="PATH")
        parser.add_argument("--symbol", required=True, metavar="SYM")
        parser.add_argument("--bar-size", default="1d", type=bar_size_arg, help="1min 5min 15min 30min 1h 4h 1d 1w")
        parser.add_argument("--tz", default="UTC", help="time zone of naive intraday times, e.g. America/New_York")

    def handle(self, *args, path, symbol, bar_size, tz, **options):
        progress = _ProgressBar(self.stderr) if options.get("verbosity", 1) > 0 else None
        try:
            summary = import_bars_file(path, symbol=symbol, bar_size=bar_size, tz=tz, progress=progress)
        except (UnreadableFile, ValidationError) as exc:
            message = "; ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
            raise CommandError(f"{path}: {message}. Nothing was imported.") from exc
        if progress:
            progress.finish()
        for bad in summary.skipped:
            self.stderr.write(f"skipped {bad}")
        span = "no bars"
        if summary.first:
            fmt = "%Y-%m-%d" if bar_size in {"1d", "1w"} else "%Y-%m-%dT%H:%M:%SZ"
            span = f"{summary.first:{fmt}} .. {summary.last:{fmt}}"
        self.stdout.write(
            f"{summary.symbol} {summary.bar_size} ({summary.layout} layout): read {summary.read}, "
            f"written {summary.written}, skipped {len(summary.skipped)}, range {span}"
        )


class _ProgressBar:
    """A one-line bar on stderr, drawn only for large files."""

    def __init__(self, stream):
        self.stream = stream
        self.drawn = False

    def __call__(self, done: int, total: int) -> None:
        if total < LARGE_FILE_ROWS:
            return
        filled = BAR_WIDTH * done // total
        self.stream.write(f"\rwriting [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{total}", ending="")
        self.stream.flush()
        self.drawn = True

    def finish(self) -> None:
        if self.drawn:
            self.stream.write("")
