"""Every factory builds a row the database accepts and that passes model validation (constraints included)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.apps import apps

from signals_app.models import SignalAction
from tests import factories

# The shared data model of issue 2. Later issues add models of their own with their own factories.
FOUNDATION_MODELS = {
    "auth.User",
    "core.UserProfile",
    "brokers.BrokerConnection",
    "market.IndicatorConfig",
    "trading.Strategy",
    "trading.StrategyIndicator",
    "trading.StrategyExecution",
    "market.Symbol",
    "market.Bar",
    "signals_app.PromptTemplate",
    "signals_app.PromptVersion",
    "signals_app.TradingSignal",
    "signals_app.PromptPerformance",
    "orders.Order",
    "orders.OrderStatusChange",
    "orders.Trade",
    "portfolio.Position",
    "portfolio.PortfolioSnapshot",
    "lineage.LineageRecord",
}
ALL_FACTORIES = [
    getattr(factories, name)
    for name in sorted(dir(factories))
    if name.endswith("Factory") and hasattr(getattr(factories, name), "_meta")
]


@pytest.mark.django_db
@pytest.mark.parametrize("factory_class", ALL_FACTORIES, ids=lambda f: f.__name__)
def test_factory_default_row_is_valid(factory_class):
    row = factory_class()

    row.full_clean(exclude=["password"] if factory_class is factories.UserFactory else None)
    assert type(row).objects.filter(pk=row.pk).exists()


def test_every_foundation_model_has_a_factory():
    models_with_factory = {f._meta.model for f in ALL_FACTORIES}
    foundation = {apps.get_model(label) for label in FOUNDATION_MODELS}

    assert foundation - models_with_factory == set()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "trait",
    [
        (factories.TradingSignalFactory, {"sell": True}),
        (factories.TradingSignalFactory, {"hold": True}),
        (factories.PositionFactory, {"closed": True}),
        (factories.OrderFactory, {"market": True}),
        (factories.OrderFactory, {"filled": True}),
        (factories.BrokerConnectionFactory, {"ibkr": True}),
        (factories.StrategyExecutionFactory, {"finished": True}),
        (factories.LineageRecordFactory, {"failed": True}),
        (factories.PromptTemplateFactory, {"owner": None}),
        (factories.UserFactory, {"staff": True}),
    ],
    ids=lambda t: f"{t[0].__name__}-{'-'.join(t[1])}",
)
def test_factory_traits_are_valid(trait):
    factory_class, kwargs = trait

    row = factory_class(**kwargs)

    row.full_clean(exclude=["password"] if factory_class is factories.UserFactory else None)


@pytest.mark.django_db
def test_prompt_versions_number_one_two_three_per_template():
    template = factories.PromptTemplateFactory()
    other = factories.PromptTemplateFactory()

    numbers = [factories.PromptVersionFactory(template=template).number for _ in range(3)]
    other_first = factories.PromptVersionFactory(template=other).number

    assert numbers == [1, 2, 3]
    assert other_first == 1


@pytest.mark.django_db
def test_related_rows_belong_to_the_strategy_owner_and_symbol():
    position = factories.PositionFactory()
    signal = factories.TradingSignalFactory(strategy=position.strategy)
    link = factories.StrategyIndicatorFactory(strategy=position.strategy)

    owner = position.strategy.owner
    assert position.owner == owner and position.symbol == position.strategy.symbol
    assert position.strategy.broker_connection.owner == owner
    assert signal.symbol == position.symbol and signal.execution.strategy == position.strategy
    assert link.indicator.owner == owner
    assert signal.action == SignalAction.BUY and signal.stop_loss < signal.entry_price < signal.take_profit


@pytest.mark.django_db
def test_bars_wrap_open_and_close_in_high_and_low():
    bar = factories.BarFactory(open=Decimal("50.00"), close=Decimal("48.00"))

    assert (bar.low, bar.high) == (Decimal("47.00"), Decimal("51.00"))
