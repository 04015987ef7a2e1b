"""Prompt performance from factory-made closed trades: outcomes, R multiples, hit rate and calibration."""

from __future__ import annotations

from decimal import Decimal

import pytest

from orders.models import OrderLeg, OrderSide, OrderSource
from portfolio.services import signal_outcomes_settle
from signals_app.models import PromptPerformance, SignalOutcome, TradingSignal
from signals_app.services import prompt_performance_refresh
from tests.factories import (
    OrderFactory,
    PositionFactory,
    PromptVersionFactory,
    StrategyFactory,
    TradeFactory,
    TradingSignalFactory,
)


@pytest.fixture
def strategy(db):
    return StrategyFactory()


def closed_trade(
    strategy, *, version, model, entry="100", stop="95", exit_price=None, confidence="0.75", via="bracket"
):
    """A BUY signal filled at `entry` and, if `exit_price` is given, sold at it: through a bracket leg placed under the
    entry order, or through an exit order closing the position the entry opened."""
    signal = TradingSignalFactory(
        strategy=strategy,
        prompt_version=version,
        model=model,
        entry_price=Decimal(entry),
        stop_loss=Decimal(stop),
        take_profit=Decimal(entry) + 20,
        confidence=Decimal(confidence),
    )
    position = PositionFactory(strategy=strategy, closed=exit_price is not None)
    common = {"owner": strategy.owner, "strategy": strategy, "symbol": strategy.symbol, "source": OrderSource.STRATEGY}
    entry_order = OrderFactory(filled=True, signal=signal, limit_price=Decimal(entry), position=position, **common)
    TradeFactory(order=entry_order)
    if exit_price is not None:
        link = {"parent": entry_order, "leg": OrderLeg.TARGET} if via == "bracket" else {"position": position}
        exit_order = OrderFactory(filled=True, side=OrderSide.SELL, limit_price=Decimal(exit_price), **link, **common)
        TradeFactory(order=exit_order)
    return signal


def test_closed_trades_get_win_loss_scratch_and_r_multiple(strategy):
    version = PromptVersionFactory()
    win = closed_trade(strategy, version=version, model="m", exit_price="110")
    loss = closed_trade(strategy, version=version, model="m", exit_price="95", via="position")
    scratch = closed_trade(strategy, version=version, model="m", exit_price="100.25")
    still_open = closed_trade(strategy, version=version, model="m")

    changed = signal_outcomes_settle()

    results = {s.pk: (s.outcome, s.r_multiple) for s in TradingSignal.objects.all()}
    assert results[win.pk] == (SignalOutcome.WIN, Decimal("2.0000"))
    assert results[loss.pk] == (SignalOutcome.LOSS, Decimal("-1.0000"))
    assert results[scratch.pk] == (SignalOutcome.SCRATCH, Decimal("0.0500"))
    assert results[still_open.pk] == (SignalOutcome.OPEN, None)
    assert changed == 4
    assert signal_outcomes_settle() == 0


def test_signal_without_fills_keeps_no_outcome(strategy):
    signal = TradingSignalFactory(strategy=strategy)

    signal_outcomes_settle()

    signal.refresh_from_db()
    assert signal.outcome == SignalOutcome.NONE


def test_performance_per_prompt_version_and_model(strategy):
    v1, v2 = PromptVersionFactory(), PromptVersionFactory()
    closed_trade(strategy, version=v1, model="claude-sonnet-5-5", exit_price="110", confidence="0.80")
    closed_trade(strategy, version=v1, model="claude-sonnet-5-5", exit_price="95", confidence="0.60")
    closed_trade(strategy, version=v1, model="claude-sonnet-5-5", exit_price="107.5", confidence="0.70")
    TradingSignalFactory(strategy=strategy, prompt_version=v1, model="claude-sonnet-5-5", hold=True, confidence=0)
    closed_trade(strategy, version=v1, model="claude-haiku-5-5", exit_price="95", confidence="0.90")
    closed_trade(strategy, version=v2, model="claude-sonnet-5-5", exit_price="105", confidence="0.65")
    signal_outcomes_settle()

    prompt_performance_refresh()

    sonnet_v1 = PromptPerformance.objects.get(prompt_version=v1, model="claude-sonnet-5-5")
    assert (sonnet_v1.signals, sonnet_v1.buys, sonnet_v1.holds) == (4, 3, 1)
    assert (sonnet_v1.wins, sonnet_v1.losses, sonnet_v1.scratches) == (2, 1, 0)
    assert sonnet_v1.hit_rate == Decimal("0.6667")
    assert sonnet_v1.average_confidence == Decimal("0.7000")
    assert sonnet_v1.average_r_multiple == Decimal("0.8333")  # (2 - 1 + 1.5) / 3
    haiku_v1 = PromptPerformance.objects.get(prompt_version=v1, model="claude-haiku-5-5")
    assert (haiku_v1.wins, haiku_v1.losses, haiku_v1.hit_rate) == (0, 1, Decimal("0"))
    assert PromptPerformance.objects.get(prompt_version=v2).hit_rate == Decimal("1")


def test_rules_baseline_is_reported_without_a_prompt_version(strategy):
    closed_trade(strategy, version=None, model="rules", exit_price="110")

    signal_outcomes_settle()
    rows = TradingSignal.objects.performance()

    assert [(r["prompt_version"], r["model"], r["wins"]) for r in rows] == [(None, "rules", 1)]
    assert prompt_performance_refresh() == []


def test_calibration_sets_average_confidence_against_hit_rate(strategy):
    version = PromptVersionFactory()
    for confidence, exit_price in [("0.85", "110"), ("0.90", "110"), ("0.82", "95"), ("0.55", "95"), ("0.50", "95")]:
        closed_trade(strategy, version=version, model="m", exit_price=exit_price, confidence=confidence)
    signal_outcomes_settle()

    buckets = TradingSignal.objects.filter(prompt_version=version).calibration(buckets=5)

    assert [(b["low"], b["trades"], b["hit_rate"]) for b in buckets] == [
        (Decimal("0.4"), 2, Decimal("0")),
        (Decimal("0.8"), 3, Decimal("0.6667")),
    ]
    assert buckets[1]["average_confidence"] == Decimal("0.8567")
