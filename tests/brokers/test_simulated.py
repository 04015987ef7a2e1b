"""The simulated broker's fills, by the market clock against stored bars: next-bar market fills, gap-aware limits,
stops, OCA brackets, commission, a cash account, DAY expiry."""

import datetime as dt
from decimal import Decimal

import pytest

from brokers.interface import OrderRequest, Rejected
from brokers.models import SimAccount, SimOrder
from brokers.services import broker_for
from brokers.simulated import SimulatedBroker
from market.models import BarSize
from market.sources import StoredBarSource
from orders.services import Bracket, order_place, orders_sync
from orders.statuses import OrderStatus
from tests.brokers.conftest import FIVE_MIN, add_bar
from tests.factories import BrokerConnectionFactory


def utc(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def request(aapl, **fields):
    values = {
        "client_order_id": f"t-{fields.get('side', 'BUY')}-{fields.get('order_type', 'LMT')}-{id(fields)}",
        "conid": aapl.conid,
        "symbol": "AAPL",
        "side": "BUY",
        "quantity": Decimal("10"),
        "order_type": "LMT",
        "limit_price": Decimal("99.00"),
        "tif": "GTC",
        "symbol_id": aapl.pk,
    }
    values.update(fields)
    return OrderRequest(**values)


def bar_after(aapl, clock, *, open, high, low, close, minutes=5):
    """The next 5-minute bar after the clock, then the clock moves past its close."""
    start = clock.now() + dt.timedelta(minutes=minutes)
    add_bar(aapl, start, open=open, high=high, low=low, close=close)
    clock.at = start + FIVE_MIN


def fill_of(sim, placement):
    order = sim.order_status(placement.broker_order_ids[0])
    return order.status, order.average_price


def test_market_order_fills_at_the_next_bars_open_not_the_bar_already_seen(sim, aapl, clock):
    add_bar(aapl, clock.now(), open="90", high="91", low="89", close="90.5")  # the bar the clock is at
    placed = sim.place(request(aapl, order_type="MKT", limit_price=None))
    assert fill_of(sim, placed) == ("SUBMITTED", None)

    bar_after(aapl, clock, open="101.00", high="102", low="100.5", close="101.5")

    assert fill_of(sim, placed) == ("FILLED", Decimal("101.00"))


@pytest.mark.parametrize(
    ("side", "limit", "bar", "expected"),
    [
        ("BUY", "99.00", ("100.00", "100.50", "98.50", "99.50"), ("FILLED", Decimal("99.00"))),
        ("BUY", "99.00", ("97.00", "98.00", "96.50", "97.50"), ("FILLED", Decimal("97.00"))),
        ("BUY", "99.00", ("100.00", "101.00", "99.10", "100.50"), ("SUBMITTED", None)),
        ("SELL", "101.00", ("100.00", "101.50", "99.50", "101.00"), ("FILLED", Decimal("101.00"))),
        ("SELL", "101.00", ("103.00", "103.50", "102.00", "102.50"), ("FILLED", Decimal("103.00"))),
    ],
    ids=["buy-traded-through", "buy-gap-down-fills-at-open", "buy-not-reached", "sell-traded-through", "sell-gap-up"],
)
def test_limit_fills_at_the_limit_or_better_and_knows_gaps(
    sim, sim_connection, aapl, clock, side, limit, bar, expected
):
    if side == "SELL":
        buy = sim.place(request(aapl, client_order_id="own-first", order_type="MKT", limit_price=None))
        bar_after(aapl, clock, open="100", high="100.1", low="99.9", close="100")
        assert fill_of(sim, buy)[0] == "FILLED"
    placed = sim.place(request(aapl, side=side, limit_price=Decimal(limit)))

    open_, high, low, close = bar
    bar_after(aapl, clock, open=open_, high=high, low=low, close=close)

    assert fill_of(sim, placed) == expected


@pytest.mark.parametrize(
    ("bar", "expected"),
    [
        (("99.00", "99.20", "96.50", "97.00"), Decimal("97.50")),
        (("95.00", "95.50", "94.00", "94.50"), Decimal("95.00")),
    ],
    ids=["touched-fills-at-stop", "gapped-through-fills-at-open"],
)
def test_sell_stop_fills_when_touched(sim, aapl, clock, bar, expected):
    buy = sim.place(request(aapl, client_order_id="own-first", order_type="MKT", limit_price=None))
    bar_after(aapl, clock, open="100", high="100.1", low="99.9", close="100")
    assert fill_of(sim, buy)[0] == "FILLED"
    stop = sim.place(request(aapl, side="SELL", order_type="STP", limit_price=None, stop_price=Decimal("97.50")))

    open_, high, low, close = bar
    bar_after(aapl, clock, open=open_, high=high, low=low, close=close)

    assert fill_of(sim, stop) == ("FILLED", expected)


@pytest.mark.parametrize(
    ("quantity", "commission"),
    [(Decimal("10"), Decimal("1.00")), (Decimal("1000"), Decimal("5.00"))],
    ids=["minimum", "per-share"],
)
def test_commission_is_per_share_with_a_minimum(owner, aapl, clock, quantity, commission):
    connection = BrokerConnectionFactory(owner=owner, starting_cash=Decimal("1000000"))
    sim = SimulatedBroker(connection, clock=clock, bar_source=StoredBarSource(), bar_size=BarSize.MIN5)
    add_bar(aapl, clock.now() - FIVE_MIN, open="100", high="100", low="100", close="100")
    sim.place(request(aapl, quantity=quantity, order_type="MKT", limit_price=None))

    bar_after(aapl, clock, open="100", high="100.1", low="99.9", close="100")

    [execution] = sim.executions()
    assert execution.commission == commission
    assert sim.account_summary().cash == Decimal("1000000") - quantity * 100 - commission


def test_account_starts_with_the_connections_starting_cash(owner, aapl, clock):
    connection = BrokerConnectionFactory(owner=owner, starting_cash=Decimal("2500.00"))

    summary = broker_for(connection, clock=clock, bar_source=StoredBarSource()).account_summary()

    assert summary.cash == Decimal("2500.00")
    assert SimAccount.objects.get(connection=connection).cash == Decimal("2500.00")


def test_buying_more_than_the_cash_is_rejected(sim, aapl):
    with pytest.raises(Rejected, match="insufficient cash"):
        sim.place(request(aapl, quantity=Decimal("200"), limit_price=Decimal("99.00")))


def test_selling_what_the_account_does_not_hold_is_rejected(sim, aapl):
    with pytest.raises(Rejected, match="no shorting"):
        sim.place(request(aapl, side="SELL", limit_price=Decimal("101.00")))


def test_a_reused_client_order_id_is_already_registered(sim, aapl):
    from brokers.interface import DuplicateClientOrderId

    sim.place(request(aapl, client_order_id="same"))

    with pytest.raises(DuplicateClientOrderId, match="already registered"):
        sim.place(request(aapl, client_order_id="same"))


def test_day_order_expires_at_the_sessions_close_by_the_clock_and_gtc_does_not(sim, aapl, clock):
    day = sim.place(request(aapl, client_order_id="day", tif="DAY", limit_price=Decimal("98.00")))
    gtc = sim.place(request(aapl, client_order_id="gtc", tif="GTC", limit_price=Decimal("98.00")))
    bar_after(aapl, clock, open="100", high="100.5", low="99.5", close="100")
    assert fill_of(sim, day)[0] == "SUBMITTED"

    clock.at = dt.datetime(2026, 11, 18, 21, 0, tzinfo=dt.UTC)  # 16:00 in New York

    assert fill_of(sim, day)[0] == "EXPIRED"
    assert fill_of(sim, gtc)[0] == "SUBMITTED"


def test_day_order_does_not_fill_on_a_bar_after_its_session(sim, aapl, clock):
    day = sim.place(request(aapl, client_order_id="day", tif="DAY", limit_price=Decimal("98.00")))
    next_morning = dt.datetime(2026, 11, 19, 14, 30, tzinfo=dt.UTC)
    add_bar(aapl, next_morning, open="97", high="97.5", low="96", close="97")
    clock.at = next_morning + FIVE_MIN

    assert fill_of(sim, day)[0] == "EXPIRED"


def test_day_order_on_daily_bars_gets_the_next_session_only(owner, aapl, sim_connection):
    from tests.brokers.conftest import MovableClock

    clock = MovableClock(dt.datetime(2026, 11, 18, 21, 0, tzinfo=dt.UTC))  # the close of the 18th
    for day in (16, 17, 18):
        add_bar(aapl, dt.datetime(2026, 11, day, tzinfo=dt.UTC), open="100", high="101", low="99", close="100",
                bar_size=BarSize.D1)  # fmt: skip
    sim = SimulatedBroker(sim_connection, clock=clock, bar_source=StoredBarSource(), bar_size=BarSize.D1)
    placed = sim.place(request(aapl, tif="DAY", limit_price=Decimal("98.00")))
    add_bar(aapl, dt.datetime(2026, 11, 19, tzinfo=dt.UTC), open="100", high="101", low="99", close="100",
            bar_size=BarSize.D1)  # fmt: skip
    add_bar(aapl, dt.datetime(2026, 11, 20, tzinfo=dt.UTC), open="97", high="98", low="96", close="97",
            bar_size=BarSize.D1)  # fmt: skip
    clock.at = dt.datetime(2026, 11, 20, 21, 0, tzinfo=dt.UTC)

    assert fill_of(sim, placed)[0] == "EXPIRED"


@pytest.mark.parametrize(
    ("tz", "clock_at", "filled_at"),
    [
        ("America/New_York", utc(2026, 11, 19, 21), utc(2026, 11, 19, 14, 30)),
        ("UTC", utc(2026, 11, 19, 21), utc(2026, 11, 19, 9, 30)),
        ("America/New_York", utc(2026, 11, 19, 1), utc(2026, 11, 19, 1)),
    ],
    ids=["new-york-session-open", "utc-symbol", "never-after-the-clock"],
)
def test_a_fill_on_a_daily_bar_is_dated_in_that_session_not_the_evening_before(
    owner, aapl, sim_connection, tz, clock_at, filled_at
):
    from tests.brokers.conftest import MovableClock

    # Given a DAY buy placed at the close of the 18th, and the 19th's daily bar (keyed 00:00 UTC) trading through it
    aapl.time_zone = tz
    aapl.save(update_fields=["time_zone"])
    clock = MovableClock(dt.datetime(2026, 11, 18, 21, 0, tzinfo=dt.UTC))
    add_bar(aapl, dt.datetime(2026, 11, 18, tzinfo=dt.UTC), open="100", high="101", low="99", close="100",
            bar_size=BarSize.D1)  # fmt: skip
    sim = SimulatedBroker(sim_connection, clock=clock, bar_source=StoredBarSource(), bar_size=BarSize.D1)
    placed = sim.place(request(aapl, tif="DAY", limit_price=Decimal("99.50")))
    add_bar(aapl, dt.datetime(2026, 11, 19, tzinfo=dt.UTC), open="100", high="101", low="99", close="100",
            bar_size=BarSize.D1)  # fmt: skip

    # When the clock is past that bar
    clock.at = clock_at
    status = fill_of(sim, placed)

    # Then it fills at the limit, dated at the 19th's session open in the symbol's zone (or the clock, if earlier):
    # in New York the 00:00 UTC key would read as the evening of the 18th
    assert status == ("FILLED", Decimal("99.50"))
    (execution,) = sim.executions()
    assert execution.executed_at == filled_at


def test_a_bar_touching_both_exits_of_a_bracket_fills_the_stop(sim, sim_connection, owner, aapl, clock):
    entry = order_place(
        owner=owner, broker_connection=sim_connection, symbol=aapl, side="BUY", quantity=Decimal("10"),
        order_type="LMT", limit_price=Decimal("100.00"), tif="GTC", clock=clock, broker=sim,
        bracket=Bracket(stop_price=Decimal("97.00"), take_profit=Decimal("103.00")),
    )  # fmt: skip
    bar_after(aapl, clock, open="100", high="100.1", low="99.9", close="100")
    bar_after(aapl, clock, open="100", high="104", low="96", close="100")

    orders_sync(broker_connection=sim_connection, broker=sim)

    legs = {child.leg: child.status for child in entry.children.all()}
    assert legs == {"stop": OrderStatus.FILLED, "target": OrderStatus.CANCELLED}


def test_exits_wait_for_their_entry_to_fill(sim, sim_connection, owner, aapl, clock):
    entry = order_place(
        owner=owner, broker_connection=sim_connection, symbol=aapl, side="BUY", quantity=Decimal("10"),
        order_type="LMT", limit_price=Decimal("99.00"), tif="GTC", clock=clock, broker=sim,
        bracket=Bracket(stop_price=Decimal("97.00"), take_profit=Decimal("103.00")),
    )  # fmt: skip
    bar_after(aapl, clock, open="104", high="105", low="103.5", close="104")  # above the target, entry not filled

    orders_sync(broker_connection=sim_connection, broker=sim)

    assert {c.leg: c.status for c in entry.children.all()} == {"stop": "SUBMITTED", "target": "SUBMITTED"}
    assert SimOrder.objects.filter(status="FILLED").count() == 0


def test_expired_day_order_is_expired_in_our_books_after_sync(sim, sim_connection, owner, aapl, clock):
    order = order_place(
        owner=owner, broker_connection=sim_connection, symbol=aapl, side="BUY", quantity=Decimal("10"),
        order_type="LMT", limit_price=Decimal("98.00"), clock=clock, broker=sim,
    )  # fmt: skip
    clock.at = dt.datetime(2026, 11, 18, 21, 5, tzinfo=dt.UTC)

    orders_sync(broker_connection=sim_connection, broker=sim)

    order.refresh_from_db()
    assert order.status == OrderStatus.EXPIRED


def test_without_a_bar_size_orders_fill_against_the_finest_stored_series(sim_connection, aapl, clock):
    add_bar(aapl, dt.datetime(2026, 11, 17, tzinfo=dt.UTC), open="100", high="101", low="99", close="100",
            bar_size=BarSize.D1)  # fmt: skip
    add_bar(aapl, clock.now() - FIVE_MIN, open="100", high="100", low="100", close="100")
    broker = broker_for(sim_connection, clock=clock, bar_source=StoredBarSource())

    placed = broker.place(request(aapl, order_type="MKT", limit_price=None))
    bar_after(aapl, clock, open="100.40", high="100.5", low="100.3", close="100.4")

    assert SimOrder.objects.get().bar_size == BarSize.MIN5
    assert fill_of(broker, placed) == ("FILLED", Decimal("100.40"))


def test_a_strategy_order_fills_against_the_strategys_bar_size(sim_connection, owner, aapl, clock):
    from tests.factories import StrategyFactory, TradingSignalFactory

    add_bar(aapl, clock.now() - FIVE_MIN, open="100", high="100", low="100", close="100")
    strategy = StrategyFactory(owner=owner, symbol=aapl, broker_connection=sim_connection, bar_size=BarSize.H1)

    order_place(
        owner=owner, broker_connection=sim_connection, symbol=aapl, side="BUY", quantity=Decimal("1"),
        order_type="LMT", limit_price=Decimal("99.90"), strategy=strategy,
        signal=TradingSignalFactory(strategy=strategy), clock=clock,
    )  # fmt: skip

    assert SimOrder.objects.get().bar_size == BarSize.H1


def test_a_day_order_on_daily_bars_expires_at_its_close_by_the_clock_when_no_bar_comes(owner, aapl, sim_connection):
    from tests.brokers.conftest import MovableClock

    # given daily bars that end years before the clock (the demo: a wall clock in 2026, bars up to 2017)
    for day in (27, 28, 29):
        add_bar(aapl, dt.datetime(2017, 12, day, tzinfo=dt.UTC), open="100", high="101", low="99", close="100",
                bar_size=BarSize.D1)  # fmt: skip
    clock = MovableClock(dt.datetime(2026, 11, 18, 15, 0, tzinfo=dt.UTC))  # 10:00 in New York, the market open
    sim = SimulatedBroker(sim_connection, clock=clock, bar_source=StoredBarSource(), bar_size=BarSize.D1)
    order = order_place(
        owner=owner, broker_connection=sim_connection, symbol=aapl, side="BUY", quantity=Decimal("10"),
        order_type="LMT", limit_price=Decimal("99.00"), tif="DAY", clock=clock, broker=sim,
    )  # fmt: skip
    assert order.status == OrderStatus.SUBMITTED

    # when the clock passes the session's close with no new bar
    clock.at = dt.datetime(2026, 11, 18, 20, 59, tzinfo=dt.UTC)
    orders_sync(broker_connection=sim_connection, broker=sim)
    order.refresh_from_db()
    assert order.status == OrderStatus.SUBMITTED  # still its session
    clock.at = dt.datetime(2026, 11, 18, 21, 0, tzinfo=dt.UTC)  # 16:00 in New York
    orders_sync(broker_connection=sim_connection, broker=sim)

    # then it is expired at the broker and in our books
    order.refresh_from_db()
    assert order.status == OrderStatus.EXPIRED
    assert sim.order_status(order.broker_order_id).status == "EXPIRED"
