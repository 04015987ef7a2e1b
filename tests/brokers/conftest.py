"""Fixtures for the broker tests: the strict fake gateway over `responses`, the simulated broker on stored bars and a
clock the test moves, and one `market` driver per broker so the contract suite reads the same for both."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from decimal import Decimal

import pytest
import responses

from brokers.ibkr import IbkrBroker, IbkrClient
from brokers.simulated import SimulatedBroker
from market.clock import MarketClock
from market.models import Bar, BarSize
from market.sources import StoredBarSource
from orders.models import Order
from tests.books import books_agree_with_their_trades  # noqa: F401  (autouse: the books invariant after each test)
from tests.brokers.gateway import AAPL, ACCOUNT, FakeGateway, install_responses
from tests.factories import BrokerConnectionFactory, SymbolFactory

# Wednesday 18 Nov 2026, 10:00 in New York: the market is open.
MARKET_OPEN_AT = dt.datetime(2026, 11, 18, 15, 0, tzinfo=dt.UTC)
FIVE_MIN = dt.timedelta(minutes=5)
FAST_WINDOW = 0.3  # the fake's 1-per-window rule and the client's spacing, shortened so tests stay fast


@dataclass
class MovableClock(MarketClock):
    """The market clock of a test: it stands where the test puts it."""

    at: dt.datetime

    def now(self) -> dt.datetime:
        return self.at


@pytest.fixture
def clock():
    return MovableClock(MARKET_OPEN_AT)


@pytest.fixture
def aapl(db):
    return SymbolFactory(symbol="AAPL", name="APPLE INC", exchange="NASDAQ", conid=AAPL)


@pytest.fixture
def gateway():
    fake = FakeGateway(slow_interval=FAST_WINDOW)
    yield fake
    assert fake.violations == [], f"the client broke the gateway's rules: {fake.violations}"


@pytest.fixture
def gateway_url():
    # a host per test: rate-limit keys and back-offs never leak between tests
    return f"https://gw-{uuid.uuid4().hex[:10]}.test:5000/v1/api"


@pytest.fixture
def ibkr_http(gateway, gateway_url):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        install_responses(rsps, gateway, gateway_url)
        yield rsps


@pytest.fixture
def ibkr_connection(owner, gateway_url):
    return BrokerConnectionFactory(
        owner=owner, name="paper", ibkr=True, gateway_url=gateway_url, account_id=ACCOUNT, verify_tls="false"
    )


def make_ibkr_broker(connection, *, timeout: float = 2.0, slow_interval: float = FAST_WINDOW) -> IbkrBroker:
    client = IbkrClient(
        connection.gateway_url,
        account_id=connection.account_id,
        verify=False,
        timeout=timeout,
        slow_endpoint_interval=slow_interval,
        backoff_seconds=30,
        snapshot_wait=0,
    )
    return IbkrBroker(client, allowed_question_ids=list(connection.allowed_question_ids))


@pytest.fixture
def ibkr(ibkr_http, ibkr_connection, aapl):
    return make_ibkr_broker(ibkr_connection)


def add_bar(symbol, timestamp, *, open, high, low, close, bar_size=BarSize.MIN5):
    return Bar.objects.create(
        symbol=symbol,
        bar_size=bar_size,
        timestamp=timestamp,
        open=Decimal(open),
        high=Decimal(high),
        low=Decimal(low),
        close=Decimal(close),
        volume=Decimal(1000),
    )


@pytest.fixture
def sim_connection(owner):
    return BrokerConnectionFactory(owner=owner, name="paper sim", starting_cash=Decimal("10000.00"))


@pytest.fixture
def sim(sim_connection, aapl, clock):
    # an hour of quiet 5-minute bars around 100 before the test's "now"
    for i in range(12, 0, -1):
        add_bar(aapl, clock.now() - FIVE_MIN * i, open="100", high="100.20", low="99.80", close="100")
    return SimulatedBroker(sim_connection, clock=clock, bar_source=StoredBarSource(), bar_size=BarSize.MIN5)


class SimMarket:
    """Moves the simulated market: the next 5-minute bar trades at `price`, then the clock passes its close."""

    def __init__(self, symbol, clock: MovableClock) -> None:
        self.symbol = symbol
        self.clock = clock

    def trade_at(self, price: Decimal) -> None:
        now = self.clock.now()
        start = now.replace(second=0, microsecond=0) - dt.timedelta(minutes=now.minute % 5) + FIVE_MIN
        spread = Decimal("0.05")
        add_bar(self.symbol, start, open=price, high=price + spread, low=price - spread, close=price)
        self.clock.at = start + FIVE_MIN

    def fill(self, order: Order, price: Decimal) -> None:
        self.trade_at(price)


class IbkrMarket:
    """Moves the fake gateway's market: the order fills at `price`."""

    def __init__(self, gateway: FakeGateway) -> None:
        self.gateway = gateway

    def fill(self, order: Order, price: Decimal) -> None:
        order.refresh_from_db()
        self.gateway.prices[AAPL] = price
        self.gateway.fill(order.broker_order_id, price)


@dataclass
class BrokerUnderTest:
    name: str
    broker: object
    connection: object
    market: object
    clock: MovableClock

    def orders_at_broker(self) -> int:
        if self.name == "ibkr":
            return self.market.gateway.order_posts()
        from brokers.models import SimOrder

        return SimOrder.objects.filter(account__connection=self.connection, parent__isnull=True).count()


@pytest.fixture(params=["simulated", "ibkr"])
def any_broker(request, clock):
    if request.param == "simulated":
        broker = request.getfixturevalue("sim")
        return BrokerUnderTest(
            "simulated", broker, request.getfixturevalue("sim_connection"), SimMarket(broker_symbol(), clock), clock
        )
    broker = request.getfixturevalue("ibkr")
    gateway = request.getfixturevalue("gateway")
    return BrokerUnderTest("ibkr", broker, request.getfixturevalue("ibkr_connection"), IbkrMarket(gateway), clock)


def broker_symbol():
    from market.models import Symbol

    return Symbol.objects.get(conid=AAPL)
