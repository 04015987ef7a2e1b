"""The embedded default, booted for real: the Procfile's web, worker and beat under honcho, in a clean environment
(no DATABASE_URL, REDIS_URL or CELERY_BROKER_URL) with a temporary var/: SQLite, the filesystem broker, no server.

One stack is started for the module; the tests run in order and the last one stops it with SIGINT (Ctrl-C)."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.run.helpers import PROJECT_DIR, VENV_BIN, clean_env, free_port

pytestmark = pytest.mark.slow

BOOT_TIMEOUT = 120  # seconds; three cold Django start-ups on a busy machine
TASK_TIMEOUT = 60
STOP_TIMEOUT = 30
HTTP_TIMEOUT = 30
BEAT_TASK_NAME = "boot-check: ping from beat"
PROCESS_STARTED = re.compile(r"\b(web|worker|beat)\.1 started \(pid=(\d+)\)")


@dataclass
class Stack:
    honcho: subprocess.Popen
    base_url: str
    env: dict[str, str]
    var_dir: Path
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def process_groups(self) -> dict[str, int]:
        """honcho starts each Procfile entry in a session of its own; its pid is the group of all it forks."""
        return {name: int(pid) for name, pid in PROCESS_STARTED.findall(self.log())}


def manage(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return _run([str(VENV_BIN / "python"), "manage.py", *args], env=env, timeout=timeout)


def django_python(env: dict[str, str], code: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `code` after django.setup() in `env` (its settings, its var/)."""
    prelude = "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'config.settings'); django.setup()\n"
    return _run([str(VENV_BIN / "python"), "-c", prelude + code], env=env, timeout=timeout)


def _run(command: list[str], *, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    done = subprocess.run(command, cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(command[:3])} failed:\n{done.stdout}\n{done.stderr}"
    return done


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_for_web(stack: Stack) -> None:
    deadline = time.monotonic() + BOOT_TIMEOUT
    while time.monotonic() < deadline:
        if stack.honcho.poll() is not None:
            pytest.fail(f"honcho exited during start-up:\n{stack.log()}")
        try:
            # the first request imports every URLconf'd view (pandas, matplotlib...): slow on a busy machine
            if requests.get(f"{stack.base_url}/accounts/login/", timeout=HTTP_TIMEOUT).status_code == 200:
                return
        except (requests.ConnectionError, requests.Timeout):
            pass
        time.sleep(0.5)
    pytest.fail(f"web did not answer within {BOOT_TIMEOUT}s:\n{stack.log()}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    """migrate, collectstatic and a 2-second PeriodicTask in the clean environment, then `honcho start`."""
    var_dir = tmp_path_factory.mktemp("var")
    port = free_port()
    env = clean_env(var_dir, PORT=str(port))
    no_env_file = var_dir / "empty.env"  # honcho would read the project's .env; a developer's must not leak in
    no_env_file.write_text("")
    log_path = var_dir / "honcho.log"
    manage(env, "migrate", "--noinput")
    manage(env, "collectstatic", "--noinput", "--verbosity", "0")
    django_python(
        env,
        "from django_celery_beat.models import IntervalSchedule, PeriodicTask\n"
        "every, _ = IntervalSchedule.objects.get_or_create(every=2, period=IntervalSchedule.SECONDS)\n"
        f"PeriodicTask.objects.create(name={BEAT_TASK_NAME!r}, task='config.ping', interval=every, "
        "args='[\"from-beat\"]')\n",
    )
    with log_path.open("wb") as log:
        honcho = subprocess.Popen(
            [str(VENV_BIN / "honcho"), "--no-colour", "start", "--env", str(no_env_file)],
            cwd=PROJECT_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    stack = Stack(honcho, f"http://127.0.0.1:{port}", env, var_dir, log_path)
    try:
        _wait_for_web(stack)
        yield stack
    finally:
        for pgid in [honcho.pid, *stack.process_groups().values()]:
            if _group_alive(pgid):
                os.killpg(pgid, signal.SIGKILL)
        honcho.wait(timeout=STOP_TIMEOUT)


def test_all_three_procfile_processes_start(stack):
    assert set(stack.process_groups()) == {"web", "worker", "beat"}
    assert stack.honcho.poll() is None


def test_root_redirects_an_anonymous_visitor_to_the_login_page(stack):
    response = requests.get(f"{stack.base_url}/", allow_redirects=False, timeout=HTTP_TIMEOUT)

    assert response.status_code == 302
    assert response.headers["Location"].startswith("/accounts/login/")


def test_login_page_renders_a_sign_in_form(stack):
    response = requests.get(f"{stack.base_url}/accounts/login/", timeout=HTTP_TIMEOUT)

    assert response.status_code == 200
    assert 'name="username"' in response.text
    assert 'name="password"' in response.text
    assert "csrfmiddlewaretoken" in response.text


def test_static_files_are_served_with_debug_off(stack):
    response = requests.get(f"{stack.base_url}/static/admin/css/base.css", timeout=HTTP_TIMEOUT)

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/css")


def test_a_task_sent_now_is_run_by_the_worker_through_the_filesystem_broker(stack):
    token = uuid.uuid4().hex

    sent = django_python(
        stack.env,
        "import json\n"
        "from config.celery import ping\n"
        f"result = ping.delay({token!r})\n"
        f"print(json.dumps({{'id': result.id, 'value': result.get(timeout={TASK_TIMEOUT})}}))\n",
        timeout=TASK_TIMEOUT + 60,
    )

    answer = json.loads(sent.stdout.strip().splitlines()[-1])
    assert answer["value"] == token  # read back from the SQLite result backend the worker wrote to
    assert f"Task config.ping[{answer['id']}] succeeded" in stack.log()
    assert (stack.var_dir / "celery-broker" / "queue").is_dir()


def test_beat_sends_the_scheduled_task_and_the_worker_runs_it(stack):
    deadline = time.monotonic() + TASK_TIMEOUT
    rows = []
    while not rows and time.monotonic() < deadline:
        time.sleep(1)
        with sqlite3.connect(stack.var_dir / "db.sqlite3", timeout=20) as database:
            rows = database.execute(
                "SELECT status, result FROM django_celery_results_taskresult WHERE periodic_task_name = ?",
                [BEAT_TASK_NAME],
            ).fetchall()

    assert rows, f"no result from the beat-scheduled task within {TASK_TIMEOUT}s:\n{stack.log()}"
    assert rows[0] == ("SUCCESS", '"from-beat"')


NAVIGATION = [
    "dashboard", "strategy_list", "replay_list", "lineage", "signal_list", "order_list", "portfolio", "chart_list",
    "symbol_list", "indicator_list", "prompt_list", "logs", "ibkr", "settings",
]  # fmt: skip


def test_every_page_of_the_navigation_renders_on_sqlite_for_the_signed_in_demo_user(stack):
    from django.urls import reverse

    # given the demo `make run` loads (a user, a strategy, its first run with a signal), signed in through the form
    manage(stack.env, "seed_demo", timeout=300)
    django_python(
        stack.env,
        "from django.contrib.auth import get_user_model\n"
        "user = get_user_model().objects.get(username='demo')\n"
        "user.set_password('demo-pass-1234')\n"
        "user.save()\n",
    )
    session = requests.Session()
    login_url = f"{stack.base_url}/accounts/login/"
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', session.get(login_url, timeout=HTTP_TIMEOUT).text)
    signed_in = session.post(
        login_url,
        data={"username": "demo", "password": "demo-pass-1234", "csrfmiddlewaretoken": token.group(1)},
        headers={"Referer": login_url},
        timeout=HTTP_TIMEOUT,
        allow_redirects=False,
    )
    assert signed_in.status_code == 302 and signed_in.headers["Location"] == "/"

    # when each page of the navigation is opened
    answers = {name: session.get(stack.base_url + reverse(name), timeout=HTTP_TIMEOUT) for name in NAVIGATION}

    # then every one renders on the embedded default's SQLite
    failing = {name: answer.status_code for name, answer in answers.items() if answer.status_code != 200}
    assert failing == {}, stack.log()[-3000:]


def test_sigint_stops_web_worker_and_beat(stack):
    groups = stack.process_groups()

    os.kill(stack.honcho.pid, signal.SIGINT)

    try:
        stack.honcho.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"honcho still running {STOP_TIMEOUT}s after SIGINT:\n{stack.log()}")
    deadline = time.monotonic() + 5
    while any(_group_alive(pgid) for pgid in groups.values()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert {name for name, pgid in groups.items() if _group_alive(pgid)} == set()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{stack.base_url}/accounts/login/", timeout=5)
