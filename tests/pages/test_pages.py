"""The pages: the strategy create flow, HTMX partials, polling that stops, inline errors, writes through services."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from rest_framework.authtoken.models import Token

from core.models import UserProfile
from market.models import IndicatorConfig
from orders.models import Order, OrderSource
from orders.statuses import OrderStatus
from portfolio.models import Position
from signals_app.models import PromptVersion
from tests.factories import (
    IndicatorConfigFactory,
    OrderFactory,
    StrategyExecutionFactory,
    SymbolFactory,
)
from tests.pages.conftest import TINY_PNG
from trading.models import ExecutionStatus, Strategy, StrategyExecution

HTMX = {"HTTP_HX_REQUEST": "true"}


def _walk_create_flow(client, *, symbol, indicators, connection, cron="*/15 9-16 * * 1-5", name="Flow test"):
    """POST every step of the create flow, as a browser without JavaScript would; returns the last response."""
    steps = [
        (
            "symbol",
            {"symbol-name": name, "symbol-symbol": symbol.pk, "symbol-bar_size": "1d", "symbol-lookback_bars": 120},
        ),
        ("indicators", {"indicators-indicators": [i.pk for i in indicators]}),
        ("prompt", {"prompt-analyst": "rules", "prompt-llm_model": ""}),
        (
            "schedule",
            {
                "schedule-schedule_cron": cron,
                "schedule-schedule_timezone": "America/New_York",
                "schedule-market_data_source": "stored",
                "schedule-max_bar_age_bars": "2",
                "schedule-trading_days_only": "on",
                "schedule-broker_connection": connection.pk,
            },
        ),
        (
            "risk",
            {
                "risk-risk_per_trade": "0.0100",
                "risk-max_position_value": "5000",
                "risk-max_open_positions": 1,
                "risk-daily_loss_limit": "500",
                "risk-max_orders_per_day": 3,
                "risk-min_confidence": "0.6",
                "risk-reward_risk_ratio": "2",
            },
        ),
    ]
    response = None
    for step, data in steps:
        response = client.post(f"/strategies/new/{step}/", data)
        if response.status_code != 302:
            return step, response
    return "done", response


def test_create_flow_makes_a_scheduled_strategy_with_its_indicators(owner, owner_client, world):
    # given a symbol and two of the owner's indicator configurations
    symbol = SymbolFactory(symbol="AAPL")
    second = IndicatorConfigFactory(owner=owner, name="EMA 20", indicator_type="EMA", parameters={"period": 20})
    # when the owner walks symbol → indicators → prompt → schedule → risk
    step, response = _walk_create_flow(
        owner_client, symbol=symbol, indicators=[world.indicator, second], connection=world.connection
    )
    # then the strategy exists, belongs to them, with both indicators in order and a beat task for its schedule
    assert step == "done"
    strategy = Strategy.objects.get(owner=owner, name="Flow test")
    assert response["Location"] == f"/strategies/{strategy.pk}/"
    assert strategy.symbol == symbol
    assert strategy.max_position_value == Decimal("5000.00")
    assert strategy.broker_connection == world.connection
    assert [link.indicator for link in strategy.strategy_indicators.order_by("position")] == [world.indicator, second]
    task = PeriodicTask.objects.get(pk=strategy.periodic_task_id)
    assert task.enabled and task.crontab.minute == "*/15"


def test_create_flow_refuses_a_bad_cron_where_it_was_typed_and_saves_nothing(owner, owner_client, world):
    symbol = SymbolFactory(symbol="MSFT")
    step, response = _walk_create_flow(
        owner_client, symbol=symbol, indicators=[], connection=world.connection, cron="every minute", name="Bad cron"
    )
    # the schedule step shows the error next to the field; no strategy was made
    assert step == "schedule"
    assert response.status_code == 200
    assert "five fields" in response.content.decode()
    assert 'id="field-schedule-schedule_cron"' in response.content.decode()
    assert not Strategy.objects.filter(name="Bad cron").exists()


def test_create_flow_cannot_skip_ahead(owner_client, world):
    response = owner_client.get("/strategies/new/risk/?restart=1")
    assert response.status_code == 302
    response = owner_client.get("/strategies/new/risk/")
    assert response["Location"] == "/strategies/new/symbol/"


def test_create_flow_step_by_htmx_returns_the_next_step_only(owner_client, world):
    symbol = SymbolFactory(symbol="NVDA")
    response = owner_client.post(
        "/strategies/new/symbol/",
        {"symbol-name": "Htmx", "symbol-symbol": symbol.pk, "symbol-bar_size": "1d", "symbol-lookback_bars": 120},
        **HTMX,
    )
    body = response.content.decode()
    assert response.status_code == 200
    assert response["HX-Push-Url"] == "/strategies/new/indicators/"
    assert body.lstrip().startswith('<div id="wizard">')
    assert "<html" not in body
    assert world.indicator.name in body


def test_create_flow_offers_only_the_owners_indicators(owner_client, world, other_world):
    symbol = SymbolFactory(symbol="AMD")
    owner_client.post(
        "/strategies/new/symbol/",
        {"symbol-name": "Mine", "symbol-symbol": symbol.pk, "symbol-bar_size": "1d", "symbol-lookback_bars": 120},
    )
    response = owner_client.post("/strategies/new/indicators/", {"indicators-indicators": [other_world.indicator.pk]})
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()


def test_strategy_edit_shows_inline_errors_and_changes_nothing(owner_client, world):
    response = owner_client.get(f"/strategies/{world.strategy.pk}/edit/")
    form = response.context["form"]
    data = {name: value for name, value in form.initial.items() if value is not None}
    data.update(symbol=world.symbol.pk, indicators=[world.indicator.pk], schedule_cron="61 * * * *")
    data = {k: (v.pk if hasattr(v, "pk") else v) for k, v in data.items()}
    response = owner_client.post(f"/strategies/{world.strategy.pk}/edit/", data, **HTMX)
    assert response.status_code == 200
    assert "<html" not in response.content.decode()
    assert 'class="field has-error" id="field-schedule_cron"' in response.content.decode()
    world.strategy.refresh_from_db()
    assert world.strategy.schedule_cron != "61 * * * *"


def test_strategy_edit_saves_through_the_service_and_moves_the_schedule(owner_client, world):
    response = owner_client.get(f"/strategies/{world.strategy.pk}/edit/")
    data = {k: (v.pk if hasattr(v, "pk") else v) for k, v in response.context["form"].initial.items() if v is not None}
    data.update(symbol=world.symbol.pk, indicators=[world.indicator.pk], schedule_cron="0 10 * * 1-5", name="Renamed")
    response = owner_client.post(f"/strategies/{world.strategy.pk}/edit/", data)
    assert response.status_code == 302, response.context["form"].errors if response.context else ""
    world.strategy.refresh_from_db()
    assert world.strategy.name == "Renamed"
    assert PeriodicTask.objects.get(pk=world.strategy.periodic_task_id).crontab.hour == "10"


def test_pause_and_resume_switch_the_beat_task(owner_client, world):
    owner_client.post(f"/strategies/{world.strategy.pk}/pause/")
    world.strategy.refresh_from_db()
    assert not world.strategy.is_active
    assert not PeriodicTask.objects.get(pk=world.strategy.periodic_task_id).enabled
    owner_client.post(f"/strategies/{world.strategy.pk}/resume/")
    world.strategy.refresh_from_db()
    assert world.strategy.is_active
    assert PeriodicTask.objects.get(pk=world.strategy.periodic_task_id).enabled


def test_run_now_starts_a_manual_execution_and_opens_its_lineage(
    owner_client, world, django_capture_on_commit_callbacks
):
    # given no run in progress
    StrategyExecution.objects.filter(strategy=world.strategy, status="RUNNING").update(
        status="FAILED", finished_at=timezone.now(), error="test"
    )
    # when the owner presses Run now
    with django_capture_on_commit_callbacks() as callbacks:
        response = owner_client.post(f"/strategies/{world.strategy.pk}/run/")
    # then a manual execution is running, its run is enqueued after commit, and the page is its lineage
    execution = StrategyExecution.objects.get(strategy=world.strategy, status=ExecutionStatus.RUNNING)
    assert execution.trigger == "manual"
    assert len(callbacks) == 1
    assert response["Location"] == f"/lineage/?execution={execution.pk}"


def test_run_now_while_running_says_so_and_starts_nothing(owner_client, world):
    from trading.services import execution_start

    StrategyExecution.objects.filter(strategy=world.strategy, status="RUNNING").update(
        status="FAILED", finished_at=timezone.now(), error="test"
    )
    execution_start(strategy=world.strategy, trigger="manual")
    response = owner_client.post(f"/strategies/{world.strategy.pk}/run/", follow=True)
    assert "already running" in response.content.decode()
    assert StrategyExecution.objects.filter(strategy=world.strategy, status="RUNNING").count() == 1


@pytest.mark.parametrize(("running", "polls"), [(True, True), (False, False)], ids=["running-polls", "finished-stops"])
def test_lineage_panel_polls_only_while_the_execution_runs(running, polls, owner_client, world):
    execution = world.running if running else world.execution
    response = owner_client.get(f"/lineage/?execution={execution.pk}&panel=1", **HTMX)
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="execution-panel"')
    assert ('hx-trigger="every 2s"' in body) is polls


@pytest.mark.parametrize(
    ("status", "polls"),
    [(OrderStatus.SUBMITTED, True), (OrderStatus.FILLED, False), (OrderStatus.CANCELLED, False)],
    ids=["open-polls", "filled-stops", "cancelled-stops"],
)
def test_order_detail_polls_only_while_the_order_is_open(status, polls, owner, owner_client, world):
    order = OrderFactory(owner=owner, symbol=world.symbol, status=status)
    body = owner_client.get(f"/orders/{order.pk}/", **HTMX).content.decode()
    assert body.lstrip().startswith('<div id="order-status"')
    assert ('hx-trigger="every 3s"' in body) is polls


def test_order_list_stops_polling_when_no_order_is_open(owner_client, world):
    Order.objects.filter(owner=world.user).update(status=OrderStatus.CANCELLED)
    body = owner_client.get("/orders/", **HTMX).content.decode()
    assert 'hx-trigger="every 3s"' not in body


def test_manual_order_needs_a_limit_price_and_records_nothing_without_one(owner_client, world):
    before = Order.objects.count()
    response = owner_client.get("/orders/new/")
    client_order_id = response.context["form"].initial["client_order_id"]
    response = owner_client.post(
        "/orders/new/",
        {
            "client_order_id": client_order_id,
            "broker_connection": world.connection.pk,
            "symbol": world.symbol.pk,
            "side": "BUY",
            "quantity": "5",
            "order_type": "LMT",
            "tif": "DAY",
        },
        **HTMX,
    )
    assert "A limit order needs a limit price." in response.content.decode()
    assert Order.objects.count() == before


def test_manual_order_goes_through_the_order_service_once_even_when_submitted_twice(owner_client, world):
    client_order_id = owner_client.get("/orders/new/").context["form"].initial["client_order_id"]
    data = {
        "client_order_id": client_order_id,
        "broker_connection": world.connection.pk,
        "symbol": world.symbol.pk,
        "side": "BUY",
        "quantity": "5",
        "order_type": "LMT",
        "limit_price": "100.50",
        "tif": "DAY",
    }
    first = owner_client.post("/orders/new/", data)
    second = owner_client.post("/orders/new/", data)
    order = Order.objects.get(client_order_id=client_order_id)
    assert first["Location"] == second["Location"] == f"/orders/{order.pk}/"
    assert order.source == OrderSource.MANUAL and order.owner == world.user
    assert order.status_changes.exists()  # recorded and moved by the service, not written by the view


def test_manual_order_form_offers_only_the_owners_accounts(owner_client, world, other_world):
    client_order_id = owner_client.get("/orders/new/").context["form"].initial["client_order_id"]
    response = owner_client.post(
        "/orders/new/",
        {
            "client_order_id": client_order_id,
            "broker_connection": other_world.connection.pk,
            "symbol": world.symbol.pk,
            "side": "BUY",
            "quantity": "1",
            "order_type": "MKT",
            "tif": "DAY",
        },
    )
    assert response.status_code == 200
    assert not Order.objects.filter(client_order_id=client_order_id).exists()


def test_indicator_with_a_bad_parameter_is_refused_inline(owner_client, world):
    response = owner_client.post(
        "/indicators/", {"name": "Bad RSI", "indicator_type": "RSI", "parameters": "period=1"}, **HTMX
    )
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="indicator-panel"')
    assert "RSI period must be between 2 and 500" in body
    assert not IndicatorConfig.objects.filter(name="Bad RSI").exists()


def test_indicator_is_saved_with_its_defaults_filled_in(owner, owner_client, world):
    owner_client.post("/indicators/", {"name": "Bands", "indicator_type": "BB", "parameters": "std=2.5"})
    assert IndicatorConfig.objects.get(owner=owner, name="Bands").parameters == {"period": 20, "std": 2.5}


def test_indicator_type_change_fills_in_its_defaults(owner_client, world):
    body = owner_client.get("/indicators/defaults/?indicator_type=MACD", **HTMX).content.decode()
    assert 'value="fast=12, slow=26, signal=9"' in body


def test_prompt_version_that_does_not_render_is_refused_inline(owner_client, world):
    response = owner_client.post(
        f"/prompts/{world.prompt.pk}/", {"body": "Analyse {{ no_such_thing }}", "note": "typo"}, **HTMX
    )
    assert "unknown variable" in response.content.decode()
    assert world.prompt.versions.count() == 2


def test_prompt_edit_saves_a_new_version(owner_client, world):
    response = owner_client.post(f"/prompts/{world.prompt.pk}/", {"body": "Look at {{ bar_size }} bars.", "note": "n"})
    assert response.status_code == 302
    assert PromptVersion.objects.filter(template=world.prompt).order_by("-number").first().number == 3


def test_prompt_diff_shows_the_changed_lines(owner_client, world):
    body = owner_client.get(f"/prompts/{world.prompt.pk}/diff/?a=1&b=2").content.decode()
    assert '<span class="del">-Analyse {{ symbol.symbol }}.</span>' in body
    assert '<span class="add">+Analyse {{ symbol.symbol }} on {{ bar_size }} bars.</span>' in body


def test_symbol_live_search_returns_only_the_results(owner_client, world):
    SymbolFactory(symbol="TSLA", name="Tesla Inc.")
    body = owner_client.get("/symbols/?q=tesl", **HTMX).content.decode()
    assert body.lstrip().startswith('<div id="symbol-results">')
    assert "TSLA" in body and world.symbol.symbol not in body


def test_chart_image_streams_the_stored_png(owner_client, world):
    response = owner_client.get(f"/charts/{world.execution.pk}/0.png")
    assert response["Content-Type"] == "image/png"
    assert b"".join(response.streaming_content) == TINY_PNG


def test_step_detail_shows_the_signal_view_with_risk_reward(owner_client, world):
    body = owner_client.get(f"/lineage/{world.execution.pk}/parse_signal/").content.decode()
    assert "Trading signal" in body
    assert "1 : 2.00" in body  # entry 100, stop 95, target 110
    assert "Raw JSON" in body


def test_failed_step_is_highlighted_with_its_error(owner_client, world):
    from tests.factories import LineageRecordFactory

    LineageRecordFactory(execution=world.running, step_number=2, step_name="fetch_market_data", failed=True)
    body = owner_client.get(f"/lineage/?execution={world.running.pk}").content.decode()
    assert 'class="step error" id="step-fetch_market_data"' in body
    assert "upstream timed out" in body


def test_time_zone_setting_changes_how_times_are_shown(owner, owner_client, world):
    UserProfile.objects.filter(user=owner).delete()
    response = owner_client.post("/settings/", {"action": "time_zone", "time_zone": "Asia/Tokyo"})
    assert response.status_code == 302
    assert UserProfile.objects.get(user=owner).time_zone == "Asia/Tokyo"
    execution = StrategyExecutionFactory(
        strategy=world.strategy, finished=True, started_at=dt.datetime(2024, 1, 5, 14, 30, tzinfo=dt.UTC)
    )
    body = owner_client.get(f"/lineage/?execution={execution.pk}").content.decode()
    assert "Jan 5, 2024 23:30:00 JST" in body


def test_profile_is_made_on_first_visit(owner, owner_client):
    assert not UserProfile.objects.filter(user=owner).exists()
    owner_client.get("/settings/")
    assert UserProfile.objects.get(user=owner).time_zone == "America/New_York"


def test_api_token_made_on_settings_authenticates_the_api(owner, owner_client, world, client):
    response = owner_client.post("/settings/", {"action": "token_create"})
    key = response.context["new_key"]
    assert Token.objects.get(user=owner).key == key
    api = client.get("/api/strategies/", HTTP_AUTHORIZATION=f"Token {key}")
    assert api.status_code == 200
    assert api.json()["results"][0]["name"] == world.strategy.name
    owner_client.post("/settings/", {"action": "token_revoke"})
    revoked = client.get("/api/strategies/", HTTP_AUTHORIZATION=f"Token {key}")
    assert revoked.status_code == 403  # DRF answers 403 when session auth comes first
    assert revoked.json()["detail"] == "Invalid token."


def test_kill_switch_stops_entries_on_every_strategy_of_the_owner_only(owner_client, world, other_world):
    owner_client.post("/kill-switch/", {"engage": "on"})
    assert Strategy.objects.get(pk=world.strategy.pk).kill_switch
    assert not Strategy.objects.get(pk=other_world.strategy.pk).kill_switch


def test_logs_show_failures_and_rejections(owner, owner_client, world):
    from tests.factories import LineageRecordFactory

    LineageRecordFactory(
        execution=world.running, step_number=4, step_name="generate_charts", error="disk full", failed=True
    )
    OrderFactory(owner=owner, symbol=world.symbol, status=OrderStatus.REJECTED, status_reason="price band")
    body = owner_client.get("/logs/").content.decode()
    assert "generate_charts: disk full" in body
    assert "price band" in body
    only_failures = owner_client.get("/logs/?kind=failures").content.decode()
    assert "disk full" in only_failures and "price band" not in only_failures


def test_dashboard_shows_money_as_money(owner_client, world):
    body = owner_client.get("/").content.decode()
    assert "$100,001.00" in body  # the newest snapshot: 99,001 cash + 1,000 in positions
    assert "$99,001.00" in body


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("1234.5"), "$1,234.50"),
        (Decimal("-12.345"), "−$12.35"),
        (Decimal("0"), "$0.00"),
        (None, "—"),
    ],
    ids=["thousands", "negative-rounds", "zero", "missing"],
)
def test_money_filter(value, expected):
    from core.templatetags.ui import money

    assert money(value) == expected


def test_prompt_preview_renders_a_version_with_the_strategys_data(owner_client, world):
    response = owner_client.get(f"/prompts/{world.prompt.pk}/preview/?strategy={world.strategy.pk}&version=2", **HTMX)
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="preview"')
    assert f"Analyse {world.symbol.symbol} on 1d bars." in body


def test_logs_list_stored_notifications_under_their_filter(owner_client, world):
    # given the world's stored fill notification, and a failed-run notification whose webhook answered 503
    from tests.factories import NotificationFactory

    NotificationFactory(
        execution=world.running,
        subject=f"Run failed: {world.strategy.name}",
        delivery__default_key="webhook",
        delivery__destination="jsons://hooks.example.com/trading",
        delivery__state="failed",
        delivery__error="Failed to send JSON POST notification: Service Unavailable, error=503.",
    )
    # when the owner filters the logs to notifications
    body = owner_client.get("/logs/?kind=notifications").content.decode()
    # then both are listed with their kind, and the failed channel says why
    assert f"Order filled: Filled: BUY 10 {world.symbol.symbol} @ 100.00" in body
    assert (
        f"Run failed: Run failed: {world.strategy.name} — jsons://hooks.example.com/trading failed: "
        "Failed to send JSON POST notification: Service Unavailable" in body
    )
    assert f'href="/orders/{world.order.pk}/"' in body
    assert f"?execution={world.running.pk}" in body
    # and nothing else: runs, failures and rejections stay under their own filters
    assert "manual run" not in body
    assert "run</td>" not in body


def test_logs_show_notifications_with_everything_else_and_follow_the_text_filter(owner_client, world):
    from tests.factories import NotificationFactory

    NotificationFactory(execution=world.running, subject="Run failed: chart store unreachable")
    everything = owner_client.get("/logs/").content.decode()
    assert "Run failed: chart store unreachable" in everything and "manual run" in everything
    narrowed = owner_client.get("/logs/?kind=notifications&q=unreachable").content.decode()
    assert "chart store unreachable" in narrowed and "Filled: BUY 10" not in narrowed


def test_logs_notifications_follow_the_strategy_filter(owner, owner_client, world):
    from tests.factories import NotificationFactory, StrategyExecutionFactory, StrategyFactory

    elsewhere = StrategyFactory(owner=owner, name="Another swing", symbol=world.symbol)
    NotificationFactory(execution=StrategyExecutionFactory(strategy=elsewhere), subject="Run failed: Another swing")
    body = owner_client.get(f"/logs/?kind=notifications&strategy={world.strategy.pk}").content.decode()
    assert "Filled: BUY 10" in body and "Run failed: Another swing" not in body


def test_logs_never_show_another_users_notifications(owner_client, world, other_world):
    from tests.factories import NotificationFactory

    NotificationFactory(execution=other_world.running, subject="Run failed: someone else's secret")
    body = owner_client.get("/logs/?kind=notifications").content.decode()
    assert "someone else" not in body and other_world.symbol.symbol not in body


@pytest.mark.parametrize("url", ["/", "/strategies/", "/signals/", "/orders/", "/lineage/", "/logs/", "/charts/"])
def test_replay_runs_do_not_flood_the_live_pages(url, owner, owner_client, world):
    from replays.models import Replay
    from tests.factories import StrategyFactory, TradingSignalFactory

    # given a replay's own copy of a strategy, with a run, a signal and an order of its own (never a notification:
    # trading.notifications refuses a replay's runs)
    shadow = StrategyFactory(
        owner=owner, name="Replay copy of swing", symbol=world.symbol, is_replay=True, broker_connection__is_replay=True
    )
    Replay.objects.create(
        owner=owner,
        strategy=world.strategy,
        shadow_strategy=shadow,
        symbol=world.symbol,
        bar_size="1d",
        start=dt.date(2020, 1, 1),
        end=dt.date(2020, 12, 31),
        analyst="rules",
    )
    run = StrategyExecutionFactory(strategy=shadow, finished=True, trigger="replay", error="Replay copy of swing")
    TradingSignalFactory(strategy=shadow, execution=run, reasoning="Replay copy of swing")
    OrderFactory(owner=owner, strategy=shadow, symbol=world.symbol, status_reason="Replay copy of swing")
    # when the owner opens a live page, then nothing of the replay shows
    assert "Replay copy of swing" not in owner_client.get(url).content.decode()


@pytest.mark.parametrize(
    ("offset", "limit"), [(0, 5), (5, 5), (12, 10), (30, 5)], ids=["first", "second", "tail", "past-end"]
)
def test_newest_signals_merge_matches_a_plain_sort(offset, limit, owner, world):
    from signals_app.listing import newest_signal_ids
    from signals_app.models import TradingSignal
    from tests.factories import StrategyFactory, TradingSignalFactory

    # given three strategies whose signals interleave in time, two of them at the same instant
    strategies = [world.strategy, *(StrategyFactory(owner=owner, symbol=world.symbol) for _ in range(2))]
    start = timezone.now() - dt.timedelta(days=30)
    for n in range(21):
        TradingSignalFactory(strategy=strategies[n % 3], generated_at=start + dt.timedelta(hours=n // 2))
    ids = [s.pk for s in strategies]
    expected = list(
        TradingSignal.objects.filter(strategy__in=ids).order_by("-generated_at", "-id").values_list("id", flat=True)
    )[offset : offset + limit]
    # when the newest are read through the per-strategy merge, then the page is exactly the plain sort's page
    assert newest_signal_ids(TradingSignal.objects.all(), ids, offset=offset, limit=limit) == expected


def test_signals_list_pages_without_counting(owner, owner_client, world):
    from tests.factories import TradingSignalFactory

    for _ in range(55):
        TradingSignalFactory(strategy=world.strategy)
    first = owner_client.get("/signals/").content.decode()
    assert "Older →" in first and "← Newer" not in first
    second = owner_client.get("/signals/?page=2").content.decode()
    assert "← Newer" in second and "Older →" not in second
    assert len(re.findall(r'href="/signals/\d+/"', second)) == 6  # 56 signals: 50 on the first page, 6 here


SECDEF_SEARCH_AAPL = [  # /iserver/secdef/search as the Client Portal answers it (conid is a string)
    {
        "conid": "265598",
        "companyHeader": "APPLE INC - NASDAQ",
        "companyName": "APPLE INC",
        "symbol": "AAPL",
        "description": "NASDAQ",
        "restricted": None,
        "sections": [{"secType": "STK"}],
    },
    {
        "conid": "38708077",
        "companyHeader": "APPLE INC - MEXI",
        "companyName": "APPLE INC",
        "symbol": "AAPL",
        "description": "MEXI",
        "restricted": None,
        "sections": [{"secType": "STK"}],
    },
]


def test_ibkr_contract_search_lists_the_gateways_contracts(owner, owner_client, world):
    import responses

    from market.models import Symbol
    from tests.factories import BrokerConnectionFactory

    gateway = BrokerConnectionFactory(owner=owner, ibkr=True)
    with responses.RequestsMock() as gateway_mock:
        gateway_mock.get(f"{gateway.gateway_url}/iserver/secdef/search", json=SECDEF_SEARCH_AAPL)
        body = owner_client.get("/symbols/?q=aapl&source=ibkr").content.decode()
    assert 'id="ibkr-contracts"' in body
    assert "265598" in body and "38708077" in body
    assert Symbol.objects.get(conid=265598).exchange == "NASDAQ"


def test_ibkr_contract_search_says_when_the_gateway_is_logged_out(owner, owner_client, world):
    import responses

    from tests.factories import BrokerConnectionFactory

    gateway = BrokerConnectionFactory(owner=owner, ibkr=True, gateway_url="https://gw.example:5000/v1/api")
    with responses.RequestsMock() as gateway_mock:
        gateway_mock.get(
            f"{gateway.gateway_url}/iserver/secdef/search", status=401, json={"error": "not authenticated"}
        )
        body = owner_client.get("/symbols/?q=msft&source=ibkr").content.decode()
    assert "IBKR:" in body and "log in on its page" in body


def test_ibkr_allowed_questions_are_edited_inline(owner_client, world):
    bad = owner_client.post(f"/ibkr/{world.connection.pk}/questions/", {"allowed_question_ids": "o163, yes"}, **HTMX)
    assert 'class="errorlist' in bad.content.decode() and "Not an IBKR message id: yes" in bad.content.decode()
    good = owner_client.post(f"/ibkr/{world.connection.pk}/questions/", {"allowed_question_ids": "o163, o383"}, **HTMX)
    assert good.content.decode().lstrip().startswith(f'<form id="questions-{world.connection.pk}"')
    world.connection.refresh_from_db()
    assert world.connection.allowed_question_ids == ["o163", "o383"]


def test_every_page_carries_the_csrf_token_for_htmx(owner_client, world):
    body = owner_client.get("/").content.decode()
    assert '<body hx-headers=\'{"X-CSRFToken": "' in body
    assert "/static/vendor/htmx/htmx.min.js" in body


def test_dashboard_strategies_refresh_while_a_run_is_going_and_stop_after(owner_client, world):
    # given the strategy's latest run is still running, then the strategies panel polls itself
    body = owner_client.get("/", **HTMX).content.decode()
    assert body.lstrip().startswith('<section class="card" id="strategies"')
    assert 'hx-trigger="every 3s"' in body
    # when the run finishes, then the next refresh carries no trigger: polling stops
    StrategyExecution.objects.filter(pk=world.running.pk).update(status="COMPLETED", finished_at=timezone.now())
    assert 'hx-trigger="every 3s"' not in owner_client.get("/", **HTMX).content.decode()


def test_run_now_on_a_paused_strategy_says_resume_it_first_and_starts_nothing(
    owner_client, world, django_capture_on_commit_callbacks
):
    # given a paused strategy with nothing running
    StrategyExecution.objects.filter(strategy=world.strategy, status="RUNNING").update(
        status="FAILED", finished_at=timezone.now(), error="test"
    )
    world.strategy.is_active = False
    world.strategy.save()
    executions = StrategyExecution.objects.filter(strategy=world.strategy).count()

    # when the owner presses Run now
    with django_capture_on_commit_callbacks() as callbacks:
        response = owner_client.post(f"/strategies/{world.strategy.pk}/run/", follow=True)

    # then the strategy page says it is paused, and no run is created or enqueued
    assert response.redirect_chain[-1][0] == f"/strategies/{world.strategy.pk}/"
    page = response.content.decode()
    assert f"{world.strategy.name} is paused: resume it first" in page
    assert "Started a run" not in page
    assert StrategyExecution.objects.filter(strategy=world.strategy).count() == executions
    assert callbacks == []


def test_lineage_without_parameters_shows_the_latest_run_the_selector_has_selected(owner_client, world):
    # given runs of the owner's strategy, the latest one still running
    latest = StrategyExecution.objects.filter(strategy__owner=world.user).order_by("-started_at").first()

    # when the owner opens /lineage/ with no parameters
    body = owner_client.get("/lineage/").content.decode()

    # then the page shows that run, and the selector marks it selected
    assert "Choose a strategy or an execution" not in body
    assert f'<span class="muted small mono">{latest.pk}</span>' in body
    assert re.search(rf'<option id="execution-option-{latest.pk}" value="{latest.pk}" selected>', body)
    assert body.count(" selected>") == 1  # no strategy chosen: "Recent runs of all strategies"


def test_lineage_poll_carries_the_selectors_label_with_the_runs_current_status(owner_client, world):
    # given the lineage page of a run that was RUNNING when it was drawn
    page = owner_client.get(f"/lineage/?execution={world.running.pk}").content.decode()
    assert re.search(rf'id="execution-option-{world.running.pk}"[^>]*>[^<]* · RUNNING<', page)
    StrategyExecution.objects.filter(pk=world.running.pk).update(
        status=ExecutionStatus.SKIPPED, skip_reason="inactive", finished_at=timezone.now(), error="test"
    )

    # when the panel polls
    body = owner_client.get(f"/lineage/?execution={world.running.pk}&panel=1", **HTMX).content.decode()

    # then the response swaps the selector's option out of band with the run's status now
    option = re.search(
        rf'<option id="execution-option-{world.running.pk}"[^>]*hx-swap-oob="true">([^<]*)</option>', body
    )
    assert option is not None
    assert option.group(1).endswith(" · SKIPPED")
    assert 'hx-trigger="every 2s"' not in body


def test_lineage_poll_from_the_all_strategies_page_keeps_the_strategy_in_the_label(owner_client, world):
    page = owner_client.get(f"/lineage/?execution={world.running.pk}&all=1").content.decode()
    assert "&amp;all=1" in page  # the panel polls as the all-strategies page

    body = owner_client.get(f"/lineage/?execution={world.running.pk}&panel=1&all=1", **HTMX).content.decode()

    assert re.search(rf'id="execution-option-{world.running.pk}"[^>]*>[^<]* · RUNNING · {world.strategy.name}<', body)


def test_manual_sell_without_a_holding_is_a_form_error_and_records_nothing(owner_client, world):
    # given the owner holds no open position in the symbol
    Position.objects.filter(owner=world.user, symbol=world.symbol).update(closed_at=timezone.now(), quantity=0)
    before = Order.objects.count()
    client_order_id = owner_client.get("/orders/new/").context["form"].initial["client_order_id"]

    # when a manual SELL is submitted
    response = owner_client.post(
        "/orders/new/",
        {
            "client_order_id": client_order_id,
            "broker_connection": world.connection.pk,
            "symbol": world.symbol.pk,
            "side": "SELL",
            "quantity": "5",
            "order_type": "LMT",
            "limit_price": "100.50",
            "tif": "DAY",
        },
        **HTMX,
    )

    # then the form says why, and no order is recorded or sent
    assert response.status_code == 200
    assert f"you hold no {world.symbol.symbol} on this account" in response.content.decode()
    assert Order.objects.count() == before
