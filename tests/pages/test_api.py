"""The API: writes through the services, validation errors as 400 with field messages, the schema validates."""

from __future__ import annotations

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from drf_spectacular.generators import SchemaGenerator
from openapi_spec_validator import validate

from market.models import IndicatorConfig
from orders.models import Order
from orders.statuses import OrderStatus
from portfolio.models import Position
from signals_app.models import TradingSignal
from tests.factories import OrderFactory, SymbolFactory, TradingSignalFactory
from trading.models import Strategy


def test_schema_is_valid_openapi_3():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    validate(schema)  # raises on any violation of the OpenAPI 3 specification
    for path in ("/api/strategies/", "/api/orders/{id}/cancel/", "/api/portfolio/statistics/", "/api/symbols/search/"):
        assert path in schema["paths"]


def test_schema_and_docs_are_served_locally(owner_client):
    schema = owner_client.get("/api/schema/")
    assert schema.status_code == 200 and b"openapi: 3" in schema.content
    docs = owner_client.get("/api/docs/").content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in docs
    assert "cdn" not in docs.lower()


def _strategy_payload(symbol, **overrides) -> dict:
    return {"name": "API strategy", "symbol": symbol.pk, "schedule_cron": "0 10 * * 1-5", **overrides}


def test_strategy_created_by_api_gets_its_schedule(world, api_of):
    symbol = SymbolFactory(symbol="IBM")
    response = api_of(world.user).post(
        "/api/strategies/", _strategy_payload(symbol, indicators=[world.indicator.pk]), format="json"
    )
    assert response.status_code == 201, response.json()
    strategy = Strategy.objects.get(pk=response.json()["id"])
    assert strategy.owner == world.user
    assert response.json()["indicators"] == [world.indicator.pk]
    assert PeriodicTask.objects.get(pk=strategy.periodic_task_id).crontab.hour == "10"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"schedule_cron": "every day"}, "schedule_cron"),
        ({"schedule_timezone": "Mars/Olympus"}, "schedule_timezone"),
        ({"risk_per_trade": "0.5"}, "non_field_errors"),
        ({"lookback_bars": 5}, "non_field_errors"),
    ],
    ids=["bad-cron", "bad-zone", "risk-too-high", "lookback-too-short"],
)
def test_strategy_api_refuses_bad_input_with_field_messages(overrides, field, world, api_of):
    symbol = SymbolFactory(symbol="ORCL")
    response = api_of(world.user).post("/api/strategies/", _strategy_payload(symbol, **overrides), format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert not Strategy.objects.filter(name="API strategy").exists()


def test_strategy_api_refuses_another_users_indicator(world, other_world, api_of):
    symbol = SymbolFactory(symbol="SAP")
    response = api_of(world.user).post(
        "/api/strategies/", _strategy_payload(symbol, indicators=[other_world.indicator.pk]), format="json"
    )
    assert response.status_code == 400
    assert "indicators" in response.json()


def test_strategy_api_name_is_unique_per_owner_only(world, other_world, api_of):
    symbol = SymbolFactory(symbol="CSCO")
    mine = api_of(world.user).post(
        "/api/strategies/", _strategy_payload(symbol, name=world.strategy.name), format="json"
    )
    theirs_name = api_of(world.user).post(
        "/api/strategies/", _strategy_payload(symbol, name=other_world.strategy.name), format="json"
    )
    assert mine.status_code == 400 and "name" in mine.json()
    assert theirs_name.status_code == 201


def test_strategy_api_pause_disables_the_beat_task(world, api_of):
    response = api_of(world.user).post(f"/api/strategies/{world.strategy.pk}/pause/")
    assert response.status_code == 200 and response.json()["is_active"] is False
    world.strategy.refresh_from_db()
    assert not PeriodicTask.objects.get(pk=world.strategy.periodic_task_id).enabled


def test_strategy_api_run_answers_with_the_execution(world, api_of, django_capture_on_commit_callbacks):
    world.running.status = "FAILED"
    world.running.error = "test"
    world.running.finished_at = world.running.started_at
    world.running.save()
    with django_capture_on_commit_callbacks() as callbacks:
        response = api_of(world.user).post(f"/api/strategies/{world.strategy.pk}/run/")
    assert response.status_code == 202
    assert response.json()["status"] == "RUNNING" and response.json()["trigger"] == "manual"
    assert len(callbacks) == 1
    again = api_of(world.user).post(f"/api/strategies/{world.strategy.pk}/run/")
    assert again.status_code == 409


def test_indicator_configuration_api_validates_parameters(world, api_of):
    client = api_of(world.user)
    bad = client.post(
        "/api/indicators/configurations/",
        {"name": "Fast MACD", "indicator_type": "MACD", "parameters": {"fast": 30, "slow": 10}},
        format="json",
    )
    assert bad.status_code == 400 and "shorter than slow" in bad.json()["parameters"][0]
    good = client.post("/api/indicators/configurations/", {"name": "MACD", "indicator_type": "MACD"}, format="json")
    assert good.status_code == 201
    assert IndicatorConfig.objects.get(pk=good.json()["id"]).parameters == {"fast": 12, "slow": 26, "signal": 9}


def test_available_indicators_list_the_registry(world, api_of):
    data = api_of(world.user).get("/api/indicators/available/").json()
    assert data["BB"]["params"]["std"]["default"] == 2.0


def test_manual_order_api_places_through_the_service_and_refuses_bad_input(world, api_of):
    client = api_of(world.user)
    bad = client.post(
        "/api/orders/",
        {"broker_connection": world.connection.pk, "symbol": world.symbol.pk, "side": "BUY", "quantity": "2"},
        format="json",
    )
    assert bad.status_code == 400 and "limit_price" in bad.json()
    good = client.post(
        "/api/orders/",
        {
            "broker_connection": world.connection.pk,
            "symbol": world.symbol.pk,
            "side": "BUY",
            "quantity": "2",
            "limit_price": "100.25",
            "client_order_id": "m-" + "a" * 24,
        },
        format="json",
    )
    assert good.status_code == 201, good.json()
    order = Order.objects.get(client_order_id="m-" + "a" * 24)
    assert order.owner == world.user and good.json()["status_changes"]


def test_cancel_api_moves_an_open_order(world, api_of):
    pending = OrderFactory(owner=world.user, symbol=world.symbol, broker_connection=world.connection)
    response = api_of(world.user).post(f"/api/orders/{pending.pk}/cancel/")
    assert response.status_code == 200
    assert response.json()["status"] == OrderStatus.CANCELLED


def test_prompt_api_adds_versions_and_refuses_bad_templates(world, api_of):
    client = api_of(world.user)
    bad = client.post(f"/api/prompts/{world.prompt.pk}/versions/", {"body": "{% if %}"}, format="json")
    assert bad.status_code == 400 and "body" in bad.json()
    good = client.post(f"/api/prompts/{world.prompt.pk}/versions/", {"body": "Now {{ now }}"}, format="json")
    assert good.status_code == 201 and good.json()["number"] == 3


def test_portfolio_api_values_statistics_and_refresh(world, api_of):
    client = api_of(world.user)
    current = client.get("/api/portfolio/").json()
    assert current["positions"][0]["symbol"] == world.symbol.symbol
    assert "win_rate" in client.get("/api/portfolio/statistics/").json()
    refreshed = client.post("/api/portfolio/refresh/")
    assert refreshed.status_code == 201 and refreshed.json()["total_value"] == current["total_value"]


def test_symbol_search_api(world, api_of):
    SymbolFactory(symbol="KO", name="Coca-Cola")
    rows = api_of(world.user).get("/api/symbols/search/?q=coca").json()
    assert [row["symbol"] for row in rows] == ["KO"]


def test_strategy_api_run_of_a_paused_strategy_is_409_with_the_reason_and_starts_nothing(
    world, api_of, django_capture_on_commit_callbacks
):
    # given a paused strategy with nothing running
    world.running.status = "FAILED"
    world.running.error = "test"
    world.running.finished_at = world.running.started_at
    world.running.save()
    api_of(world.user).post(f"/api/strategies/{world.strategy.pk}/pause/")
    executions = world.strategy.executions.count()

    # when the owner asks to run it now
    with django_capture_on_commit_callbacks() as callbacks:
        response = api_of(world.user).post(f"/api/strategies/{world.strategy.pk}/run/")

    # then it is refused with the reason, and nothing is created or enqueued
    assert response.status_code == 409
    assert response.json() == {"detail": f"{world.strategy.name} is paused: resume it first"}
    assert world.strategy.executions.count() == executions
    assert callbacks == []


def test_manual_sell_api_without_a_holding_is_400_and_records_nothing(world, api_of):
    # given the owner holds no open position in the symbol
    Position.objects.filter(owner=world.user, symbol=world.symbol).update(closed_at=timezone.now(), quantity=0)
    before = Order.objects.count()

    # when a manual SELL is posted
    response = api_of(world.user).post(
        "/api/orders/",
        {
            "broker_connection": world.connection.pk,
            "symbol": world.symbol.pk,
            "side": "SELL",
            "quantity": "5",
            "limit_price": "100.25",
        },
        format="json",
    )

    # then it is refused with the reason, and nothing is recorded or sent
    assert response.status_code == 400
    assert response.json()["non_field_errors"][0].startswith(f"you hold no {world.symbol.symbol} on this account")
    assert Order.objects.count() == before


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("/api/signals/?action=FOO", "action"),
        ("/api/signals/?outcome=MAYBE", "outcome"),
        ("/api/signals/?strategy=abc", "strategy"),
        ("/api/orders/?status=LOST", "status"),
        ("/api/executions/?status=DONE", "status"),
        ("/api/executions/?strategy=x", "strategy"),
    ],
    ids=[
        "signal-action",
        "signal-outcome",
        "signal-strategy",
        "order-status",
        "execution-status",
        "execution-strategy",
    ],
)
def test_a_list_filter_with_an_unknown_value_is_a_400_naming_the_parameter(url, field, world, api_of):
    # when a list is asked for with a filter value that does not exist
    response = api_of(world.user).get(url)

    # then the answer is a 400 that says which parameter is wrong, not an empty list
    assert response.status_code == 400
    assert list(response.json()) == [field]


def test_valid_list_filters_still_filter_case_insensitively_and_blank_is_no_filter(world, api_of):
    client = api_of(world.user)
    sell = TradingSignalFactory(strategy=world.strategy, sell=True)
    signals = set(TradingSignal.objects.filter(strategy__owner=world.user).values_list("pk", flat=True))
    open_orders = set(Order.objects.filter(owner=world.user).open().values_list("pk", flat=True))
    assert len(signals) > 1 and open_orders

    def ids(url: str, key: str = "id") -> set:
        response = client.get(url)
        assert response.status_code == 200, response.json()
        return {row[key] for row in response.json()["results"]}

    assert ids("/api/signals/?action=sell") == {sell.pk}
    assert ids("/api/signals/?action=") == signals
    assert ids("/api/orders/?status=open") == open_orders
    running = {str(pk) for pk in world.strategy.executions.filter(status="RUNNING").values_list("pk", flat=True)}
    assert ids("/api/executions/?status=running", "execution_id") == running
    assert ids(f"/api/executions/?status=running&strategy={world.strategy.pk}", "execution_id") == running


@pytest.mark.parametrize(
    "url",
    [
        "/api/executions/not-a-uuid/",
        "/api/lineage/execution/not-a-uuid/",
        "/api/no-such-thing/",
        "/api/orders/999999999/",
    ],
    ids=["execution-not-a-uuid", "lineage-not-a-uuid", "unknown-address", "missing-order"],
)
def test_api_404s_are_json(url, world, api_of):
    response = api_of(world.user).get(url)

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert "detail" in response.json()
