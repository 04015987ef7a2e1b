"""`manage.py ibkr ...` against a loopback gateway: real HTTP, the recorded payload shapes."""

import os
import subprocess
import sys
from decimal import Decimal
from io import StringIO

import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command

from orders.models import Order
from orders.statuses import OrderStatus
from tests.brokers.gateway import AAPL, FakeGateway, LoopbackGateway
from tests.factories import BrokerConnectionFactory


@pytest.fixture
def loopback(settings, db):
    fake = FakeGateway(slow_interval=5.0)
    with LoopbackGateway(fake) as server:
        settings.IBKR_GATEWAY_URL = server.url
        settings.IBKR_ACCOUNT_ID = ""
        settings.IBKR_VERIFY_TLS = "false"
        settings.IBKR_TIMEOUT_SECONDS = 5.0
        yield fake
    assert fake.violations == []


def ibkr(*args) -> str:
    out = StringIO()
    call_command("ibkr", *args, stdout=out)
    return out.getvalue()


def test_status_shows_the_session_state(loopback):
    output = ibkr("status")

    assert "authenticated  True" in output
    assert "competing  False" in output
    assert "JifN19053" in output


def test_status_points_at_the_gateways_login_page_when_not_logged_in(loopback):
    loopback.bridge = False

    output = ibkr("status")

    assert "authenticated  False" in output
    assert "log in on the gateway's own page" in output


def test_accounts_lists_the_selected_account(loopback):
    assert "*  DU123456  paper" in ibkr("accounts")


def test_search_prints_numeric_conids(loopback):
    output = ibkr("search", "AAPL")

    assert "265598  AAPL  NASDAQ  APPLE INC" in output
    assert "38708077  AAPL  MEXI" in output


def test_history_prints_session_dates_and_shares(loopback):
    loopback.history[AAPL] = [
        {"o": 212.43, "h": 213.94, "l": 210.58, "c": 212.33, "v": 266616.18, "t": 1747229400000},
        {"o": 210.95, "h": 212.96, "l": 209.54, "c": 211.45, "v": 256847.25, "t": 1747315800000},
    ]

    output = ibkr("history", str(AAPL), "--period", "1w", "--bar", "1d")

    assert output.splitlines() == [
        "2025-05-14  212.43  213.94  210.58  212.33  26661618",
        "2025-05-15  210.95  212.96  209.54  211.45  25684725",
    ]


def test_summary_prints_cash_and_buying_power(loopback):
    output = ibkr("summary")

    assert "cash  10000.0  USD" in output
    assert "buying power  10000.0  USD" in output


def test_positions_prints_each_holding(loopback):
    loopback.positions[AAPL] = {"qty": Decimal("5"), "avg": Decimal("190")}

    assert "AAPL  265598  5.0  avg 190.0" in ibkr("positions")


def test_order_goes_through_the_order_service_and_prints_its_final_state(loopback, owner):
    output = ibkr("order", "--side", "buy", "--symbol", "AAPL", "--qty", "5", "--limit", "99.75", "--user", "owner")

    order = Order.objects.get()
    assert order.status == OrderStatus.SUBMITTED
    assert order.owner == owner
    assert order.conid == AAPL
    assert f"order  {order.client_order_id}  SUBMITTED  broker id {order.broker_order_id}" in output
    assert loopback.by_ref(order.client_order_id)["price"] == "99.75"


def test_order_refused_by_the_guard_prints_the_reason(loopback, owner):
    output = ibkr("order", "--side", "BUY", "--symbol", "AAPL", "--qty", "5", "--limit", "150", "--user", "owner")

    assert "REJECTED" in output
    assert "ORDER_PRICE_BAND" in output
    assert loopback.order_posts() == 0


def test_orders_lists_the_session_orders_after_a_forced_refresh(loopback, owner):
    ibkr("order", "--side", "BUY", "--symbol", "AAPL", "--qty", "5", "--limit", "99.75", "--user", "owner")

    output = ibkr("orders")

    order = Order.objects.get()
    assert f"{order.broker_order_id}  {order.client_order_id}  BUY  5.0  AAPL  LMT  SUBMITTED" in output
    assert loopback.count("GET", r"/iserver/account/orders") == 2


def test_an_order_without_an_owner_is_refused_before_anything_is_sent(loopback):
    with pytest.raises(CommandError, match="--user"):
        ibkr("order", "--side", "BUY", "--symbol", "AAPL", "--qty", "5")
    assert loopback.order_posts() == 0


def test_a_logged_out_gateway_is_a_clear_error(loopback):
    loopback.authenticated = False

    with pytest.raises(CommandError, match="NotAuthenticated"):
        ibkr("summary")


# --- no gateway, or a gateway URL that is not one: a clear error, never a traceback ----------------------------------


def run_from_shell(*args: str) -> subprocess.CompletedProcess:
    """The command as a user runs it: a CommandError ends as one line on stderr and exit status 1."""
    return subprocess.run(
        [sys.executable, "manage.py", "ibkr", *args],
        cwd=django_settings.BASE_DIR,
        env={**os.environ, "IBKR_GATEWAY_URL": "", "IBKR_ACCOUNT_ID": ""},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.django_db
@pytest.mark.parametrize("action", [["status"], ["summary"], ["search", "AAPL"]], ids=["status", "summary", "search"])
def test_no_gateway_configured_is_a_clear_error(settings, action):
    settings.IBKR_GATEWAY_URL = ""

    with pytest.raises(CommandError, match="IBKR_GATEWAY_URL is not set"):
        ibkr(*action)


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["not-a-url", "localhost:5000/v1/api", "ftp://localhost/v1/api"])
def test_a_gateway_url_that_is_not_http_is_a_clear_error(settings, url):
    settings.IBKR_GATEWAY_URL = url

    with pytest.raises(CommandError, match="is not an http\\(s\\) URL"):
        ibkr("status")


def test_no_gateway_from_the_shell_prints_one_line_and_exits_non_zero():
    result = run_from_shell("status")

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().startswith("CommandError: NotAuthenticated:")
    assert "IBKR_GATEWAY_URL is not set" in result.stderr
    assert result.stdout == ""


def test_connection_is_accepted_before_or_after_the_action(loopback, owner):
    connection = BrokerConnectionFactory(
        ibkr=True, owner=owner, name="paper", gateway_url=django_settings.IBKR_GATEWAY_URL
    )

    before = ibkr("--connection", "paper", "status")
    after = ibkr("status", "--connection", str(connection.pk))

    assert "authenticated  True" in before
    assert before == after


@pytest.mark.django_db
def test_an_unknown_connection_after_the_action_is_a_clear_error():
    with pytest.raises(CommandError, match="no IBKR connection 'nope'"):
        ibkr("status", "--connection", "nope")


def test_a_sell_without_a_holding_is_refused_before_anything_is_sent(loopback, owner):
    with pytest.raises(CommandError, match="you hold no AAPL on this account: a SELL can only close"):
        ibkr("order", "--side", "SELL", "--symbol", "AAPL", "--qty", "5", "--limit", "99.75", "--user", "owner")

    assert not Order.objects.exists()
    assert loopback.order_posts() == 0
