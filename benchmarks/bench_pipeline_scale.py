"""Scale: 200 active strategies due in the same minute, the full pipeline, on this machine's cores.

Each run: bars from PostgreSQL, indicators, a chart rendered and stored, the rules analyst (made to wait 2 s per
analysis, standing in for an LLM), the signal, the risk gate, a simulated order through the order service, and nine
lineage rows. Every strategy has its own symbol, so every chart is drawn (no two runs share an image).

Worker layout (PIPELINE_SPLIT_QUEUES=true), the one the README describes:
- `charts`: a prefork pool, one process per core, runs the first four steps (strategy, bars, indicators, chart):
  rendering is CPU work, and processes get around the GIL;
- `celery`, `analysis`, `orders`: one thread pool (32 threads): the beat task, the analysis wait, the signal, the
  risk gate and the order conversation are waits on PostgreSQL, the LLM and the broker.

The 200 `trading.strategy_due` messages are sent at once, as beat sends them when 200 schedules fall due in the same
minute. Time runs from the send to the last execution's finish. Peak memory is the largest total RSS of every worker
process (parents and pool children), sampled every 0.2 s; the sum of their high-water marks is printed too.

Target: all runs complete within 60 s, peak worker memory under 2 GiB. Exit status 1 when missed.
Run: make bench, or .venv/bin/python benchmarks/bench_pipeline_scale.py [--strategies 200] [--delay 2]
It works in a database of its own (created and dropped) and a temporary media directory.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_SECONDS = 60.0
TARGET_RSS = 2 * 1024**3
USERS = 20
BARS = 200
THREADS = 32


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategies", type=int, default=200)
    parser.add_argument("--delay", type=float, default=2.0, help="seconds the rules analyst waits per analysis")
    parser.add_argument("--chart-processes", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--threads", type=int, default=THREADS)
    parser.add_argument("--timeout", type=float, default=300.0, help="give up waiting after this many seconds")
    return parser.parse_args()


def with_database(url: str, name: str) -> str:
    parts = urlparse(url)
    return urlunparse(parts._replace(path=f"/{name}"))


def admin_connection(url: str):
    import psycopg

    parts = urlparse(url)
    return psycopg.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        user=parts.username or "postgres",
        password=parts.password,
        dbname="postgres",
        autocommit=True,
    )


# --- memory ---------------------------------------------------------------------------------------------------------


def process_tree(root: int) -> list[int]:
    pids, frontier = [], [root]
    while frontier:
        pid = frontier.pop()
        pids.append(pid)
        try:
            for task in Path(f"/proc/{pid}/task").iterdir():
                children = (task / "children").read_text().split()
                frontier.extend(int(child) for child in children)
        except OSError:
            continue
    return pids


def status_kib(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(root: int) -> float:
    """User plus system CPU time of a process and its live children."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in process_tree(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
        except (OSError, IndexError, ValueError):
            continue
    return total


class MemorySampler(threading.Thread):
    def __init__(self, roots: list[int]) -> None:
        super().__init__(daemon=True)
        self.roots = roots
        self.peak_total = 0
        self.high_water: dict[int, int] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            pids = [pid for root in self.roots for pid in process_tree(root)]
            total = sum(status_kib(pid, "VmRSS") for pid in pids) * 1024
            self.peak_total = max(self.peak_total, total)
            for pid in pids:
                self.high_water[pid] = max(self.high_water.get(pid, 0), status_kib(pid, "VmHWM") * 1024)
            time.sleep(0.2)


# --- the data -------------------------------------------------------------------------------------------------------


def create_strategies(count: int) -> list[int]:
    import datetime as dt
    from decimal import Decimal

    from django.contrib.auth import get_user_model

    from brokers.models import BrokerConnection
    from market.models import Bar, BarSize, IndicatorConfig, IndicatorType, Symbol
    from trading.services import strategy_create

    end = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    sessions = []
    day = end
    while len(sessions) < BARS:
        if day.weekday() < 5:
            sessions.append(dt.datetime.combine(day, dt.time(0), tzinfo=dt.UTC))
        day -= dt.timedelta(days=1)
    sessions.reverse()

    owners = []
    for index in range(USERS):
        user = get_user_model().objects.create_user(f"bench{index}", f"bench{index}@example.com", "bench-pass-1234")
        connection = BrokerConnection.objects.create(owner=user, name="sim", starting_cash=Decimal("1000000"))
        indicators = [
            IndicatorConfig.objects.create(owner=user, name=name, indicator_type=kind, parameters=params)
            for name, kind, params in (
                ("SMA 20", IndicatorType.SMA, {"period": 20}),
                ("RSI 14", IndicatorType.RSI, {"period": 14}),
                ("ATR 14", IndicatorType.ATR, {"period": 14}),
            )
        ]
        owners.append((user, connection, indicators))

    ids = []
    for index in range(count):
        symbol = Symbol.objects.create(symbol=f"B{index:03d}", exchange="BENCH")
        start, stop = 60.0 + index % 40, 100.0 + index % 7  # every series differs, so every chart does
        rows = []
        for position, timestamp in enumerate(sessions):
            close = start + (stop - start) * position / (BARS - 1) + 0.4 * math.sin(position / 3 + index)
            close = Decimal(f"{close:.2f}") if position < BARS - 1 else Decimal(f"{stop:.2f}")
            rows.append(
                Bar(
                    symbol=symbol,
                    bar_size=BarSize.D1,
                    timestamp=timestamp,
                    open=close - Decimal("0.30"),
                    high=close + Decimal("0.60"),
                    low=close - Decimal("0.90"),
                    close=close,
                    volume=Decimal(1_000_000),
                )
            )
        Bar.objects.bulk_create(rows)
        user, connection, indicators = owners[index % USERS]
        strategy = strategy_create(
            owner=user,
            name=f"bench {index}",
            symbol=symbol,
            indicators=indicators,
            schedule_cron="* * * * *",
            broker_connection=connection,
            max_position_value=Decimal("5000"),
            max_open_positions=5,
        )
        ids.append(strategy.pk)
    return ids


# --- the workers ----------------------------------------------------------------------------------------------------


def start_worker(env: dict, name: str, *, queues: str, pool: str, concurrency: int, log: Path) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "benchmarks.workers.pipeline_scale_worker",
        "worker",
        f"--pool={pool}",
        f"--concurrency={concurrency}",
        f"--queues={queues}",
        "--loglevel=WARNING",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        f"--hostname={name}@%h",
    ]
    handle = log.open("ab")
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)


def wait_ready(app, queues: list[str], timeout: float = 60) -> None:
    """A ping through each queue answered: every worker consumes."""
    for queue in queues:
        result = app.send_task("config.ping", args=[queue], queue=queue)
        result.get(timeout=timeout)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def main() -> int:
    args = parse_args()
    base_url = os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/trading"
    redis_url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/15"
    database = f"bench_pipeline_{os.getpid()}"
    var_dir = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    env = {
        **os.environ,
        "DATABASE_URL": with_database(base_url, database),
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": redis_url,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "PIPELINE_SPLIT_QUEUES": "true",
        "DJANGO_VAR_DIR": str(var_dir),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "BENCH_ANALYST_DELAY": str(args.delay),
        "PYTHONPATH": str(ROOT),
        "LOG_LEVEL": "WARNING",
    }
    with admin_connection(base_url) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    workers: list[subprocess.Popen] = []
    try:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "--verbosity", "0"], cwd=ROOT, env=env, check=True
        )
        os.environ.update(env)
        import django

        django.setup()
        from django.db.models import Avg, Count, Max

        from config.celery import app
        from lineage.models import LineageRecord
        from orders.models import Order
        from trading.models import StrategyExecution

        print(f"setting up {args.strategies} strategies ({BARS} daily bars each, own symbol) ...", flush=True)
        strategy_ids = create_strategies(args.strategies)

        log = var_dir / "workers.log"
        workers.append(
            start_worker(env, "charts", queues="charts", pool="prefork", concurrency=args.chart_processes, log=log)
        )
        workers.append(
            start_worker(
                env, "pipeline", queues="celery,analysis,orders", pool="threads", concurrency=args.threads, log=log
            )
        )
        wait_ready(app, ["charts", "celery", "analysis", "orders"])
        sampler = MemorySampler([w.pid for w in workers])
        sampler.start()

        from django.utils import timezone

        cpu_before = [cpu_seconds(w.pid) for w in workers]
        sent_at = timezone.now()
        started = time.monotonic()
        for strategy_id in strategy_ids:
            app.send_task("trading.strategy_due", args=[strategy_id])
        executions = StrategyExecution.objects.filter(strategy_id__in=strategy_ids)
        while time.monotonic() - started < args.timeout:
            finished = executions.exclude(status="RUNNING").count()
            if finished >= len(strategy_ids):
                break
            time.sleep(0.25)
        sampler.stop.set()
        sampler.join()
        cpu = [cpu_seconds(w.pid) - before for w, before in zip(workers, cpu_before, strict=True)]

        statuses = dict(executions.values_list("status").annotate(n=Count("pk")))
        last = executions.aggregate(last=Max("finished_at"))["last"]
        elapsed = (last - sent_at).total_seconds() if last else float("inf")
        completed = statuses.get("COMPLETED", 0)
        orders = Order.objects.filter(strategy_id__in=strategy_ids).count()
        charts = sum(1 for _ in (var_dir / "media").rglob("*.png")) if (var_dir / "media").exists() else 0
        hwm_total = sum(sampler.high_water.values())
        print(f"strategies:        {len(strategy_ids)}")
        print(f"executions:        {statuses}")
        print(f"orders placed:     {orders}   charts stored: {charts}")
        print(f"time:              {elapsed:.1f} s  (target {TARGET_SECONDS:.0f} s)")
        print(f"runs per second:   {completed / elapsed if elapsed else 0:.2f}")
        print(f"peak worker RSS:   {sampler.peak_total / 1024**2:.0f} MiB  (target {TARGET_RSS / 1024**3:.0f} GiB)")
        print(f"sum of high-water: {hwm_total / 1024**2:.0f} MiB over {len(sampler.high_water)} worker processes")
        steps = (
            LineageRecord.objects.filter(execution__strategy_id__in=strategy_ids)
            .values("step_name")
            .annotate(average=Avg("duration_ms"))
        )
        print("average step ms:   " + ", ".join(f"{row['step_name']} {row['average']:.0f}" for row in steps))
        print(f"worker CPU:        charts {cpu[0]:.0f} s, pipeline {cpu[1]:.0f} s")
        print(
            f"layout:            charts on prefork x{args.chart_processes}; celery/analysis/orders on "
            f"{args.threads} threads; analyst delay {args.delay:g} s"
        )
        ok = completed == len(strategy_ids) and elapsed <= TARGET_SECONDS and sampler.peak_total < TARGET_RSS
        print("PASS" if ok else "FAIL")
        if not ok and completed < len(strategy_ids):
            failed = executions.exclude(status="COMPLETED").values_list("error", flat=True)[:3]
            print("not completed, e.g.:", list(failed))
        return 0 if ok else 1
    finally:
        for worker in workers:
            stop(worker)
        from django.db import connections

        connections.close_all()
        with admin_connection(base_url) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        subprocess.run(["rm", "-rf", str(var_dir)], check=False)


if __name__ == "__main__":
    sys.exit(main())
