"""Replays while live runs go on, on the embedded default that `make run` starts.

Setup: a fresh state directory (SQLite, Celery's filesystem broker, local files), `migrate` and `seed_demo` (the
demo strategy runs every minute on its playback feed), then the `Procfile` stack under honcho: web, worker, replays
worker and beat. For `--minutes` (at least 10 for a verdict) two-year daily replays of the demo strategy are
started back to back through the replay page's own form (signed in as the demo user, CSRF and all); then the stack
runs `--settle` seconds more, so the runs due at the end can finish.

Printed: the runs due from the demo's crontab over the window (counted from the schedule, not from the rows that
exist), how many completed, were skipped (by reason), failed, or are missing (a due time with no execution at all),
the replays started and finished, and the "database is locked" lines in each process's log. Goal: 0 failed,
0 missing, 0 locked, 0 skipped because of contention (claim_held, trigger_expired).

Run: .venv/bin/python benchmarks/bench_replay_while_live.py [--minutes 10] [--settle 90] [--keep]
     (exit status 1 when the goal is missed)
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
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PASSWORD = "bench-replay-1234"
REPLAY_START, REPLAY_END = "2015-01-02", "2016-12-30"
CONTENTION = {"claim_held", "trigger_expired"}
PROCESSES = ("web", "worker", "replays", "beat")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def stack_env(var_dir: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"}}
    env.update(
        DJANGO_VAR_DIR=str(var_dir),
        DJANGO_SETTINGS_MODULE="config.settings",
        PORT=str(port),
        PATH=f"{ROOT / '.venv' / 'bin'}:{env.get('PATH', '')}",
        PYTHONUNBUFFERED="1",
    )
    return env


def manage(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [str(ROOT / ".venv" / "bin" / "python"), "manage.py", *args],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if process.poll() is not None:
                sys.exit(f"the stack exited during start-up: see {log}")
            time.sleep(0.5)
    sys.exit("the web server did not start within 90 s")


class Trader:
    """The demo user in a browser session, starting replays from /replays/ as a person would."""

    def __init__(self, base: str) -> None:
        import requests  # noqa: PLC0415  the benchmark's only HTTP client, loaded with the rest of its setup

        self.base, self.session = base, requests.Session()
        self.session.get(f"{base}/accounts/login/", timeout=30)
        signed_in = self.session.post(
            f"{base}/accounts/login/",
            data={"username": "demo", "password": PASSWORD, "csrfmiddlewaretoken": self.session.cookies["csrftoken"]},
            headers={"Referer": f"{base}/accounts/login/"},
            timeout=30,
            allow_redirects=False,
        )
        if signed_in.status_code != 302:
            sys.exit(f"sign-in failed: HTTP {signed_in.status_code}")

    def start_replay(self, strategy_id: int) -> int:
        page = self.session.get(f"{self.base}/replays/", timeout=60)
        page.raise_for_status()
        response = self.session.post(
            f"{self.base}/replays/",
            data={
                "strategy": strategy_id,
                "start": REPLAY_START,
                "end": REPLAY_END,
                "analyst": "",
                "llm_cache": "use",
                "csrfmiddlewaretoken": self.session.cookies["csrftoken"],
            },
            headers={"Referer": f"{self.base}/replays/"},
            timeout=60,
            allow_redirects=False,
        )
        found = re.search(r"/replays/(\d+)/", response.headers.get("Location", ""))
        if response.status_code != 302 or not found:
            sys.exit(f"starting a replay failed: HTTP {response.status_code}\n{response.text[:2000]}")
        return int(found.group(1))


def due_times(cron: str, zone: str, start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    from trading.services import cron_next  # noqa: PLC0415  Django is set up by main() first

    due, times = cron_next(cron, zone, after=start), []
    while due is not None and due <= end:
        times.append(due)
        due = cron_next(cron, zone, after=due)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="how long replays are started back to back")
    parser.add_argument("--settle", type=int, default=90, help="seconds the stack runs on after the last replay")
    parser.add_argument("--keep", action="store_true", help="keep the state directory (printed) for a look")
    args = parser.parse_args()

    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cores)")
    var_dir = Path(tempfile.mkdtemp(prefix="bench-replay-live-"))
    port = free_port()
    env = stack_env(var_dir, port)
    os.environ.update({k: env[k] for k in ("DJANGO_VAR_DIR", "DJANGO_SETTINGS_MODULE")})
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"):
        os.environ.pop(name, None)
    manage(env, "migrate", "--noinput")
    manage(env, "seed_demo")
    manage(env, "collectstatic", "--noinput", "--verbosity", "0")

    import django  # noqa: PLC0415  after the environment above names the state directory

    django.setup()
    from django.contrib.auth import get_user_model  # noqa: PLC0415

    from replays.models import FINISHED_STATUSES, Replay  # noqa: PLC0415
    from trading.models import Strategy, StrategyExecution  # noqa: PLC0415

    demo = get_user_model().objects.get(username="demo")
    demo.set_password(PASSWORD)
    demo.save()
    strategy = Strategy.objects.get(owner=demo, name="SPY demo")

    log = var_dir / "stack.log"
    stack = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "honcho"), "start", "--env", "/dev/null", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    started_replays: list[int] = []
    try:
        wait_for_port(port, stack, log)
        trader = Trader(f"http://127.0.0.1:{port}")
        window_start = dt.datetime.now(dt.UTC)
        deadline = time.monotonic() + args.minutes * 60
        while time.monotonic() < deadline:
            replay_id = trader.start_replay(strategy.pk)
            started_replays.append(replay_id)
            print(f"  {dt.datetime.now(dt.UTC):%H:%M:%S} replay {replay_id} started", flush=True)
            while time.monotonic() < deadline:
                time.sleep(2)
                if Replay.objects.filter(pk=replay_id, status__in=FINISHED_STATUSES).exists():
                    break
        window_end = dt.datetime.now(dt.UTC)
        time.sleep(args.settle)
    finally:
        os.killpg(stack.pid, signal.SIGINT)
        try:
            stack.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(stack.pid, signal.SIGKILL)

    due = due_times(strategy.schedule_cron, strategy.schedule_timezone, window_start, window_end)
    # The scheduled runs of the window's due times (a run starts within a minute of its due time, or is recorded
    # skipped at it); runs of the settling time after it are not counted.
    runs = list(
        StrategyExecution.objects.filter(
            strategy=strategy,
            trigger="schedule",
            started_at__gte=window_start,
            started_at__lt=(due[-1] if due else window_start) + dt.timedelta(seconds=60),
        )
        .order_by("started_at")
        .values("started_at", "status", "skip_reason")
    )
    statuses = Counter(run["status"] for run in runs)
    skipped = Counter(run["skip_reason"] for run in runs if run["status"] == "SKIPPED")
    # A due time is accounted for by the run its trigger started (within a minute) or by its recorded skip.
    missing = [t for t in due if not any(t <= run["started_at"] < t + dt.timedelta(seconds=60) for run in runs)]
    replays = Counter(Replay.objects.filter(pk__in=started_replays).values_list("status", flat=True))
    locked: Counter[str] = Counter()
    no_chart_pool = 0
    for line in log.read_text(errors="replace").splitlines():
        if "database is locked" in line:
            process = line.split("|", 1)[0].split()[-1] if "|" in line else "?"
            locked[process.split(".")[0]] += 1
        no_chart_pool += "charts are drawn in process" in line  # replays.charts could not start its process pool

    minutes = (window_end - window_start).total_seconds() / 60
    print(f"window: {minutes:.1f} min of replays started back to back, then {args.settle} s to settle")
    print(
        f"replays: {len(started_replays)} started ({REPLAY_START}..{REPLAY_END}, daily), "
        + ", ".join(f"{n} {status}" for status, n in sorted(replays.items()))
    )
    print(f"live runs due (from {strategy.schedule_cron!r}): {len(due)}")
    print(
        f"  completed {statuses.get('COMPLETED', 0)}, failed {statuses.get('FAILED', 0)}, "
        f"running at the end {statuses.get('RUNNING', 0)}, missing {len(missing)}"
    )
    print("  skipped: " + (", ".join(f"{reason} {n}" for reason, n in sorted(skipped.items())) or "none"))
    print(
        '"database is locked" lines: '
        + ", ".join(f"{name} {locked.get(name, 0)}" for name in PROCESSES)
        + (f", other {sum(n for p, n in locked.items() if p not in PROCESSES)}" if set(locked) - set(PROCESSES) else "")
    )
    print(f"chart pool unavailable: {no_chart_pool} times")
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    contention = sum(n for reason, n in skipped.items() if reason in CONTENTION)
    ok = not (statuses.get("FAILED", 0) or missing or sum(locked.values()) or contention or no_chart_pool)
    print("goal met: 0 failed, 0 missing, 0 locked, 0 skipped for contention" if ok else "GOAL MISSED")
    if args.keep:
        print(f"state kept in {var_dir}")
    else:
        shutil.rmtree(var_dir, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
