"""The books soak: fills booked exactly once while the worker is killed, on the embedded default `make run` starts.

Setup: a fresh state directory (SQLite, Celery's filesystem broker, local files), `migrate` and `seed_demo`, then
two more playback strategies beside the demo's SPY one, on AAPL and GOOG, all every minute on the demo's account
(so the two new ones get simulated accounts of their own: one clock per account). Beat and a worker run as separate
processes; the worker (benchmarks/workers/books_soak_worker.py) trades on every bar. Over `--minutes` (at least 15
for a verdict) the worker is SIGKILLed `--kills` times and started again: the first kill lands while a fill is being
booked (the worker pauses inside that fill's transaction on the script's signal), the others at random moments. A
two-year replay of the demo strategy runs meanwhile (`manage.py replay`). At the end every account is reconciled once
more.

Printed, per strategy: fills booked, the position against the sum of its trades against the simulated broker's
ledger, drift rows, and duplicates (two broker orders for one client order id). Goal: at least 5 fills each, all
three agree, 0 drift, 0 duplicates, and the fill being booked at the first kill booked exactly once afterwards.

Run: .venv/bin/python benchmarks/bench_books_soak.py [--minutes 16] [--kills 3] [--keep]
     (exit status 1 when the goal is missed)
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PYTHON = str(ROOT / ".venv" / "bin" / "python")
CELERY = str(ROOT / ".venv" / "bin" / "celery")
MIN_FILLS = 5
NEW_STRATEGIES = (("AAPL", "AAPL soak"), ("GOOG", "GOOG soak"))


def stack_env(var_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"}}
    env.update(
        DJANGO_VAR_DIR=str(var_dir),
        DJANGO_SETTINGS_MODULE="config.settings",
        PATH=f"{ROOT / '.venv' / 'bin'}:{env.get('PATH', '')}",
        PYTHONUNBUFFERED="1",
        SOAK_HOLD_FILE=str(var_dir / "hold-next-fill"),
        SOAK_BOOKING_FILE=str(var_dir / "booking"),
    )
    return env


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=log.open("a"), stderr=subprocess.STDOUT, start_new_session=True
    )


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, sig)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    command = [CELERY, "-A", "benchmarks.workers.books_soak_worker", "worker", "--loglevel", "info"]
    return start([*command, "--concurrency", "2", "--without-gossip", "--without-mingle"], env, log)


def setup_strategies() -> list:
    from django.contrib.auth import get_user_model  # noqa: PLC0415  Django is set up by main() first

    from market.models import Symbol  # noqa: PLC0415
    from trading.models import Strategy  # noqa: PLC0415
    from trading.services import strategy_create  # noqa: PLC0415

    demo = get_user_model().objects.get(username="demo")
    spy = Strategy.objects.get(owner=demo, name="SPY demo")
    strategies = [spy]
    for ticker, name in NEW_STRATEGIES:
        strategies.append(
            strategy_create(
                owner=demo,
                name=name,
                symbol=Symbol.objects.by_ticker(ticker).get(),
                indicators=[link.indicator for link in spy.strategy_indicators.order_by("position")],
                bar_size=spy.bar_size,
                schedule_cron="* * * * *",
                market_data_source=spy.market_data_source,
                broker_connection=spy.broker_connection,
                analyst=spy.analyst,
            )
        )
    return strategies


def books_of(strategy) -> dict[str, object]:
    from django.db.models import Count  # noqa: PLC0415

    from brokers.models import SimOrder, SimPosition  # noqa: PLC0415
    from orders.models import OrderSide, Trade  # noqa: PLC0415
    from portfolio.models import Position, Reconciliation  # noqa: PLC0415
    from portfolio.services import positions_disagreeing  # noqa: PLC0415

    connection = strategy.broker_connection
    trades = Trade.objects.filter(order__strategy=strategy)
    by_trades = sum(
        (t.quantity if t.order.side == OrderSide.BUY else -t.quantity for t in trades.select_related("order")),
        Decimal(0),
    )
    position = sum(Position.objects.filter(strategy=strategy).open().values_list("quantity", flat=True), Decimal(0))
    ledger = sum(
        SimPosition.objects.filter(account__connection=connection, symbol=strategy.symbol).values_list(
            "quantity", flat=True
        ),
        Decimal(0),
    )
    duplicates = (
        SimOrder.objects.filter(account__connection=connection)
        .exclude(order_ref="")
        .values("order_ref")
        .annotate(n=Count("pk"))
        .filter(n__gt=1)
        .count()
    )
    return {
        "fills": trades.count(),
        "position": position,
        "trades": by_trades,
        "ledger": ledger,
        "drift": Reconciliation.objects.filter(broker_connection=connection, has_drift=True).count(),
        "checks": Reconciliation.objects.filter(broker_connection=connection).count(),
        "duplicates": duplicates,
        "disagreeing": positions_disagreeing(positions=Position.objects.filter(strategy=strategy)),
        "account": connection.name,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--minutes", type=float, default=16.0, help="how long the stack runs (15 or more for a verdict)"
    )
    parser.add_argument("--kills", type=int, default=3, help="how many times the worker is SIGKILLed")
    parser.add_argument("--keep", action="store_true", help="keep the state directory (printed) for a look")
    args = parser.parse_args()

    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cores)")
    var_dir = Path(tempfile.mkdtemp(prefix="bench-books-soak-"))
    env = stack_env(var_dir)
    os.environ.update({k: env[k] for k in ("DJANGO_VAR_DIR", "DJANGO_SETTINGS_MODULE")})
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"):
        os.environ.pop(name, None)
    for command in (["migrate", "--noinput"], ["seed_demo"]):
        subprocess.run([PYTHON, "manage.py", *command], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)

    import django  # noqa: PLC0415  after the environment above names the state directory

    django.setup()
    from orders.models import Trade  # noqa: PLC0415
    from portfolio.services import connection_reconcile  # noqa: PLC0415

    strategies = setup_strategies()
    log = var_dir / "stack.log"
    beat = start([CELERY, "-A", "config", "beat", "--loglevel", "info"], env, log)
    running = worker(env, log)
    replay_log = var_dir / "replay.log"
    replay = start(
        [PYTHON, "manage.py", "replay", "SPY demo", "--start", "2015-01-02", "--end", "2016-12-30"], env, replay_log
    )
    hold, booking = Path(env["SOAK_HOLD_FILE"]), Path(env["SOAK_BOOKING_FILE"])
    kills: list[str] = []
    held_execution = ""
    started = time.monotonic()
    window = args.minutes * 60
    kill_at = sorted(window * (k + 1) / (args.kills + 1) for k in range(args.kills))
    try:
        for at in kill_at:
            time.sleep(max(0.0, at - (time.monotonic() - started)))
            what = "at a random moment"
            if not held_execution:  # until one lands inside a fill's booking, each kill waits for one (3 min at most)
                hold.touch()
                deadline = time.monotonic() + 180
                while not booking.exists() and time.monotonic() < deadline:
                    time.sleep(0.2)
                hold.unlink(missing_ok=True)
                if booking.exists():
                    held_execution = booking.read_text()
                    booking.unlink()
                    what = f"while booking fill {held_execution}"
                else:
                    what = "after 3 min without a fill to book"
            else:
                time.sleep(random.uniform(0, 20))
            stop(running, signal.SIGKILL)
            kills.append(f"{dt.datetime.now(dt.UTC):%H:%M:%S} {what}")
            print(f"  kill {len(kills)}: {kills[-1]}", flush=True)
            running = worker(env, log)
        time.sleep(max(0.0, window - (time.monotonic() - started)))
    finally:
        stop(running)
        stop(beat)
        stop(replay)

    for strategy in strategies:
        strategy.refresh_from_db()
        connection_reconcile(broker_connection=strategy.broker_connection)

    minutes = (time.monotonic() - started) / 60
    replay_line = next((line for line in reversed(replay_log.read_text(errors="replace").splitlines()) if line), "")
    print(
        f"window: {minutes:.1f} min, worker SIGKILLed {len(kills)} times, a replay ran meanwhile ({replay_line[:100]})"
    )
    ok = len(kills) >= 3 and bool(held_execution) and args.minutes >= 15
    if held_execution:
        booked = Trade.objects.filter(broker_execution_id=held_execution).count()
        print(f"the fill being booked at the kill ({held_execution}): booked {booked} time(s) afterwards")
        ok = ok and booked == 1
    else:
        print("no kill landed inside a fill's booking: the soak proves nothing about it")
    columns = ("fills", "position", "Σ trades", "ledger", "drift", "dups")
    print(f"{'strategy':<12} {'account':<18} " + " ".join(f"{c:>9}" for c in columns))
    for strategy in strategies:
        books = books_of(strategy)
        agree = books["position"] == books["trades"] == books["ledger"] and not books["disagreeing"]
        ok = ok and agree and books["fills"] >= MIN_FILLS and not books["drift"] and not books["duplicates"]
        print(
            f"{strategy.name:<12} {books['account']:<18} {books['fills']:>9} {books['position']:>9.0f} "
            f"{books['trades']:>9.0f} {books['ledger']:>9.0f} {books['drift']:>9} {books['duplicates']:>9}"
            + ("" if agree else "  DISAGREE")
            + (f"  too few fills (< {MIN_FILLS})" if books["fills"] < MIN_FILLS else "")
        )
        for problem in books["disagreeing"]:
            print(f"    {problem}")
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("goal met: every book agrees, 0 drift, 0 duplicates" if ok else "GOAL MISSED")
    if args.keep:
        print(f"state kept in {var_dir}")
    else:
        shutil.rmtree(var_dir, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
