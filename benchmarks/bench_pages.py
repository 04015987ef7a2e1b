"""Load on the busiest pages: the dashboard, the signals list and the lineage viewer, served by gunicorn.

Setup: a database of its own (`<DATABASE_URL's name>_bench_pages`, made and migrated here, kept between runs) with
100,000 lineage rows over 10,000 executions of 20 strategies (plus signals, orders, positions and snapshots), and a
second user with data of their own so every page filters by owner. gunicorn runs 2 x cores + 1 sync workers; a
session is made by signing in through the login form, as a person would.

Each page: a warm-up run, then `wrk -t2 -c20 -d30s --latency` with the session cookie; a Lua `done` hook prints p50
and p95 (wrk's own --latency table has no p95). Target per page: p95 <= 250 ms, >= 100 requests/s, no errors (no
socket errors, no non-2xx answers).

Also printed: the CPU one request costs (gunicorn workers plus the database's backends, from /proc, during the
measured run) and what that allows on this machine's cores when nothing else runs ("idle cap"), since on a shared
machine the measured rate also reflects everyone else's load (the load average is printed first).

Run: DATABASE_URL=postgres://postgres@127.0.0.1:5432/trading .venv/bin/python benchmarks/bench_pages.py
     [--duration 30] [--reseed]      (exit status 1 when a target is missed)
Needs `wrk` (apt-get install wrk).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

EXECUTIONS = 10_000
STEPS_PER_EXECUTION = 10  # the nine pipeline steps plus a notification: 100,000 lineage rows
STRATEGIES = 20
P95_TARGET_MS = 250.0
RATE_TARGET = 100.0
BENCH_USER, BENCH_PASSWORD = "bench", "bench-pass-1234"

LUA = """
done = function(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format("RESULT p50_us=%d p95_us=%d p99_us=%d requests=%d duration_us=%d errors=%d status=%d\\n",
    latency:percentile(50), latency:percentile(95), latency:percentile(99), summary.requests, summary.duration,
    errors.connect + errors.read + errors.write + errors.timeout, errors.status))
end
"""


def bench_database_url() -> str:
    base = os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/trading"
    parts = urlparse(base)
    if parts.scheme not in ("postgres", "postgresql"):
        sys.exit("bench_pages needs PostgreSQL: set DATABASE_URL=postgres://...")
    name = parts.path.strip("/") or "trading"
    return urlunparse(parts._replace(path=f"/{name}_bench_pages"))


def ensure_database(url: str) -> None:
    import psycopg

    parts = urlparse(url)
    admin = urlunparse(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [parts.path.strip("/")]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{parts.path.strip("/")}"')


def django_setup(url: str, var_dir: Path) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ["DJANGO_VAR_DIR"] = str(var_dir)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


def seeded() -> bool:
    from django.contrib.auth import get_user_model

    from lineage.models import LineageRecord

    user = get_user_model().objects.filter(username=BENCH_USER).first()
    return user is not None and LineageRecord.objects.filter(execution__strategy__owner=user).count() >= 100_000


def _lineage_rows(execution, symbol: str, signal_id: int, number: int) -> list:
    from lineage.models import LineageRecord

    analysis = (
        f"{symbol} closed above its 20-day average for the third session; RSI {55 + number % 20} is not stretched. "
        "MACD histogram turned positive. Volume is average. " * 12
    )
    outputs = [
        ("load_strategy", {"strategy_id": execution.strategy_id}, {"strategy": {"name": "bench", "symbol": symbol}}),
        (
            "fetch_market_data",
            {"symbol": symbol, "bar_size": "1d"},
            {"series": {"1d": {"count": 154, "last_close": "101.25"}}},
        ),
        (
            "calculate_indicators",
            {"indicators": ["RSI 14", "EMA 20"]},
            {"latest": {"RSI 14": {"rsi": 61.2}, "EMA 20": {"ema": 99.8}}},
        ),
        (
            "generate_charts",
            {"symbol": symbol},
            {"charts": [{"key": f"charts/{execution.pk}/c.png", "bar_size": "1d"}], "chart_count": 1},
        ),
        ("llm_analysis", {"analyst": "anthropic"}, {"analyst": "anthropic", "model": "claude", "text": analysis}),
        (
            "parse_signal",
            {"last_close": "101.25"},
            {
                "signal_id": signal_id,
                "action": "BUY",
                "entry": "100.00",
                "stop_loss": "95.00",
                "target": "110.00",
                "confidence": "0.7",
            },
        ),
        (
            "risk_check",
            {"signal_id": signal_id},
            {
                "action": "BUY",
                "allowed": number % 3 != 0,
                "quantity": "10",
                "refusals": [] if number % 3 else ["max orders per day reached"],
                "checks": [],
            },
        ),
        ("place_order", {"signal_id": signal_id}, {"order_ids": [], "orders": [], "note": "no order"}),
        ("execution_complete", {"execution_id": str(execution.pk)}, {"status": "COMPLETED", "signal": "BUY"}),
        ("notify", {"event": "run"}, {"sent": ["email"]}),
    ]
    failed = number % 50 == 0
    return [
        LineageRecord(
            execution=execution,
            step_name=name,
            step_number=step,
            input_data=inp,
            output_data=out,
            status="error" if failed and name == "place_order" else "success",
            error="broker answered 503" if failed and name == "place_order" else "",
            duration_ms=5 * step,
            recorded_at=execution.started_at + dt.timedelta(milliseconds=200 * step),
        )
        for step, (name, inp, out) in enumerate(outputs, start=1)
    ]


def seed() -> None:
    """Bulk-insert the bench user's world (and a smaller one for a second user)."""
    from django.contrib.auth import get_user_model
    from django.db import transaction

    from brokers.models import BrokerConnection
    from lineage.models import LineageRecord
    from market.models import Symbol
    from orders.models import Order
    from portfolio.models import PortfolioSnapshot, Position
    from signals_app.models import TradingSignal
    from trading.models import Strategy, StrategyExecution

    User = get_user_model()
    User.objects.filter(username__in=[BENCH_USER, "bench-other"]).delete()
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    for username, executions in ((BENCH_USER, EXECUTIONS), ("bench-other", EXECUTIONS // 10)):
        with transaction.atomic():
            user = User.objects.create_user(username, f"{username}@example.com", BENCH_PASSWORD)
            connection = BrokerConnection.objects.create(owner=user, name="Paper")
            symbols = [
                Symbol.objects.get_or_create(symbol=f"B{username[:2].upper()}{n}", exchange="BENCH")[0]
                for n in range(STRATEGIES)
            ]
            strategies = [
                Strategy.objects.create(
                    owner=user,
                    name=f"{username} strategy {n}",
                    symbol=symbols[n],
                    broker_connection=connection,
                    last_execution_at=now,
                    next_execution_at=now + dt.timedelta(minutes=15),
                )
                for n in range(STRATEGIES)
            ]
            runs = StrategyExecution.objects.bulk_create(
                StrategyExecution(
                    execution_id=uuid.uuid4(),
                    strategy=strategies[n % STRATEGIES],
                    status="FAILED" if n % 50 == 0 else "COMPLETED",
                    trigger="schedule",
                    started_at=now - dt.timedelta(minutes=15 * (executions - n)),
                    finished_at=now - dt.timedelta(minutes=15 * (executions - n)) + dt.timedelta(seconds=2),
                    error="place_order: broker answered 503" if n % 50 == 0 else "",
                )
                for n in range(executions)
            )
            signals = TradingSignal.objects.bulk_create(
                TradingSignal(
                    strategy=run.strategy,
                    execution=run,
                    symbol=run.strategy.symbol,
                    action="BUY",
                    entry_price=Decimal("100.00"),
                    stop_loss=Decimal("95.00"),
                    take_profit=Decimal("110.00"),
                    confidence=Decimal("0.7000"),
                    reasoning="Trend up, momentum positive.",
                    analyst="rules",
                    generated_at=run.started_at,
                )
                for run in runs
            )
            batch = []
            for number, (run, sig) in enumerate(zip(runs, signals, strict=True)):
                batch.extend(_lineage_rows(run, run.strategy.symbol.symbol, sig.pk, number))
                if len(batch) >= 5000:
                    LineageRecord.objects.bulk_create(batch)
                    batch = []
            LineageRecord.objects.bulk_create(batch)
            Order.objects.bulk_create(
                Order(
                    owner=user,
                    strategy=run.strategy,
                    symbol=run.strategy.symbol,
                    client_order_id=f"bench-{username}-{n}",
                    side="BUY",
                    quantity=Decimal("10"),
                    limit_price=Decimal("100.00"),
                    status="FILLED" if n % 10 else "SUBMITTED",
                    created_at=run.started_at,
                )
                for n, run in enumerate(runs[-500:])
            )
            for strategy in strategies[:5]:
                Position.objects.create(
                    owner=user, strategy=strategy, symbol=strategy.symbol, quantity=10, average_cost=100, opened_at=now
                )
            PortfolioSnapshot.objects.bulk_create(
                PortfolioSnapshot(
                    owner=user,
                    cash=Decimal("95000.00"),
                    positions_value=Decimal(5000 + n),
                    total_value=Decimal(100000 + n),
                    taken_at=now - dt.timedelta(hours=n),
                )
                for n in range(500)
            )
    from django.db import connection as db

    with db.cursor() as cursor:
        cursor.execute("ANALYZE")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(port: int, env: dict, log: Path) -> subprocess.Popen:
    workers = 2 * (os.cpu_count() or 1) + 1
    command = [
        str(ROOT / ".venv" / "bin" / "gunicorn"),
        "config.wsgi",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--worker-class",
        "sync",
    ]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return process
        except OSError:
            if process.poll() is not None:
                sys.exit(f"gunicorn exited: see {log}")
            time.sleep(0.3)
    sys.exit("gunicorn did not start within 60 s")


def sign_in(base: str) -> str:
    import requests

    session = requests.Session()
    session.get(f"{base}/accounts/login/", timeout=30)
    response = session.post(
        f"{base}/accounts/login/",
        data={"username": BENCH_USER, "password": BENCH_PASSWORD, "csrfmiddlewaretoken": session.cookies["csrftoken"]},
        headers={"Referer": f"{base}/accounts/login/"},
        timeout=30,
        allow_redirects=False,
    )
    if response.status_code != 302:
        sys.exit(f"sign-in failed: HTTP {response.status_code}")
    return f"sessionid={session.cookies['sessionid']}"


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def serving_pids(gunicorn_pid: int, database: str) -> list[int]:
    """gunicorn's workers and the PostgreSQL backends of the bench database: the CPU a page costs is theirs."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == gunicorn_pid:
                children.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", [database])
        backends = [row[0] for row in cursor.fetchall()]
    return [gunicorn_pid, *children, *backends]


def run_wrk(url: str, cookie: str, duration: int, script: Path) -> dict:
    command = ["wrk", "-t2", "-c20", f"-d{duration}s", "--latency", "-s", str(script), "-H", f"Cookie: {cookie}", url]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    match = re.search(r"RESULT (.*)", output)
    if not match:
        sys.exit(f"wrk printed no result:\n{output}")
    values = dict(part.split("=") for part in match.group(1).split())
    result = {key: int(value) for key, value in values.items()}
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    result["non2xx"] = int(non2xx.group(1)) if non2xx else 0
    result["rate"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=30, help="seconds of load per page (wrk -d)")
    parser.add_argument("--reseed", action="store_true", help="rebuild the data even if it is there")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")

    url = bench_database_url()
    ensure_database(url)
    var_dir = Path(tempfile.mkdtemp(prefix="bench-pages-"))
    django_setup(url, var_dir)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    if args.reseed or not seeded():
        started = time.monotonic()
        seed()
        print(f"seeded 100,000 lineage rows / 10,000 executions in {time.monotonic() - started:.0f} s")
    call_command("collectstatic", interactive=False, verbosity=0)

    from django.contrib.auth import get_user_model

    from lineage.models import LineageRecord
    from trading.models import StrategyExecution

    user = get_user_model().objects.get(username=BENCH_USER)
    latest = StrategyExecution.objects.for_owner(user).recent().first()
    print(
        f"data: {LineageRecord.objects.count():,} lineage rows, {StrategyExecution.objects.count():,} executions; "
        f"{2 * (os.cpu_count() or 1) + 1} gunicorn sync workers; load average before: {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} cores (other work on the machine slows every figure below)"
    )

    env = {**os.environ, "DATABASE_URL": url, "DJANGO_VAR_DIR": str(var_dir), "DJANGO_DEBUG": "false"}
    port = free_port()
    gunicorn = start_gunicorn(port, env, var_dir / "gunicorn.log")
    failures = []
    try:
        base = f"http://127.0.0.1:{port}"
        cookie = sign_in(base)
        script = var_dir / "report.lua"
        script.write_text(LUA)
        pages = [
            ("dashboard", "/"),
            ("signals list", "/signals/"),
            ("lineage viewer", f"/lineage/?execution={latest.pk}"),
        ]
        print(
            f"{'page':<16}{'p50 ms':>9}{'p95 ms':>9}{'req/s':>9}{'errors':>8}{'cpu/req':>10}{'idle cap':>10}"
            f"  target p95<={P95_TARGET_MS:.0f} ms, >={RATE_TARGET:.0f}/s"
        )
        import requests

        for name, path in pages:
            # a redirect to the login page would count as success for wrk (3xx): check the session really works
            check = requests.get(base + path, headers={"Cookie": cookie}, allow_redirects=False, timeout=30)
            if check.status_code != 200:
                sys.exit(f"{name}: HTTP {check.status_code} with the session; see {var_dir / 'gunicorn.log'}")
            run_wrk(base + path, cookie, 5, script)  # warm-up: workers' connections, caches, query plans
            pids = serving_pids(gunicorn.pid, urlparse(url).path.strip("/"))
            cpu_before = sum(_cpu_seconds(pid) for pid in pids)
            result = run_wrk(base + path, cookie, args.duration, script)
            cpu_ms = (sum(_cpu_seconds(pid) for pid in pids) - cpu_before) * 1000 / max(result["requests"], 1)
            p50, p95 = result["p50_us"] / 1000, result["p95_us"] / 1000
            errors = result["errors"] + result["status"] + result["non2xx"]
            ok = p95 <= P95_TARGET_MS and result["rate"] >= RATE_TARGET and errors == 0
            capacity = (os.cpu_count() or 1) * 1000 / cpu_ms if cpu_ms else 0
            print(
                f"{name:<16}{p50:>9.1f}{p95:>9.1f}{result['rate']:>9.1f}{errors:>8}{cpu_ms:>10.1f}{capacity:>10.0f}"
                f"  {'ok' if ok else 'MISSED'}"
            )
            if not ok:
                failures.append(name)
    finally:
        gunicorn.send_signal(signal.SIGTERM)
        gunicorn.wait(timeout=30)
        shutil.rmtree(var_dir, ignore_errors=True)
    if failures:
        print(f"target missed: {', '.join(failures)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
