"""python manage.py replay STRATEGY --start 2015-01-01 --end 2016-12-31 [--analyst rules|anthropic|openai] [--model M]
[--prompt-version N] [--budget-usd 5] [--llm-cache use|only|off] [--anonymise]"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from replays.models import LLMCacheMode, Replay, ReplayStatus
from replays.services import replay_create, replay_run
from signals_app.models import Analyst
from trading.cli import resolve_strategy


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date: write it as YYYY-MM-DD") from None


def _usd(value: str) -> Decimal:
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"{value!r} is not an amount in USD, e.g. 5 or 2.50") from None
    if not amount.is_finite() or amount < 0:
        raise argparse.ArgumentTypeError(f"{value!r}: the budget must be a positive amount in USD")
    return amount


def _positive_int(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a prompt version number (1, 2, ...)")
    return int(value)


def _percent(value) -> str:
    return "n/a" if value is None else f"{100 * value:+.2f}%"


def _number(value, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


FIGURES = [
    ("Total return", "total_return", _percent),
    ("CAGR", "cagr", _percent),
    ("Max drawdown", "max_drawdown", lambda v: _percent(-v) if v is not None else "n/a"),
    ("Sharpe", "sharpe", _number),
    ("Trades", "trades", lambda v: str(v)),
    ("Win rate", "win_rate", lambda v: "n/a" if v is None else f"{100 * v:.1f}%"),
    ("Average R", "average_r", _number),
    ("Exposure", "exposure", lambda v: f"{100 * v:.1f}%"),
    ("Fees", "fees", lambda v: f"${v:,.2f}"),
    ("LLM cost", "llm_cost", lambda v: f"${v:,.4f}"),
    ("Return net of LLM cost", "return_net_of_llm_cost", _percent),
    ("End equity", "end_equity", lambda v: f"${v:,.2f}"),
]


class Command(BaseCommand):
    help = "Replay a strategy over stored history through the live executor, and print its report."

    def add_arguments(self, parser):
        parser.add_argument("strategy", help="strategy id or exact name")
        parser.add_argument("--start", type=_date, required=True, help="first session, YYYY-MM-DD")
        parser.add_argument("--end", type=_date, required=True, help="last session, YYYY-MM-DD")
        parser.add_argument("--analyst", choices=Analyst.values, help="default: the strategy's analyst")
        parser.add_argument("--model", help="LLM model (default: the strategy's, else the analyst's default)")
        parser.add_argument("--prompt-version", type=_positive_int, help="version number of the strategy's prompt")
        parser.add_argument("--budget-usd", type=_usd, help="stop before the LLM bill would pass this many USD")
        parser.add_argument("--llm-cache", choices=LLMCacheMode.values, default=LLMCacheMode.USE)
        parser.add_argument("--anonymise", action="store_true", help="the analyst sees no ticker and relative dates")

    def handle(self, *args, **options):
        strategy = resolve_strategy(options["strategy"])
        try:
            replay = replay_create(
                owner=strategy.owner,
                strategy=strategy,
                start=options["start"],
                end=options["end"],
                analyst=options["analyst"],
                model=options["model"],
                prompt_version=options["prompt_version"],
                budget_usd=options["budget_usd"],
                llm_cache=options["llm_cache"],
                anonymise=options["anonymise"],
            )
        except ValidationError as exc:
            raise CommandError(
                "; ".join(f"--{k.replace('_', '-')}: {' '.join(v)}" for k, v in exc.message_dict.items())
            ) from None
        self.stdout.write(
            f"Replay {replay.pk}: {strategy.name} ({replay.symbol.symbol} {replay.bar_size}) {replay.start} .. "
            f"{replay.end}, {replay.steps_total} steps, analyst {replay.analyst}"
            + (f" {replay.llm_model}" if replay.llm_model else "")
            + (f", prompt v{replay.prompt_version.number}" if replay.prompt_version else "")
            + f", LLM cache {replay.llm_cache}"
            + (f", budget ${replay.budget_usd}" if replay.budget_usd is not None else "")
            + (", anonymised" if replay.anonymise else "")
        )
        started = time.monotonic()
        replay = replay_run(replay=replay, progress=self._progress(started))
        elapsed = time.monotonic() - started
        self.stdout.write("")
        self._print_report(replay, elapsed)
        if replay.status == ReplayStatus.FAILED:
            raise CommandError(f"replay {replay.pk} failed: {replay.error}")

    def _progress(self, started: float):
        tty = sys.stdout.isatty()
        every = 1 if tty else 25

        def show(replay: Replay, step) -> None:
            done = replay.steps_done
            if done % every and done != replay.steps_total:
                return
            rate = done / max(time.monotonic() - started, 1e-9)
            width = 30
            filled = int(width * done / replay.steps_total)
            line = (
                f"[{'#' * filled}{'.' * (width - filled)}] {done}/{replay.steps_total} "
                f"{step.bar_timestamp:%Y-%m-%d} {step.action or '-':4} equity {step.equity:,.2f} "
                f"LLM ${replay.llm_cost_usd:.4f} ({replay.analyst_calls} calls, {replay.cache_hits} cached) "
                f"{rate:.1f} steps/s"
            )
            self.stdout.write(("\r" + line) if tty else line, ending="" if tty else "\n")
            self.stdout.flush()

        return show

    def _print_report(self, replay: Replay, elapsed: float) -> None:
        labels: dict[str, str] = {
            ReplayStatus.COMPLETED: "completed",
            ReplayStatus.BUDGET_STOPPED: f"STOPPED by the budget of ${replay.budget_usd}",
            ReplayStatus.FAILED: "FAILED",
        }
        label = labels.get(replay.status, replay.status)
        self.stdout.write(
            f"Replay {replay.pk} {label}: {replay.steps_done}/{replay.steps_total} steps in {elapsed:.1f} s "
            f"({replay.steps_done / max(elapsed, 1e-9):.1f} steps/s)"
        )
        self.stdout.write(
            f"LLM: {replay.analyst_calls} analyst calls, {replay.cache_hits} from the cache, "
            f"{replay.input_tokens:,} input + {replay.output_tokens:,} output tokens, ${replay.llm_cost_usd:.4f}"
        )
        columns = (replay.report or {}).get("columns")
        if not columns:
            return
        names = [("replay", f"{replay.analyst}"), ("buy_and_hold", "buy & hold"), ("rules", "rules analyst")]
        names = [(key, title) for key, title in names if key in columns]
        self.stdout.write("")
        self.stdout.write(f"{'':24}" + "".join(f"{title:>16}" for _, title in names))
        for title, key, fmt in FIGURES:
            cells = "".join(
                f"{fmt(columns[name][key]) if columns[name][key] is not None else 'n/a':>16}" for name, _ in names
            )
            self.stdout.write(f"{title:24}{cells}")
        calibration = [b for b in replay.report.get("calibration", []) if b["signals"]]
        if calibration:
            horizon = replay.report.get("calibration_horizon")
            self.stdout.write("")
            self.stdout.write(f"Calibration (BUY/SELL calls right after {horizon} bars, by confidence):")
            for bucket in calibration:
                self.stdout.write(
                    f"  {bucket['label']:>9}: {bucket['hits']}/{bucket['signals']} = {100 * bucket['hit_rate']:.0f}%"
                )
        if replay.anonymise:
            self.stdout.write("The analyst saw an anonymised series: no ticker, relative dates.")
