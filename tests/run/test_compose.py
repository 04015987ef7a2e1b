"""docker-compose.yml: the services the stack needs, and every variable the settings read set for the app."""

from __future__ import annotations

import pytest
import yaml
from django.conf import settings

from tests.run.helpers import PROJECT_DIR

APP_SERVICES = ["web", "worker", "replays", "beat", "migrate"]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((PROJECT_DIR / "docker-compose.yml").read_text())


def test_compose_runs_the_database_cache_object_store_and_the_four_app_processes(compose):
    assert {"postgres", "redis", "minio", "createbucket", "migrate", "web", "worker", "replays", "beat"} <= set(
        compose["services"]
    )


def test_replays_go_to_a_thread_pool_worker_of_their_own_in_compose_and_the_procfile(compose):
    # given the replay task's route
    queue = settings.CELERY_TASK_ROUTES["replays.replay_run"]["queue"]

    # then compose and make run's Procfile each run a worker on that queue with a thread pool (a prefork child is
    # daemonic and could not start a replay's chart pool), and the default worker leaves that queue alone
    command = " ".join(compose["services"]["replays"]["command"])
    assert f"--queues {queue}" in command and "--pool threads" in command
    assert "--queues" not in " ".join(compose["services"]["worker"]["command"])
    procfile = dict(line.split(":", 1) for line in (PROJECT_DIR / "Procfile").read_text().splitlines() if line)
    assert f"--queues {queue}" in procfile["replays"] and "--pool threads" in procfile["replays"]
    assert "--queues" not in procfile["worker"]


@pytest.mark.parametrize("service", APP_SERVICES)
def test_app_service_sets_every_variable_the_settings_read(compose, service):
    environment = compose["services"][service]["environment"]

    missing = sorted(set(settings.ENV_VARS) - set(environment))

    assert missing == [], f"{service} does not set {missing}: add them to x-app-environment"


@pytest.mark.parametrize("service", APP_SERVICES)
def test_app_service_uses_the_stack_services_not_the_embedded_default(compose, service):
    environment = compose["services"][service]["environment"]

    assert environment["DATABASE_URL"].startswith("postgres://")
    assert environment["DATABASE_URL"].endswith("@postgres:5432/trading")
    assert environment["REDIS_URL"].startswith("redis://redis:6379/")
    assert environment["CELERY_BROKER_URL"].startswith("redis://redis:6379/")
    assert environment["AWS_S3_ENDPOINT_URL"] == "http://minio:9000"


def test_secrets_come_from_the_environment_and_are_never_written_in_the_file(compose):
    environment = compose["services"]["web"]["environment"]

    for name in ("DJANGO_SECRET_KEY", "AWS_SECRET_ACCESS_KEY"):
        assert environment[name].startswith(f"${{{name}:?"), f"{name} must be required from .env, not defaulted"
    assert "${POSTGRES_PASSWORD:?" in environment["DATABASE_URL"]


def test_bucket_is_created_before_the_app_starts(compose):
    services = compose["services"]

    assert "mc mb --ignore-existing" in " ".join(services["createbucket"]["command"])
    for service in ("web", "worker", "beat"):
        assert services[service]["depends_on"]["createbucket"] == {"condition": "service_completed_successfully"}
        assert services[service]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}


def test_the_web_port_is_published_on_loopback_only(compose):
    assert compose["services"]["web"]["ports"] == ["127.0.0.1:8000:8000"]


def test_the_ibkr_gateway_service_is_there_commented_out(compose):
    text = (PROJECT_DIR / "docker-compose.yml").read_text()

    assert "ibkr-gateway" not in compose["services"]
    assert "#   image: voyz/ibeam" in text
    assert '"127.0.0.1:5000:5000"' in text
