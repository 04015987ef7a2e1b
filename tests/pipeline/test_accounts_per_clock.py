"""One clock per simulated account: a playback strategy gets a simulated account of its own, made with it, so its
account is valued, sized and shown at one instant; strategies on the wall clock share their connection's account."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from brokers.models import BrokerConnection, BrokerKind
from brokers.services import broker_for
from market.clock import clock_for_strategy
from market.models import IndicatorType, MarketDataSource
from portfolio.models import Position
from portfolio.services import account_cash, connection_track, position_price
from tests.factories import BrokerConnectionFactory, IndicatorConfigFactory, SymbolFactory
from tests.pipeline.conftest import bars_create, uptrend
from trading.executor import execute
from trading.services import execution_start, strategy_create, strategy_update

pytestmark = pytest.mark.django_db


def make(owner, connection, name, source, *, end=None):
    """A daily strategy made through the strategy service (as the pages and the API make them), with the SMA, RSI
    and ATR the rules analyst reads."""
    symbol = SymbolFactory()
    bars_create(symbol, closes=uptrend(), end=end)
    indicators = [
        IndicatorConfigFactory(owner=owner, name=f"{kind} {name}", indicator_type=kind, parameters=params)
        for kind, params in (
            (IndicatorType.SMA, {"period": 20}),
            (IndicatorType.RSI, {"period": 14}),
            (IndicatorType.ATR, {"period": 14}),
        )
    ]
    return strategy_create(
        owner=owner,
        name=name,
        symbol=symbol,
        lookback_bars=60,
        indicators=indicators,
        broker_connection=connection,
        market_data_source=source,
        schedule_cron="0 10 * * 1-5",
    )


def test_a_playback_strategy_gets_an_account_of_its_own_and_wall_clock_ones_share(owner):
    shared = BrokerConnectionFactory(owner=owner, name="Paper", starting_cash="50000.00")
    live_one = make(owner, shared, "Stored one", MarketDataSource.STORED)
    live_two = make(owner, shared, "Stored two", MarketDataSource.STORED)

    replayed = make(owner, shared, "SPY 2008", MarketDataSource.PLAYBACK)
    another = make(owner, shared, "AAPL 2017", MarketDataSource.PLAYBACK)

    assert live_one.broker_connection == live_two.broker_connection == shared
    own, other = replayed.broker_connection, another.broker_connection
    assert len({shared.pk, own.pk, other.pk}) == 3
    assert (own.name, own.kind, own.starting_cash) == ("SPY 2008 account", BrokerKind.SIMULATED, shared.starting_cash)
    # moving a wall-clock strategy onto a playback strategy's account gives it one of its own too
    moved = strategy_update(strategy=live_two, broker_connection=own)
    assert moved.broker_connection not in (own, shared)
    # and an edit that moves nothing keeps the account
    assert strategy_update(strategy=replayed, lookback_bars=80).broker_connection == own
    assert BrokerConnection.objects.filter(owner=owner).count() == 4


def test_two_strategies_on_different_clocks_each_value_their_account_at_their_own_instant(owner):
    shared = BrokerConnectionFactory(owner=owner, name="Paper")
    early = make(owner, shared, "Early", MarketDataSource.PLAYBACK, end=dt.datetime(2017, 6, 30, tzinfo=dt.UTC))
    late = make(owner, shared, "Late", MarketDataSource.PLAYBACK, end=dt.datetime(2024, 6, 28, tzinfo=dt.UTC))
    for strategy in (early, late):
        for _ in range(3):  # buy, and let the next bars fill it
            execute(execution_start(strategy=strategy, trigger="manual").pk)
            connection_track(broker_connection=strategy.broker_connection, clock=clock_for_strategy(strategy))

    for strategy in (early, late):
        strategy.refresh_from_db()
        connection = strategy.broker_connection
        summary = broker_for(connection, clock=clock_for_strategy(strategy)).account_summary()
        ours = account_cash(broker_connection=connection)
        for position in Position.objects.filter(strategy=strategy).open():
            price, _ = position_price(position)
            ours += position.quantity * price
        assert Position.objects.filter(strategy=strategy).open().exists(), "the run bought nothing to value"
        # the sizing's net liquidation (the broker's) and the books' value of the account agree to the cent
        assert abs(summary.net_liquidation - ours) < Decimal("0.01"), (summary.net_liquidation, ours)
    assert early.broker_connection != late.broker_connection
