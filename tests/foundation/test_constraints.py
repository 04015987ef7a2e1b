"""The database refuses what must never be stored, and model validation reports the same before it gets there.

Each case arranges one violation of one constraint. The database path asserts the IntegrityError names that very
constraint, so a case cannot pass by tripping over another one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from tests import factories as f

D = Decimal


@dataclass(frozen=True)
class Case:
    """`arrange()` creates whatever must already exist and returns (factory, the offending field values)."""

    arrange: Callable[[], tuple[type, dict]]
    constraints: frozenset[str]  # the constraint(s) the database may name; more than one only when unavoidable


def case(id: str, arrange: Callable[[], tuple[type, dict]], *constraints: str):
    return pytest.param(Case(arrange, frozenset(constraints)), id=id)


def simple(factory: type, **values) -> Callable[[], tuple[type, dict]]:
    return lambda: (factory, values)


def duplicate_bar():
    bar = f.BarFactory()
    return f.BarFactory, {"symbol": bar.symbol, "bar_size": bar.bar_size, "timestamp": bar.timestamp}


def duplicate_client_order_id():
    return f.OrderFactory, {"client_order_id": f.OrderFactory().client_order_id}


def duplicate_broker_execution_id():
    return f.TradeFactory, {"broker_execution_id": f.TradeFactory().broker_execution_id}


def second_open_position():
    open_position = f.PositionFactory()
    return f.PositionFactory, {
        "owner": open_position.owner,
        "strategy": open_position.strategy,
        "symbol": open_position.symbol,
    }


def duplicate_lineage_step():
    record = f.LineageRecordFactory()
    return f.LineageRecordFactory, {"execution": record.execution, "step_name": record.step_name}


def duplicate_strategy_name():
    strategy = f.StrategyFactory()
    return f.StrategyFactory, {"owner": strategy.owner, "name": strategy.name}


def duplicate_prompt_version_number():
    version = f.PromptVersionFactory()
    return f.PromptVersionFactory, {"template": version.template, "number": version.number}


def duplicate_global_prompt_name():
    return f.PromptTemplateFactory, {"owner": None, "name": f.PromptTemplateFactory(owner=None).name}


def duplicate_conid():
    return f.SymbolFactory, {"conid": f.SymbolFactory(conid=265598).conid}


def duplicate_symbol_on_exchange():
    symbol = f.SymbolFactory()
    return f.SymbolFactory, {"symbol": symbol.symbol, "exchange": symbol.exchange}


def strategy_prompt_without_owner():
    return f.PromptTemplateFactory, {"owner": None, "strategy": f.StrategyFactory()}


def closed_position_with_quantity():
    position = f.PositionFactory.build()
    return f.PositionFactory, {"quantity": D(5), "closed_at": position.opened_at}


def execution_finished_before_start():
    execution = f.StrategyExecutionFactory.build()
    return f.StrategyExecutionFactory, {
        "started_at": execution.started_at,
        "finished_at": execution.started_at.replace(year=execution.started_at.year - 1),
    }


HOLD = {"action": "HOLD", "entry_price": None, "stop_loss": None, "take_profit": None}

CASES = [
    # market
    case("bar-high-below-low", simple(f.BarFactory, open=D(100), close=D(100), high=D(99), low=D(101)),
         "bar_high_not_below_low", "bar_open_within_range", "bar_close_within_range"),
    case("bar-open-above-high", simple(f.BarFactory, open=D(110), close=D(100), high=D(105), low=D(95)),
         "bar_open_within_range"),
    case("bar-open-below-low", simple(f.BarFactory, open=D(90), close=D(100), high=D(105), low=D(95)),
         "bar_open_within_range"),
    case("bar-close-outside-range", simple(f.BarFactory, open=D(100), close=D(120), high=D(105), low=D(95)),
         "bar_close_within_range"),
    case("bar-negative-price", simple(f.BarFactory, open=D(1), close=D(1), high=D(2), low=D(-1)),
         "bar_prices_positive"),
    case("bar-negative-volume", simple(f.BarFactory, volume=D(-1)), "bar_volume_not_negative"),
    case("bar-unknown-size", simple(f.BarFactory, bar_size="2min"), "bar_size_valid"),
    case("bar-duplicate-instant", duplicate_bar, "bar_unique_per_instant"),
    case("symbol-duplicate-conid", duplicate_conid, "market_symbol_conid_key"),
    case("symbol-negative-conid", simple(f.SymbolFactory, conid=-5), "symbol_conid_positive"),
    case("symbol-duplicate-on-exchange", duplicate_symbol_on_exchange, "symbol_unique_per_exchange"),
    # orders
    case("order-zero-quantity", simple(f.OrderFactory, quantity=D(0)), "order_quantity_positive"),
    case("order-filled-above-quantity", simple(f.OrderFactory, quantity=D(10), filled_quantity=D(11)),
         "order_filled_within_quantity"),
    case("order-negative-filled", simple(f.OrderFactory, filled_quantity=D(-1)), "order_filled_within_quantity"),
    case("order-limit-without-limit-price", simple(f.OrderFactory, order_type="LMT", limit_price=None),
         "order_limit_has_limit_price"),
    case("order-stop-without-stop-price", simple(f.OrderFactory, order_type="STP", limit_price=None, stop_price=None),
         "order_stop_has_stop_price"),
    case("order-negative-limit-price", simple(f.OrderFactory, limit_price=D(-1)), "order_prices_positive"),
    case("order-unknown-status", simple(f.OrderFactory, status="DONE"), "order_status_valid"),
    case("order-unknown-side", simple(f.OrderFactory, side="HOLD"), "order_side_valid"),
    case("order-unknown-type", simple(f.OrderFactory, order_type="TRAIL", limit_price=None), "order_type_valid"),
    case("order-unknown-time-in-force", simple(f.OrderFactory, time_in_force="FOK"), "order_tif_valid"),
    case("order-unknown-leg", simple(f.OrderFactory, leg="hedge"), "order_leg_valid"),
    case("order-duplicate-client-order-id", duplicate_client_order_id, "orders_order_client_order_id_key"),
    case("status-change-unknown-status", simple(f.OrderStatusChangeFactory, to_status="DONE"),
         "order_status_change_valid"),
    case("trade-zero-quantity", simple(f.TradeFactory, quantity=D(0)), "trade_quantity_positive"),
    case("trade-zero-price", simple(f.TradeFactory, price=D(0)), "trade_price_positive"),
    case("trade-negative-commission", simple(f.TradeFactory, commission=D(-1)), "trade_commission_not_negative"),
    case("trade-duplicate-execution-id", duplicate_broker_execution_id, "orders_trade_broker_execution_id_key"),
    # portfolio
    case("position-negative-quantity", simple(f.PositionFactory, quantity=D(-1)), "position_quantity_not_negative"),
    case("position-negative-average-cost", simple(f.PositionFactory, average_cost=D(-1)),
         "position_average_cost_not_negative"),
    case("position-second-open-for-strategy-symbol", second_open_position, "one_open_position_per_strategy_symbol"),
    case("position-closed-with-quantity", closed_position_with_quantity,
         "closed_position_is_flat"),
    case("snapshot-negative-positions-value", simple(f.PortfolioSnapshotFactory, positions_value=D(-1)),
         "snapshot_positions_not_negative"),
    # signals and prompts
    case("signal-confidence-above-one", simple(f.TradingSignalFactory, confidence=D("1.5")),
         "signal_confidence_in_range"),
    case("signal-confidence-negative", simple(f.TradingSignalFactory, confidence=D("-0.1")),
         "signal_confidence_in_range"),
    case("signal-buy-stop-above-entry", simple(f.TradingSignalFactory, stop_loss=D(105)),
         "signal_buy_stop_below_entry_below_target"),
    case("signal-buy-target-below-entry", simple(f.TradingSignalFactory, take_profit=D(99)),
         "signal_buy_stop_below_entry_below_target"),
    case("signal-buy-without-entry", simple(f.TradingSignalFactory, entry_price=None),
         "signal_buy_stop_below_entry_below_target"),
    case("signal-buy-without-stop", simple(f.TradingSignalFactory, stop_loss=None),
         "signal_buy_stop_below_entry_below_target"),
    case("signal-buy-without-target", simple(f.TradingSignalFactory, take_profit=None),
         "signal_buy_stop_below_entry_below_target"),
    case("signal-sell-without-exit-price", simple(f.TradingSignalFactory, **{**HOLD, "action": "SELL"}),
         "signal_sell_has_exit_price"),
    case("signal-negative-price", simple(f.TradingSignalFactory, **{**HOLD, "stop_loss": D(-1)}),
         "signal_prices_positive"),
    case("signal-unknown-action", simple(f.TradingSignalFactory, **{**HOLD, "action": "LONG"}), "signal_action_valid"),
    case("signal-unknown-analyst", simple(f.TradingSignalFactory, analyst="oracle"), "signal_analyst_valid"),
    case("prompt-version-zero", simple(f.PromptVersionFactory, number=0), "prompt_version_number_positive"),
    case("prompt-version-duplicate-number", duplicate_prompt_version_number, "prompt_version_number_unique"),
    case("prompt-global-duplicate-name", duplicate_global_prompt_name, "global_prompt_name_unique"),
    case("prompt-strategy-template-without-owner", strategy_prompt_without_owner, "strategy_prompt_has_owner"),
    case("prompt-performance-hit-rate-above-one", simple(f.PromptPerformanceFactory, hit_rate=D("1.2")),
         "prompt_performance_hit_rate_in_range"),
    # trading
    case("strategy-risk-per-trade-zero", simple(f.StrategyFactory, risk_per_trade=D(0)),
         "strategy_risk_per_trade_in_range"),
    case("strategy-risk-per-trade-above-ten-percent", simple(f.StrategyFactory, risk_per_trade=D("0.2")),
         "strategy_risk_per_trade_in_range"),
    case("strategy-min-confidence-above-one", simple(f.StrategyFactory, min_confidence=D("1.1")),
         "strategy_min_confidence_in_range"),
    case("strategy-lookback-below-20", simple(f.StrategyFactory, lookback_bars=5), "strategy_lookback_at_least_20"),
    case("strategy-non-positive-max-position", simple(f.StrategyFactory, max_position_value=D(0)),
         "strategy_max_position_positive"),
    case("strategy-unknown-analyst", simple(f.StrategyFactory, analyst="oracle"), "strategy_analyst_valid"),
    case("strategy-unknown-data-source", simple(f.StrategyFactory, market_data_source="tape"),
         "strategy_data_source_valid"),
    case("strategy-duplicate-name-per-owner", duplicate_strategy_name, "strategy_name_unique_per_owner"),
    case("broker-ibkr-without-gateway-url", simple(f.BrokerConnectionFactory, kind="ibkr", gateway_url=""),
         "ibkr_connection_has_gateway_url"),
    case("broker-negative-starting-cash", simple(f.BrokerConnectionFactory, starting_cash=D(-1)),
         "broker_starting_cash_not_negative"),
    case("execution-unknown-status", simple(f.StrategyExecutionFactory, status="DONE"), "execution_status_valid"),
    case("execution-finished-before-start", execution_finished_before_start, "execution_finishes_after_start"),
    # lineage
    case("lineage-duplicate-step-per-execution", duplicate_lineage_step, "lineage_step_unique_per_execution"),
    case("lineage-error-without-message", simple(f.LineageRecordFactory, status="error", error=""),
         "lineage_error_has_message"),
    case("lineage-unknown-status", simple(f.LineageRecordFactory, status="maybe", error="x"), "lineage_status_valid"),
]  # fmt: skip


def violated_constraint(error: IntegrityError) -> str:
    return error.__cause__.diag.constraint_name


@pytest.mark.django_db
@pytest.mark.parametrize("violation", CASES)
def test_database_refuses_the_row(violation: Case):
    factory, values = violation.arrange()

    with pytest.raises(IntegrityError) as refused, transaction.atomic():
        factory(**values)

    assert violated_constraint(refused.value) in violation.constraints


@pytest.mark.django_db
@pytest.mark.parametrize("violation", CASES)
def test_model_validation_reports_the_violation(violation: Case):
    factory, values = violation.arrange()
    row = factory()  # a valid row of the same kind, then given the offending values
    for name, value in values.items():
        setattr(row, name, value)

    with pytest.raises(ValidationError) as invalid:
        row.full_clean(exclude=["password"])

    reported = str(invalid.value.message_dict)
    named = violation.constraints | set(values) | {"already exists"}
    assert any(name in reported for name in named), reported


@pytest.mark.django_db
def test_prompt_version_cannot_be_edited_once_saved():
    version = f.PromptVersionFactory(body="v1 body")
    version.body = "edited body"

    with pytest.raises(ValidationError, match="immutable"):
        version.save()

    version.refresh_from_db()
    assert version.body == "v1 body"
    assert version.sha256 == version.digest("v1 body")


@pytest.mark.django_db
def test_closed_positions_do_not_block_a_new_open_one():
    closed = f.PositionFactory(closed=True)

    reopened = f.PositionFactory(owner=closed.owner, strategy=closed.strategy, symbol=closed.symbol)

    assert reopened.closed_at is None
