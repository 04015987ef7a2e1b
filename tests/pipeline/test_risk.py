"""Sizing and the risk gate: the analyst proposes, the gate decides; entries must pass every check, exits always go."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from market.clock import FixedClock
from orders.models import OrderSide
from tests.factories import OrderFactory, PositionFactory, StrategyFactory, TradeFactory, TradingSignalFactory
from trading.risk import Account, position_size, risk_check

D = Decimal
ACCOUNT = Account(net_liquidation=D("100000"), buying_power=D("50000"), cash=D("50000"))


@pytest.mark.parametrize(
    ("equity", "buying_power", "entry", "stop", "max_value", "expected", "reason"),
    [
        pytest.param("100000", "100000", "100", "95", "100000", 200, "", id="risk-bound: 1000 / 5"),
        pytest.param("100000", "100000", "100", "97", "10000", 100, "", id="max-position-value-bound"),
        pytest.param("100000", "5050", "100", "95", "100000", 50, "", id="buying-power-bound-rounds-down"),
        pytest.param("100000", "1000000", "100", "99.7", "1000000", 3333, "", id="fractional-rounds-down"),
        pytest.param("1000", "100000", "100", "80", "100000", 0, "risk budget", id="risk-budget-below-one-share"),
        pytest.param("100000", "50", "100", "95", "100000", 0, "buying power", id="cannot-afford-one-share"),
        pytest.param("100000", "100000", "100", "100", "100000", 0, "not below", id="stop-at-entry"),
        pytest.param("100000", "100000", "100", "105", "100000", 0, "not below", id="stop-above-entry"),
    ],
)
def test_position_size_is_risk_over_distance_capped_and_rounded_down_never_a_minimum_of_one(
    equity, buying_power, entry, stop, max_value, expected, reason
):
    sizing = position_size(
        equity=D(equity),
        buying_power=D(buying_power),
        entry=D(entry),
        stop=D(stop),
        risk_per_trade=D("0.01"),
        max_position_value=D(max_value),
    )

    assert sizing.quantity == expected
    assert reason in sizing.reason
    assert bool(sizing.reason) == (expected == 0)


def test_position_size_counts_what_is_already_held_against_the_max_value():
    sizing = position_size(
        equity=D("100000"),
        buying_power=D("100000"),
        entry=D("100"),
        stop=D("95"),
        risk_per_trade=D("0.01"),
        max_position_value=D("10000"),
        held_value=D("9950"),
    )

    assert sizing.quantity == 0
    assert "max position value" in sizing.reason


@pytest.fixture
def strategy(db):
    return StrategyFactory(max_position_value=D("100000"), max_orders_per_day=2, daily_loss_limit=D("500"))


CLOCK = FixedClock(dt.datetime(2025, 3, 4, 15, 0, tzinfo=dt.UTC))  # 10:00 in New York, Tuesday 4 March


def buy(strategy, **fields):
    return TradingSignalFactory(strategy=strategy, generated_at=CLOCK.now(), **fields)


def refused(decision) -> list[str]:
    return [r.split(":")[0] for r in decision.refusals]


def test_a_clean_buy_passes_every_check_with_its_size(strategy):
    decision = risk_check(strategy=strategy, signal=buy(strategy), clock=CLOCK, account=ACCOUNT, kill_switch=False)

    assert decision.allowed, decision.refusals
    assert decision.quantity == 200
    assert {c.name for c in decision.checks} >= {
        "global_kill_switch",
        "strategy_kill_switch",
        "confidence_floor",
        "max_open_positions",
        "max_orders_per_day",
        "daily_loss_limit",
        "sizing",
    }


@pytest.mark.parametrize(
    ("setup", "check"),
    [
        pytest.param(lambda s: setattr(s, "kill_switch", True), "strategy_kill_switch", id="strategy-kill-switch"),
        pytest.param(lambda s: setattr(s, "min_confidence", D("0.9")), "confidence_floor", id="low-confidence"),
        pytest.param(
            lambda s: PositionFactory(owner=s.owner, strategy=s, symbol=s.symbol), "max_open_positions", id="full"
        ),
        pytest.param(
            lambda s: OrderFactory(owner=s.owner, strategy=s, symbol=s.symbol, status="SUBMITTED"),
            "max_open_positions",
            id="entry-in-flight",
        ),
    ],
)
def test_each_check_alone_blocks_a_new_entry(strategy, setup, check):
    setup(strategy)
    strategy.save()

    decision = risk_check(strategy=strategy, signal=buy(strategy), clock=CLOCK, account=ACCOUNT, kill_switch=False)

    assert not decision.allowed
    assert check in refused(decision)
    assert decision.quantity == 0


def test_the_global_kill_switch_comes_from_settings(settings, strategy):
    settings.TRADING_KILL_SWITCH = True

    decision = risk_check(strategy=strategy, signal=buy(strategy), clock=CLOCK, account=ACCOUNT)

    assert refused(decision) == ["global_kill_switch"]


def test_orders_per_day_are_counted_on_the_market_clocks_trading_day(strategy):
    for _ in range(2):  # two orders of signals dated this trading day
        earlier = buy(strategy)
        OrderFactory(
            owner=strategy.owner, strategy=strategy, signal=earlier, symbol=strategy.symbol, status="CANCELLED"
        )
    yesterday = buy(strategy)
    TradingSignalFactory._meta.model.objects.filter(pk=yesterday.pk).update(
        generated_at=CLOCK.now() - dt.timedelta(days=1)
    )
    OrderFactory(owner=strategy.owner, strategy=strategy, signal=yesterday, symbol=strategy.symbol, status="EXPIRED")

    decision = risk_check(strategy=strategy, signal=buy(strategy), clock=CLOCK, account=ACCOUNT, kill_switch=False)

    assert refused(decision) == ["max_orders_per_day"]
    assert "2 orders on 2025-03-04" in decision.refusals[0]


def test_a_bracket_counts_as_one_order_of_the_day(strategy):
    earlier = buy(strategy)
    entry = OrderFactory(owner=strategy.owner, strategy=strategy, signal=earlier, symbol=strategy.symbol, filled=True)
    for leg in ("stop", "target"):
        OrderFactory(
            owner=strategy.owner,
            strategy=strategy,
            signal=earlier,
            symbol=strategy.symbol,
            parent=entry,
            leg=leg,
            side=OrderSide.SELL,
            status="SUBMITTED",
        )

    decision = risk_check(strategy=strategy, signal=buy(strategy), clock=CLOCK, account=ACCOUNT, kill_switch=False)

    assert "max_orders_per_day" not in refused(decision)
    assert any(c.name == "max_orders_per_day" and "1 orders" in c.detail for c in decision.checks)


def test_the_daily_loss_limit_blocks_entries_after_todays_realised_losses(strategy):
    sell = OrderFactory(
        owner=strategy.owner, strategy=strategy, symbol=strategy.symbol, side=OrderSide.SELL, filled=True
    )
    TradeFactory(order=sell, executed_at=CLOCK.now() - dt.timedelta(hours=1), realized_pnl=D("-600"))

    decision = risk_check(strategy=strategy, signal=buy(strategy), clock=CLOCK, account=ACCOUNT, kill_switch=False)

    assert refused(decision) == ["daily_loss_limit"]


def test_yesterdays_losses_do_not_count_today(strategy):
    sell = OrderFactory(
        owner=strategy.owner, strategy=strategy, symbol=strategy.symbol, side=OrderSide.SELL, filled=True
    )
    TradeFactory(order=sell, executed_at=CLOCK.now() - dt.timedelta(days=1), realized_pnl=D("-600"))

    decision = risk_check(strategy=strategy, signal=buy(strategy), clock=CLOCK, account=ACCOUNT, kill_switch=False)

    assert decision.allowed


def test_without_an_account_summary_nothing_is_sized_or_placed(strategy):
    decision = risk_check(strategy=strategy, signal=buy(strategy), clock=CLOCK, account=None, kill_switch=False)

    assert refused(decision) == ["sizing"]


@pytest.mark.parametrize("kill", [True, False], ids=["kill-switch-on", "kill-switch-off"])
def test_an_exit_is_always_allowed_for_the_whole_position(strategy, kill):
    strategy.kill_switch = kill
    strategy.save()
    position = PositionFactory(owner=strategy.owner, strategy=strategy, symbol=strategy.symbol, quantity=D(30))

    decision = risk_check(
        strategy=strategy, signal=TradingSignalFactory(strategy=strategy, sell=True), clock=CLOCK, account=None
    )

    assert decision.allowed
    assert (decision.quantity, decision.exit_position_id) == (30, position.pk)


def test_a_sell_with_nothing_to_sell_places_nothing_and_says_so(strategy):
    decision = risk_check(
        strategy=strategy, signal=TradingSignalFactory(strategy=strategy, sell=True), clock=CLOCK, account=ACCOUNT
    )

    assert not decision.allowed
    assert decision.refusals == ["SELL with no open position: nothing to sell"]


def test_hold_does_nothing(strategy):
    decision = risk_check(
        strategy=strategy, signal=TradingSignalFactory(strategy=strategy, hold=True), clock=CLOCK, account=ACCOUNT
    )

    assert (decision.allowed, decision.quantity) == (False, 0)


def test_a_sell_while_an_earlier_exit_of_the_position_is_working_is_refused_naming_that_exit(strategy):
    # given an open position whose earlier exit is still working at the broker
    position = PositionFactory(owner=strategy.owner, strategy=strategy, symbol=strategy.symbol, quantity=D(30))
    OrderFactory(
        owner=strategy.owner,
        strategy=strategy,
        symbol=strategy.symbol,
        position=position,
        side=OrderSide.SELL,
        leg="exit",
        quantity=D(30),
        status="SUBMITTED",
        client_order_id="s1-g1-exit",
    )

    # when the analyst says SELL again
    decision = risk_check(
        strategy=strategy, signal=TradingSignalFactory(strategy=strategy, sell=True), clock=CLOCK, account=None
    )

    # then nothing may be placed, and the refusal says which exit is working
    assert (decision.allowed, decision.quantity) == (False, 0)
    assert decision.refusals == ["exit already working: order s1-g1-exit"]


@pytest.mark.parametrize("status", ["FILLED", "CANCELLED", "REJECTED", "EXPIRED"])
def test_a_settled_earlier_exit_does_not_block_a_new_exit(strategy, status):
    position = PositionFactory(owner=strategy.owner, strategy=strategy, symbol=strategy.symbol, quantity=D(30))
    OrderFactory(
        owner=strategy.owner, strategy=strategy, symbol=strategy.symbol, position=position, side=OrderSide.SELL,
        leg="exit", quantity=D(30), status=status,
    )  # fmt: skip

    decision = risk_check(
        strategy=strategy, signal=TradingSignalFactory(strategy=strategy, sell=True), clock=CLOCK, account=None
    )

    assert (decision.allowed, decision.quantity) == (True, 30)
