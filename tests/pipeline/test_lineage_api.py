"""The lineage API: the original design's URLs and JSON shapes, scoped to the requesting user."""

from __future__ import annotations

import uuid

import pytest
from rest_framework.test import APIClient

from lineage.steps import STEPS
from tests.pipeline.conftest import strategy_with_indicators
from trading.executor import execute
from trading.services import execution_start

pytestmark = pytest.mark.django_db


@pytest.fixture
def client_for():
    def make(user) -> APIClient:
        client = APIClient()
        client.force_authenticate(user)
        return client

    return make


@pytest.fixture
def completed_run(owner):
    strategy = strategy_with_indicators(owner)
    execution = execution_start(strategy=strategy, trigger="manual")
    execute(execution.pk)
    return strategy, execution


def test_execution_lineage_lists_every_step_in_order(client_for, owner, completed_run):
    _, execution = completed_run

    response = client_for(owner).get(f"/api/lineage/execution/{execution.pk}/")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"execution_id", "steps", "total_steps", "has_errors"}
    assert body["execution_id"] == str(execution.pk)
    assert [step["step_name"] for step in body["steps"]] == list(STEPS)
    assert [step["step_number"] for step in body["steps"]] == list(range(1, 10))
    assert (body["total_steps"], body["has_errors"]) == (9, False)
    assert set(body["steps"][0]) >= {
        "step_name",
        "step_number",
        "input_data",
        "output_data",
        "metadata",
        "error",
        "status",
        "duration_ms",
        "recorded_at",
    }


def test_one_step_of_an_execution(client_for, owner, completed_run):
    _, execution = completed_run

    response = client_for(owner).get(f"/api/lineage/execution/{execution.pk}/step/parse_signal/")

    assert response.status_code == 200
    assert response.json()["output_data"]["action"] == "BUY"
    assert client_for(owner).get(f"/api/lineage/execution/{execution.pk}/step/nope/").status_code == 404


def test_recent_executions_of_a_strategy(client_for, owner, completed_run):
    strategy, execution = completed_run

    response = client_for(owner).get(f"/api/lineage/strategy/{strategy.pk}/recent/?limit=5")

    assert response.status_code == 200
    body = response.json()
    assert (body["strategy_id"], body["count"]) == (strategy.pk, 1)
    assert body["executions"][0]["execution_id"] == str(execution.pk)
    assert body["executions"][0]["status"] == "COMPLETED"
    assert "executed_at" in body["executions"][0]


@pytest.mark.parametrize("limit", ["0", "101", "ten"], ids=["zero", "above-100", "not-a-number"])
def test_recent_executions_refuses_a_limit_outside_1_to_100(client_for, owner, completed_run, limit):
    strategy, _ = completed_run

    response = client_for(owner).get(f"/api/lineage/strategy/{strategy.pk}/recent/?limit={limit}")

    assert response.status_code == 400
    assert "limit" in response.json()


def test_step_statistics_over_the_users_runs(client_for, owner, completed_run):
    strategy, _ = completed_run

    response = client_for(owner).get(f"/api/lineage/step/generate_charts/statistics/?strategy_id={strategy.pk}&days=7")

    assert response.status_code == 200
    body = response.json()
    assert (body["total_executions"], body["success_rate"], body["common_errors"]) == (1, 1.0, [])
    assert body["average_duration_ms"] > 0


@pytest.mark.parametrize("days", ["0", "366"], ids=["zero", "above-365"])
def test_step_statistics_refuse_days_outside_1_to_365(client_for, owner, days):
    assert client_for(owner).get(f"/api/lineage/step/load_strategy/statistics/?days={days}").status_code == 400


@pytest.mark.parametrize(
    "path",
    [
        "/api/lineage/execution/{execution}/",
        "/api/lineage/execution/{execution}/step/load_strategy/",
        "/api/lineage/strategy/{strategy}/recent/",
        "/api/lineage/step/load_strategy/statistics/?strategy_id={strategy}",
    ],
    ids=["execution", "step", "recent", "statistics"],
)
def test_another_users_ids_are_not_found(client_for, other_user, completed_run, path):
    strategy, execution = completed_run

    response = client_for(other_user).get(path.format(execution=execution.pk, strategy=strategy.pk))

    assert response.status_code == 404


def test_another_users_runs_do_not_count_in_statistics(client_for, other_user, completed_run):
    body = client_for(other_user).get("/api/lineage/step/load_strategy/statistics/").json()

    assert body["total_executions"] == 0


def test_an_unknown_execution_is_not_found_and_anonymous_callers_are_refused(client_for, owner):
    assert client_for(owner).get(f"/api/lineage/execution/{uuid.uuid4()}/").status_code == 404
    assert APIClient().get(f"/api/lineage/execution/{uuid.uuid4()}/").status_code in (401, 403)
