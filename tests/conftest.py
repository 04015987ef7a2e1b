"""The shared test harness: real PostgreSQL, a Redis database of its own, an S3 server on loopback, a real Celery
worker in a subprocess, personas.

`make test` sets DATABASE_URL (PostgreSQL) and REDIS_URL (db 15). Mock only the outside world (IBKR, Anthropic).

Fixtures:
- `owner`, `other_user`, `staff_user`: personas (the staff user is a superuser, for the admin).
- `redis_client`: a client (str responses) on REDIS_URL's database, which is flushed once at session start.
- `s3_storage`: `default_storage` is django-storages' S3 backend on a moto server on loopback, with a fresh bucket.
- `celery_worker_process`: a `celery -A config worker` subprocess on the test database and the test broker; the
  test's own Celery app sends to the same broker. `.kill()` (SIGKILL), `.restart()`. Implies `transactional_db`.
- pytest-django's `live_server`, `settings`, `django_db_blocker` as usual.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlparse

import boto3
import pytest
import redis
from django.contrib.auth import get_user_model

PROJECT_DIR = Path(__file__).resolve().parent.parent
WORKER_SETTINGS_MODULE = "tests.celery_worker_settings"
WORKER_READY_TIMEOUT = 60.0  # seconds; a cold start imports Django, pandas and every app on a busy machine

# --- Real services, checked before anything runs ------------------------------------------------------------------


def _redis_db(url: str) -> int:
    path = urlparse(url).path.strip("/")
    return int(path) if path.isdigit() else 0


SQLITE_LANE = os.environ.get("TEST_LANE") == "sqlite"  # make test's second lane: the embedded default's SQLite


def wrong_services(settings) -> str | None:
    """Why these settings cannot run the tests, or None: PostgreSQL and a Redis database of their own; or, in the
    SQLite lane, SQLite and no Redis (what `make run` uses)."""
    engine = settings.DATABASES["default"]["ENGINE"]
    if SQLITE_LANE:
        if engine != "django.db.backends.sqlite3" or settings.REDIS_URL:
            return "The SQLite lane (TEST_LANE=sqlite) runs on DATABASE_URL=sqlite:///... with REDIS_URL unset."
        return None
    if engine != "django.db.backends.postgresql":
        return (
            f"The tests run on PostgreSQL, but DATABASE_URL gives {engine!r}. Set DATABASE_URL, e.g. "
            "DATABASE_URL=postgres://postgres@127.0.0.1:5432/trading (make test does)."
        )
    if not settings.REDIS_URL:
        return (
            "The tests need Redis: set REDIS_URL to a database of its own, e.g. REDIS_URL=redis://127.0.0.1:6379/15 "
            "(make test does). It is flushed at the start of every run."
        )
    if _redis_db(settings.REDIS_URL) == 0:
        return (
            f"REDIS_URL={settings.REDIS_URL} names database 0; the tests flush their database, so give them one "
            "of their own, e.g. redis://127.0.0.1:6379/15."
        )
    return None


def pytest_sessionstart(session: pytest.Session) -> None:
    """Refuse to run on the wrong services, and give the tests a clean Redis database of their own."""
    from django.conf import settings

    problem = wrong_services(settings)
    if problem:
        pytest.exit(problem, returncode=pytest.ExitCode.USAGE_ERROR)
    # PBKDF2 costs ~0.2 s a password by design; tests create thousands of users. Logins still check hashes.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # WhiteNoise warns on every request when STATIC_ROOT is missing; `make run` fills it with collectstatic.
    Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return  # under xdist the controller flushed already; a worker flushing would wipe its siblings' keys
    if SQLITE_LANE:
        return  # no Redis in the embedded default
    try:
        redis.Redis.from_url(settings.REDIS_URL).flushdb()  # this database only, never FLUSHALL
    except redis.RedisError as exc:
        pytest.exit(f"Redis at REDIS_URL={settings.REDIS_URL} is not reachable: {exc}", returncode=3)


# --- Personas -----------------------------------------------------------------------------------------------------


@pytest.fixture
def owner(db):
    return get_user_model().objects.create_user("owner", "owner@example.com", "owner-pass-1234")


@pytest.fixture
def other_user(db):
    return get_user_model().objects.create_user("other", "other@example.com", "other-pass-1234")


@pytest.fixture
def staff_user(db):
    return get_user_model().objects.create_user(
        "staff", "staff@example.com", "staff-pass-1234", is_staff=True, is_superuser=True
    )


# --- Redis --------------------------------------------------------------------------------------------------------


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    """REDIS_URL's database (the tests' own), decoding responses to str."""
    from django.conf import settings

    client = redis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    yield client
    client.close()


# --- S3 on loopback -----------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint_url() -> Iterator[str]:
    """A moto S3 server in a thread of this process, on a free loopback port, for the whole session."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@dataclass
class S3Storage:
    """What `s3_storage` gives a test: the storage in use and a boto3 client to look behind it."""

    storage: object
    bucket: str
    endpoint_url: str
    client: object

    def keys(self) -> list[str]:
        listing = self.client.list_objects_v2(Bucket=self.bucket)
        return sorted(item["Key"] for item in listing.get("Contents", []))


S3_CREDENTIALS = {"access_key": "harness-access-key", "secret_key": "harness-secret-key", "region_name": "us-east-1"}


@pytest.fixture
def s3_storage(settings, s3_endpoint_url) -> S3Storage:
    """Point `default_storage` at a fresh bucket on the moto server (Django resets it when STORAGES changes)."""
    from django.core.files.storage import default_storage

    bucket = f"test-{uuid.uuid4().hex[:12]}"
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint_url,
        aws_access_key_id=S3_CREDENTIALS["access_key"],
        aws_secret_access_key=S3_CREDENTIALS["secret_key"],
        region_name=S3_CREDENTIALS["region_name"],
    )
    client.create_bucket(Bucket=bucket)
    settings.AWS_STORAGE_BUCKET_NAME = bucket
    settings.AWS_S3_ENDPOINT_URL = s3_endpoint_url
    settings.AWS_ACCESS_KEY_ID = S3_CREDENTIALS["access_key"]
    settings.AWS_SECRET_ACCESS_KEY = S3_CREDENTIALS["secret_key"]
    settings.AWS_S3_REGION_NAME = S3_CREDENTIALS["region_name"]
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": bucket,
                "endpoint_url": s3_endpoint_url,
                **S3_CREDENTIALS,
                "default_acl": None,
                "file_overwrite": False,
                "querystring_auth": True,
            },
        },
    }
    return S3Storage(storage=default_storage, bucket=bucket, endpoint_url=s3_endpoint_url, client=client)


# --- A real Celery worker -----------------------------------------------------------------------------------------


def _database_url(settings_dict: dict) -> str:
    """The URL of the database Django is connected to now (inside a test: pytest-django's test_<name>)."""
    credentials = quote(settings_dict.get("USER") or "", safe="")
    if settings_dict.get("PASSWORD"):
        credentials += ":" + quote(settings_dict["PASSWORD"], safe="")
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or 5432
    return f"postgres://{credentials}@{host}:{port}/{settings_dict['NAME']}"


def _point_celery_app_at(app, *, broker_url: str, transport_options: dict) -> None:
    """Send this process's tasks to `broker_url`. The pools are forgotten, not closed: kombu keeps them in a
    process-wide registry keyed by broker, and the same broker's pool is handed back the next time."""
    app.conf.broker_url = broker_url
    app.conf.broker_read_url = None
    app.conf.broker_write_url = None
    app.conf.broker_transport_options = transport_options
    app._pool = None
    app.amqp._producer_pool = None


@dataclass
class CeleryWorkerProcess:
    """A `celery -A config worker` subprocess (solo pool, one task at a time) and the app that sends to it."""

    app: object
    env: dict[str, str]
    log_path: Path
    name: str
    process: subprocess.Popen | None = None
    starts: int = field(default=0)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        self.starts += 1
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool=solo",
            "--concurrency=1",
            "--loglevel=INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--include=tests.worker_tasks",
            f"--hostname={self.name}-{self.starts}@%h",
        ]
        with self.log_path.open("ab") as log:
            # A session of its own, so kill() takes the whole process group and nothing outlives the test.
            self.process = subprocess.Popen(
                command, cwd=PROJECT_DIR, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.wait_until_ready()

    def wait_until_ready(self, timeout: float = WORKER_READY_TIMEOUT) -> None:
        """Block until the worker has run a `config.ping` sent now (so it consumes the broker and writes results)."""
        token = uuid.uuid4().hex
        result = self.app.send_task("config.ping", args=[token])
        deadline = time.monotonic() + timeout
        while not result.ready():
            if not self.alive:
                raise RuntimeError(f"the Celery worker exited during start-up:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the Celery worker did not answer config.ping in {timeout:.0f}s:\n{self.log_tail()}"
                )
            time.sleep(0.1)
        assert result.get(timeout=1) == token

    def kill(self) -> None:
        """SIGKILL, like a crash or the OOM killer: nothing is acknowledged, nothing is cleaned up."""
        if self.alive:
            os.killpg(self.process.pid, signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=10)

    def restart(self) -> None:
        self.kill()
        self.start()

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def _clear_test_broker(client: redis.Redis, prefix: str) -> None:
    """Drop queued and unacknowledged messages, so one test's leftovers are never delivered in the next."""
    keys = list(client.scan_iter(match=f"{prefix}*", count=500))
    if keys:
        client.delete(*keys)


@pytest.fixture
def celery_worker_process(request, transactional_db, tmp_path, settings) -> Iterator[CeleryWorkerProcess]:
    """A real worker on the test database and test broker; the test's rows must be committed to be seen, hence
    `transactional_db`.

    The test broker is REDIS_URL itself (same server and database) with every broker key under `celery-test:`
    (see tests/celery_worker_settings.py), so it needs no database of its own. Do not flush REDIS_URL's database
    while a worker runs. Settings overridden in the test are not seen by the worker, except the S3 ones: request
    `s3_storage` and the worker stores to the same bucket.
    """
    if SQLITE_LANE:
        pytest.skip("the harness worker uses the Redis broker, which the SQLite lane has not")
    from django.db import connection

    from config.celery import app
    from tests.celery_worker_settings import TEST_BROKER_TRANSPORT_OPTIONS

    if "s3_storage" in request.fixturenames:
        request.getfixturevalue("s3_storage")

    broker_url = settings.REDIS_URL
    prefix = TEST_BROKER_TRANSPORT_OPTIONS["global_keyprefix"]
    broker_keys = redis.Redis.from_url(broker_url)
    _clear_test_broker(broker_keys, prefix)

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": WORKER_SETTINGS_MODULE,
        "DATABASE_URL": _database_url(connection.settings_dict),
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_BROKER_URL": broker_url,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "PYTHONUNBUFFERED": "1",
    }
    if settings.AWS_STORAGE_BUCKET_NAME:
        env.update(
            AWS_STORAGE_BUCKET_NAME=settings.AWS_STORAGE_BUCKET_NAME,
            AWS_S3_ENDPOINT_URL=settings.AWS_S3_ENDPOINT_URL or "",
            AWS_ACCESS_KEY_ID=settings.AWS_ACCESS_KEY_ID,
            AWS_SECRET_ACCESS_KEY=settings.AWS_SECRET_ACCESS_KEY,
            AWS_S3_REGION_NAME=settings.AWS_S3_REGION_NAME,
        )

    saved = {
        "broker_url": app.conf.broker_url,
        "broker_read_url": app.conf.broker_read_url,
        "broker_write_url": app.conf.broker_write_url,
        "broker_transport_options": app.conf.broker_transport_options,
        "task_always_eager": app.conf.task_always_eager,
    }
    app.conf.task_always_eager = False
    _point_celery_app_at(app, broker_url=broker_url, transport_options=dict(TEST_BROKER_TRANSPORT_OPTIONS))
    worker = CeleryWorkerProcess(
        app=app, env=env, log_path=tmp_path / "celery-worker.log", name=f"harness-{uuid.uuid4().hex[:8]}"
    )
    try:
        worker.start()
        yield worker
    finally:
        worker.kill()
        _clear_test_broker(broker_keys, prefix)
        broker_keys.close()
        _point_celery_app_at(app, broker_url=saved["broker_url"], transport_options=saved["broker_transport_options"])
        app.conf.broker_read_url = saved["broker_read_url"]
        app.conf.broker_write_url = saved["broker_write_url"]
        app.conf.task_always_eager = saved["task_always_eager"]


@pytest.fixture
def celery_eager():
    """Tasks run inline in the test process. Django's CELERY_* settings are read once, when the Celery app first
    loads its configuration, so overriding the setting in a test has no effect: change the app's own conf."""
    from config.celery import app

    saved = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield app
    app.conf.task_always_eager = saved
