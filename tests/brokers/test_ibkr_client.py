"""The IBKR client and broker at the HTTP boundary: session, contracts, market data, portfolio, errors and the shared
rate limits, against the strict fake gateway."""

import datetime as dt
import time
from decimal import Decimal

import pytest
import responses

from brokers.bars import IbkrBarSource, history_period
from brokers.ibkr import IbkrBroker, session_keepalive
from brokers.interface import DuplicateClientOrderId, NotAuthenticated, OutcomeUnknown, RateLimited, Rejected, Transient
from brokers.services import broker_for
from market.models import BarSize, Symbol
from tests.brokers.conftest import make_ibkr_broker
from tests.brokers.gateway import AAPL, ACCOUNT, FakeGateway, install_responses
from tests.factories import BrokerConnectionFactory


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (NotAuthenticated("x"), False),
        (RateLimited("x"), True),
        (Rejected("x"), False),
        (Transient("x"), True),
        (OutcomeUnknown("x"), False),
        (DuplicateClientOrderId("x"), False),
    ],
    ids=lambda v: type(v).__name__ if not isinstance(v, bool) else str(v),
)
def test_each_error_says_whether_a_retry_can_help(error, retryable):
    assert error.retryable is retryable


def test_rejected_carries_its_reason():
    assert Rejected("insufficient funds").reason == "insufficient funds"


# --- connection --------------------------------------------------------------------------------------------------


def test_broker_for_none_uses_the_environment_gateway(settings):
    settings.IBKR_GATEWAY_URL = "https://localhost:5000/v1/api"
    settings.IBKR_ACCOUNT_ID = "DU7654321"
    settings.IBKR_VERIFY_TLS = "/etc/ssl/gateway-ca.pem"

    broker = broker_for(None)

    assert isinstance(broker, IbkrBroker)
    assert broker.client.base_url == "https://localhost:5000/v1/api"
    assert broker.client.account_id == "DU7654321"
    assert broker.client.verify == "/etc/ssl/gateway-ca.pem"
    assert broker.client.timeout == settings.IBKR_TIMEOUT_SECONDS


def test_broker_for_none_without_a_gateway_is_a_typed_error(settings):
    settings.IBKR_GATEWAY_URL = ""

    with pytest.raises(NotAuthenticated, match="IBKR_GATEWAY_URL"):
        broker_for(None)


def test_broker_for_an_ibkr_connection_reads_its_gateway_and_tls_setting(ibkr_connection):
    broker = broker_for(ibkr_connection)

    assert broker.client.base_url == ibkr_connection.gateway_url
    assert broker.client.verify is False
    assert broker.allowed_question_ids == {"o163", "o383", "o451", "o10331"}


# --- contracts ---------------------------------------------------------------------------------------------------


def test_search_turns_string_conids_into_numbers_and_caches_them_in_symbols_and_the_cache(ibkr, gateway):
    first = ibkr.search("aapl")
    second = ibkr.search("AAPL")

    assert [(c.conid, c.exchange) for c in first] == [(265598, "NASDAQ"), (38708077, "MEXI")]
    assert second == first
    assert gateway.count("GET", r"/iserver/secdef/search") == 1
    assert Symbol.objects.get(conid=38708077).exchange == "MEXI"


def test_stock_conid_picks_the_us_listing(ibkr):
    contract = ibkr.stock_conid("AAPL")

    assert (contract.conid, contract.exchange) == (AAPL, "NASDAQ")


def test_contract_details_are_cached_for_an_hour(ibkr, gateway):
    first = ibkr.contract(AAPL)
    ibkr.contract(AAPL)

    assert (first.symbol, first.name, first.currency) == ("AAPL", "APPLE INC", "USD")
    assert gateway.count("GET", r"/iserver/contract/\d+/info") == 1


def test_last_price_makes_the_pre_flight_snapshot_call_first(ibkr, gateway, aapl):
    price = ibkr.last_price(aapl)

    assert price == Decimal("100.00")
    assert gateway.count("GET", r"/iserver/marketdata/snapshot") == 2
    assert gateway.calls[0] == ("GET", "/iserver/accounts")


def test_please_query_accounts_first_as_http_500_reprimes_and_repeats_once(ibkr, gateway, aapl):
    ibkr.last_price(aapl)
    gateway.reset_accounts_next = True

    assert ibkr.last_price(aapl) == Decimal("100.00")
    assert gateway.count("GET", r"/iserver/accounts") == 2


# --- portfolio ---------------------------------------------------------------------------------------------------


def test_account_summary_reads_cash_net_liquidation_and_buying_power_after_portfolio_accounts(ibkr, gateway):
    gateway.cash = Decimal("2500.50")

    summary = ibkr.account_summary()

    assert (summary.cash, summary.net_liquidation, summary.buying_power) == (
        Decimal("2500.5"),
        Decimal("2500.5"),
        Decimal("2500.5"),
    )
    assert gateway.calls.index(("GET", "/portfolio/accounts")) < gateway.calls.index(
        ("GET", "/portfolio/DU123456/summary")
    )


def test_positions_are_read_page_by_page(ibkr, gateway):
    for conid in range(1, 151):
        gateway.positions[conid] = {"qty": Decimal("2"), "avg": Decimal("10")}
        gateway.prices[conid] = Decimal("11")

    positions = ibkr.positions()

    assert len(positions) == 150
    assert gateway.count("GET", r"/portfolio/DU123456/positions/\d+") == 2
    assert positions[0].quantity == Decimal("2") and positions[0].market_price == Decimal("11.0")


def test_executions_arrive_with_string_prices_and_become_decimals(ibkr, gateway):
    order = gateway._accept([{"conid": AAPL, "side": "BUY", "orderType": "MKT", "quantity": 5, "cOID": "x-1"}])
    gateway.fill(order[0]["order_id"], Decimal("192.26"))

    [execution] = ibkr.executions()

    assert (execution.order_ref, execution.side, execution.quantity) == ("x-1", "BUY", Decimal("5.0"))
    assert execution.price == Decimal("192.26")
    assert execution.commission == Decimal("1.00")
    assert execution.executed_at.tzinfo is not None


# --- errors and limits -------------------------------------------------------------------------------------------


def test_401_is_not_authenticated_and_not_retryable(ibkr, gateway, aapl):
    gateway.authenticated = False

    with pytest.raises(NotAuthenticated) as caught:
        ibkr.last_price(aapl)
    assert caught.value.retryable is False


def test_no_bridge_is_not_authenticated_while_the_portfolio_still_answers(ibkr, gateway, aapl):
    gateway.bridge = False

    with pytest.raises(NotAuthenticated, match="no bridge"):
        ibkr.last_price(aapl)
    assert ibkr.account_summary().cash == Decimal("10000")


def test_429_backs_off_for_every_caller_without_calling_the_gateway(ibkr, ibkr_connection, gateway, aapl):
    gateway.fail_next.append((r"/iserver/marketdata/snapshot", 429, {"error": "Too many requests"}))

    with pytest.raises(RateLimited) as caught:
        ibkr.last_price(aapl)
    calls = len(gateway.calls)
    another_process = make_ibkr_broker(ibkr_connection)
    with pytest.raises(RateLimited, match="backing off"):
        another_process.account_summary()

    assert caught.value.retryable is True
    assert len(gateway.calls) == calls


def test_503_on_a_read_is_transient(ibkr, gateway):
    with pytest.raises(Transient) as caught:
        ibkr.order_status("999")  # an order from an earlier session
    assert caught.value.retryable is True


def test_open_orders_force_then_read_again_respecting_the_five_second_rule(db, aapl, gateway_url, ibkr_connection):
    strict = FakeGateway(slow_interval=5.0)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        install_responses(rsps, strict, gateway_url)
        broker = make_ibkr_broker(ibkr_connection, slow_interval=5.0)
        strict._accept([{"conid": AAPL, "side": "BUY", "orderType": "LMT", "price": 99, "quantity": 1, "cOID": "a-1"}])
        started = time.monotonic()

        orders = broker.open_orders()

    assert [o.order_ref for o in orders] == ["a-1"]
    assert strict.count("GET", r"/iserver/account/orders") == 2
    assert time.monotonic() - started >= 5.0
    assert strict.violations == []


def test_the_fake_gateway_refuses_a_string_conid_and_a_bare_array(gateway):
    gateway.accounts_primed = True

    as_string = gateway.handle("POST", "/iserver/account/DU123456/orders", {}, {"orders": [{"conid": "265598"}]})
    bare = gateway.handle("POST", "/iserver/account/DU123456/orders", {}, [{"conid": 265598, "cOID": "b"}])

    assert as_string == (400, {"error": "orders request includes parameter with incorrect type"})
    assert bare[0] == 400
    gateway.violations.clear()


# --- session keep-alive --------------------------------------------------------------------------------------------


@pytest.fixture
def keepalive_gateway(ibkr_http, ibkr_connection, gateway):
    return gateway


def test_keepalive_reopens_a_connected_but_unauthenticated_session_and_sends_the_suppression_list(
    keepalive_gateway, ibkr_connection
):
    keepalive_gateway.bridge = False  # connected, brokerage session gone

    state = session_keepalive(connection=ibkr_connection)

    assert state.can_trade
    assert keepalive_gateway.init_calls == [{"publish": True, "compete": False}]
    assert sorted(keepalive_gateway.suppressed) == sorted(ibkr_connection.allowed_question_ids)
    ibkr_connection.refresh_from_db()
    assert (ibkr_connection.authenticated, ibkr_connection.connected, ibkr_connection.competing) == (True, True, False)
    assert ibkr_connection.last_keepalive_at is not None


def test_keepalive_reports_a_competing_session_and_never_fights_it(keepalive_gateway, ibkr_connection):
    keepalive_gateway.competing = True
    keepalive_gateway.bridge = False

    state = session_keepalive(connection=ibkr_connection)

    assert not state.can_trade
    assert keepalive_gateway.init_calls == []
    ibkr_connection.refresh_from_db()
    assert ibkr_connection.competing is True
    assert "another IBKR login" in ibkr_connection.auth_message


def test_keepalive_stores_not_authenticated_when_the_gateway_has_no_session(keepalive_gateway, ibkr_connection):
    keepalive_gateway.authenticated = False
    keepalive_gateway.connected = False

    session_keepalive(connection=ibkr_connection)

    ibkr_connection.refresh_from_db()
    assert (ibkr_connection.authenticated, ibkr_connection.connected) == (False, False)


@pytest.mark.django_db
def test_keepalive_stores_a_gateway_url_that_is_not_one_as_the_sessions_message(owner):
    # Given an IBKR connection whose gateway URL has no scheme (typed into a shell variable or the database directly)
    connection = BrokerConnectionFactory(owner=owner, name="typo", ibkr=True, gateway_url="localhost:5000/v1/api")

    # When the keep-alive tickles it
    state = session_keepalive(connection=connection)

    # Then nothing is sent anywhere, and the connection shows why it is not connected
    assert not state.can_trade
    connection.refresh_from_db()
    assert (connection.authenticated, connection.connected) == (False, False)
    assert "'localhost:5000/v1/api' is not an http(s) URL" in connection.auth_message
    assert connection.last_keepalive_at is not None


def test_keepalive_of_the_environment_gateway_reopens_its_session_and_suppresses_the_default_questions(
    keepalive_gateway, gateway_url, settings
):
    from django.core.cache import cache

    from brokers.ibkr import ENVIRONMENT_SESSION_KEY
    from brokers.models import default_question_ids

    # given only IBKR_GATEWAY_URL (no BrokerConnection row), a gateway whose brokerage session is gone
    settings.IBKR_GATEWAY_URL, settings.IBKR_ACCOUNT_ID, settings.IBKR_VERIFY_TLS = gateway_url, ACCOUNT, "false"
    cache.delete(ENVIRONMENT_SESSION_KEY)
    keepalive_gateway.bridge = False

    # when the keep-alive tickles it twice
    first = session_keepalive(connection=None)
    second = session_keepalive(connection=None)

    # then the session was re-opened once, the default question list sent once (after the login), and both ready
    assert first.can_trade and second.can_trade
    assert keepalive_gateway.init_calls == [{"publish": True, "compete": False}]
    assert sorted(keepalive_gateway.suppressed) == sorted(default_question_ids())
    assert keepalive_gateway.count("POST", r"/iserver/questions/suppress") == 1
    assert keepalive_gateway.count("POST", r"/tickle") == 2


@pytest.mark.django_db
def test_the_keepalive_beat_tickles_the_environment_gateway_only_when_one_is_set(
    ibkr_http, gateway, gateway_url, settings, celery_eager
):
    from brokers.tasks import ibkr_keepalive

    # given no IBKR connection rows: without IBKR_GATEWAY_URL nothing is tickled; with it, that gateway is
    settings.IBKR_GATEWAY_URL = ""
    assert ibkr_keepalive() == 0
    assert gateway.count("POST", r"/tickle") == 0

    settings.IBKR_GATEWAY_URL, settings.IBKR_ACCOUNT_ID, settings.IBKR_VERIFY_TLS = gateway_url, ACCOUNT, "false"
    assert ibkr_keepalive() == 1
    assert gateway.count("POST", r"/tickle") == 1


# --- history -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bar_size", "bars", "period"),
    [("1min", 780, "2d"), ("5min", 1000, "12d"), ("1d", 250, "353d"), ("1d", 5000, "1000d"), ("1w", 52, "52w")],
    ids=["1min", "5min", "1d", "1d-capped", "1w"],
)
def test_history_period_never_uses_ibkr_months_and_stays_under_1000_points(bar_size, bars, period):
    assert history_period(bar_size, bars) == period


def _daily_points(count, *, first=dt.datetime(2020, 1, 2, 14, 30, tzinfo=dt.UTC)):
    points = []
    day = first
    while len(points) < count:
        if day.weekday() < 5:
            price = 100 + len(points) * 0.01
            points.append({"o": price, "h": price + 1, "l": price - 1, "c": price + 0.5, "v": 1234.5,
                           "t": int(day.timestamp() * 1000)})  # fmt: skip
        day += dt.timedelta(days=1)
    return points


def test_history_converts_epoch_ms_to_session_keys_and_applies_the_volume_factor(ibkr, gateway, aapl):
    gateway.history[AAPL] = _daily_points(5)

    frame = IbkrBarSource(ibkr).bars(aapl, BarSize.D1, limit=5)

    assert list(frame.index) == [
        dt.datetime(2020, 1, day, tzinfo=dt.UTC) for day in (2, 3, 6, 7, 8)
    ]  # 09:30 New York sessions keyed at 00:00 UTC of the session date
    assert frame["volume"].iloc[0] == pytest.approx(123450.0)
    assert frame["open"].iloc[0] == pytest.approx(100.0)


def test_history_longer_than_1000_points_is_fetched_in_pages(ibkr, gateway, aapl):
    gateway.history[AAPL] = _daily_points(1500)

    frame = IbkrBarSource(ibkr).bars(aapl, BarSize.D1, limit=1200)

    assert len(frame) == 1200
    assert frame.index.is_monotonic_increasing
    assert gateway.count("GET", r"/iserver/marketdata/history") >= 2


def test_keepalive_task_tickles_each_connection_and_stores_its_state(keepalive_gateway, ibkr_connection):
    from brokers.tasks import ibkr_keepalive_connection

    assert ibkr_keepalive_connection(ibkr_connection.pk) is True
    assert keepalive_gateway.count("POST", r"/tickle") == 1
    ibkr_connection.refresh_from_db()
    assert ibkr_connection.authenticated is True


def test_keepalive_task_for_a_deleted_connection_does_nothing(keepalive_gateway, db):
    from brokers.tasks import ibkr_keepalive_connection

    assert ibkr_keepalive_connection(987654) is None
    assert keepalive_gateway.calls == []


def test_keepalive_tells_the_owner_when_the_session_goes_down_needs_a_login_and_comes_back(
    keepalive_gateway, ibkr_connection
):
    from notifications.models import Notification

    def told() -> list[str]:
        return list(Notification.objects.order_by("pk").values_list("kind", flat=True))

    session_keepalive(connection=ibkr_connection)  # the first keep-alive finds it ready: no news
    session_keepalive(connection=ibkr_connection)
    assert told() == []

    keepalive_gateway.authenticated = keepalive_gateway.connected = False
    session_keepalive(connection=ibkr_connection)
    session_keepalive(connection=ibkr_connection)  # still down: told once
    assert told() == ["session_down"]

    keepalive_gateway.connected = True
    keepalive_gateway.competing = True  # up, but another login holds the session: only a person can fix that
    session_keepalive(connection=ibkr_connection)
    assert told() == ["session_down", "session_login_needed"]

    keepalive_gateway.competing = False
    keepalive_gateway.authenticated = True
    session_keepalive(connection=ibkr_connection)
    assert told() == ["session_down", "session_login_needed", "session_restored"]
    restored = Notification.objects.get(kind="session_restored")
    assert restored.owner == ibkr_connection.owner
    assert restored.subject == f"IBKR session restored: {ibkr_connection.name}"
