"""The shared harness itself: PostgreSQL only, Redis of its own, S3 on loopback, a real worker that can be killed."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from types import SimpleNamespace

import pytest
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import connection

from config.celery import ping
from tests.conftest import PROJECT_DIR, wrong_services
from tests.worker_tasks import record_attempt, user_exists


def wait_for(condition, *, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


# --- The session refuses the wrong services -----------------------------------------------------------------------


def test_session_on_sqlite_stops_before_any_test_with_a_clear_message(tmp_path):
    env = {**os.environ, "DJANGO_VAR_DIR": str(tmp_path), "DATABASE_URL": "sqlite:///:memory:"}

    run = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/foundation/test_factories.py", "-q"],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert run.returncode == pytest.ExitCode.USAGE_ERROR
    assert "The tests run on PostgreSQL" in run.stdout + run.stderr
    assert "passed" not in run.stdout


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"DATABASES": {"default": {"ENGINE": "django.db.backends.sqlite3"}}}, "The tests run on PostgreSQL"),
        ({"REDIS_URL": ""}, "The tests need Redis"),
        ({"REDIS_URL": "redis://127.0.0.1:6379/0"}, "names database 0"),
        ({"REDIS_URL": "redis://127.0.0.1:6379"}, "names database 0"),
    ],
    ids=["sqlite-database", "no-redis", "redis-db-0", "redis-no-db"],
)
def test_wrong_services_are_named(overrides, message):
    wrong = SimpleNamespace(DATABASES=settings.DATABASES, REDIS_URL=settings.REDIS_URL)
    for name, value in overrides.items():
        setattr(wrong, name, value)

    assert message in wrong_services(wrong)


def test_this_session_runs_on_the_right_services():
    assert wrong_services(settings) is None


def test_tests_run_on_postgresql():
    assert connection.vendor == "postgresql"


# --- Redis --------------------------------------------------------------------------------------------------------


def test_redis_client_is_on_the_tests_own_database(redis_client):
    key = f"harness:{uuid.uuid4().hex}"

    redis_client.set(key, "value")

    assert redis_client.connection_pool.connection_kwargs["db"] == int(settings.REDIS_URL.rsplit("/", 1)[1])
    assert redis_client.get(key) == "value"


# --- S3 -----------------------------------------------------------------------------------------------------------


def test_default_storage_writes_to_the_s3_bucket(s3_storage):
    from django.core.files.storage import default_storage

    name = default_storage.save("charts/spy.png", ContentFile(b"\x89PNG chart bytes"))

    assert type(default_storage._wrapped).__name__ == "S3Storage"
    assert s3_storage.keys() == [name]
    body = s3_storage.client.get_object(Bucket=s3_storage.bucket, Key=name)["Body"].read()
    assert body == b"\x89PNG chart bytes"
    with default_storage.open(name) as stored:
        assert stored.read() == b"\x89PNG chart bytes"


def test_each_test_gets_a_fresh_empty_bucket(s3_storage):
    assert s3_storage.keys() == []


def test_default_storage_is_local_files_again_without_the_fixture():
    from django.core.files.storage import storages

    assert type(storages["default"]).__name__ == "FileSystemStorage"


# --- A real Celery worker -----------------------------------------------------------------------------------------


def test_worker_answers_ping_sent_from_the_test(celery_worker_process):
    result = ping.delay("hello")

    assert result.get(timeout=30) == "hello"


def test_worker_reads_rows_the_test_committed(celery_worker_process, owner):
    assert user_exists.delay(owner.username).get(timeout=30) is True
    assert user_exists.delay("nobody-by-that-name").get(timeout=30) is False


def test_task_of_a_killed_worker_is_delivered_again_after_restart(celery_worker_process, redis_client):
    key = uuid.uuid4().hex
    record_attempt.delay(key, hold_first_attempt=60)
    wait_for(lambda: redis_client.get(f"harness:{key}:attempts") == "1", timeout=30, what="the first attempt")

    celery_worker_process.kill()
    assert redis_client.get(f"harness:{key}:finished") is None
    celery_worker_process.restart()

    finished = wait_for(lambda: redis_client.get(f"harness:{key}:finished"), timeout=30, what="the redelivery")
    assert finished == "2"
