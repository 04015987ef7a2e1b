"""A 2-year daily replay (about 500 steps) of real SPY bars with the rules analyst, through the live executor.

Targets: charts off <= 10 s, charts on <= 2 min. Prints the time and steps per second of each, and the report's
headline figures; then SQL statements and CPU milliseconds per step (here and in the chart workers), which a busy
machine disturbs less than the wall time, and the machine's pace (a fixed pure-Python loop, timed before each run:
a shared virtual machine's pace can drift by half over minutes). The charts-off replay is run three times and
judged by the best, as timeit does: noise only ever adds time. Uses its own user, symbol and strategy (removed at
the end) in the configured database.

    DATABASE_URL=... REDIS_URL=... DJANGO_SETTINGS_MODULE=config.settings PYTHONPATH=. .venv/bin/python \
        benchmarks/bench_replay.py
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import resource
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

import django

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection  # noqa: E402

from brokers.models import BrokerConnection, BrokerKind  # noqa: E402
from market.models import Bar, BarSize, IndicatorConfig, Symbol  # noqa: E402
from replays.services import replay_create, replay_delete, replay_run  # noqa: E402
from signals_app.models import Analyst  # noqa: E402
from trading.models import Strategy, StrategyIndicator  # noqa: E402

DATA = ROOT / "tests" / "replay" / "data" / "SPY_daily_2009-2012.csv"
START, END = dt.date(2011, 1, 1), dt.date(2012, 12, 31)
TARGETS = {False: 10.0, True: 120.0}
CHARTS_OFF_RUNS = 3


def setup():
    tag = uuid.uuid4().hex[:8]
    user = get_user_model().objects.create_user(f"bench-replay-{tag}", password=uuid.uuid4().hex)
    symbol = Symbol.objects.create(symbol="SPY", exchange=f"BENCH{tag}", name="SPDR S&P 500 ETF")
    with DATA.open() as handle:
        Bar.objects.bulk_create(
            Bar(
                symbol=symbol,
                bar_size=BarSize.D1,
                timestamp=dt.datetime.fromisoformat(row["Date"]).replace(tzinfo=dt.UTC),
                open=Decimal(row["Open"]),
                high=Decimal(row["High"]),
                low=Decimal(row["Low"]),
                close=Decimal(row["Close"]),
                volume=Decimal(row["Volume"]),
            )
            for row in csv.DictReader(handle)
        )
    connection = BrokerConnection.objects.create(owner=user, name="paper", kind=BrokerKind.SIMULATED)
    strategy = Strategy.objects.create(
        owner=user,
        name="SPY trend (benchmark)",
        symbol=symbol,
        bar_size=BarSize.D1,
        lookback_bars=120,
        analyst=Analyst.RULES,
        broker_connection=connection,
        max_position_value=Decimal("50000"),
        is_active=False,
    )
    for position, (kind, params) in enumerate(
        [("SUPERTREND", {}), ("EMA", {"period": 20}), ("RSI", {}), ("MACD", {}), ("ATR", {})]
    ):
        config = IndicatorConfig.objects.create(
            owner=user, name=f"{kind} {position}", indicator_type=kind, parameters=params
        )
        StrategyIndicator.objects.create(strategy=strategy, indicator=config, position=position)
    return user, symbol, strategy


class Statements:
    """Counts the SQL statements the replay sends (transaction BEGIN/COMMIT are not statements Django executes)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        return execute(sql, params, many, context)


def _cpu() -> tuple[float, float]:
    """CPU seconds of this process and of its finished children (the chart workers)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time(), children.ru_utime + children.ru_stime


def _pace() -> float:
    """Milliseconds this machine takes for a fixed pure-Python loop right now."""
    started = time.perf_counter()
    sum(i * i for i in range(1_000_000))
    return 1000 * (time.perf_counter() - started)


def run(strategy, *, charts: bool) -> float:
    """The replay's wall time (infinite if it did not complete)."""
    pace = _pace()
    replay = replay_create(owner=strategy.owner, strategy=strategy, start=START, end=END, render_charts=charts)
    statements = Statements()
    cpu_before = _cpu()
    started = time.monotonic()
    with connection.execute_wrapper(statements):
        replay = replay_run(replay=replay)
    elapsed = time.monotonic() - started
    cpu, children = (after - before for after, before in zip(_cpu(), cpu_before, strict=True))
    figures = replay.report.get("columns", {}).get("replay", {})
    ok = replay.status == "COMPLETED" and elapsed <= TARGETS[charts]  # this run alone
    steps = max(replay.steps_done, 1)
    print(
        f"charts {'on ' if charts else 'off'}: {replay.steps_done} steps in {elapsed:.1f} s = "
        f"{replay.steps_done / elapsed:.1f} steps/s (target <= {TARGETS[charts]:.0f} s: {'OK' if ok else 'MISSED'}); "
        f"{replay.status}, return {100 * figures.get('total_return', 0):+.2f}%, {figures.get('trades')} trades\n"
        f"    {statements.count / steps:.1f} SQL statements a step; CPU {1000 * cpu / steps:.1f} ms a step here"
        + (f" + {1000 * children / steps:.1f} ms in chart workers" if children else "")
        + f"; load average {os.getloadavg()[0]:.1f}; pace {pace:.0f} ms"
    )
    replay_delete(replay=replay)
    return elapsed if replay.status == "COMPLETED" else float("inf")


def main() -> int:
    # A worker has the pipeline loaded already: import it (matplotlib, mplfinance, ta) before the clock starts.
    import market.charts  # noqa: F401
    import trading.executor  # noqa: F401

    user, symbol, strategy = setup()
    try:
        best = min(run(strategy, charts=False) for _ in range(CHARTS_OFF_RUNS))
        print(f"charts off, best of {CHARTS_OFF_RUNS}: {best:.1f} s (target <= {TARGETS[False]:.0f} s: "
              f"{'OK' if best <= TARGETS[False] else 'MISSED'})")  # fmt: skip
        results = [best <= TARGETS[False], run(strategy, charts=True) <= TARGETS[True]]
    finally:
        strategy.delete()
        BrokerConnection.objects.filter(owner=user).delete()
        Bar.objects.filter(symbol=symbol).delete()
        symbol.delete()
        user.delete()
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
