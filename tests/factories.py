"""factory-boy factories for the shared models. Every factory builds a row that passes every database constraint.

Related rows stay consistent by default: a strategy's broker connection, indicators, positions and signals belong
to the strategy's owner and symbol. Override any field by keyword: `OrderFactory(status=OrderStatus.SUBMITTED)`.
Traits name the common variants: `TradingSignalFactory(sell=True)`, `PositionFactory(closed=True)`.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.db.models import Max
from django.utils import timezone

from brokers.models import BrokerConnection, BrokerKind
from core.models import UserProfile
from lineage.models import LineageRecord, LineageStatus
from market.models import AssetType, Bar, BarSize, IndicatorConfig, IndicatorType, MarketDataSource, Symbol
from notifications.models import Delivery, DeliveryState, Notification, NotificationKind
from orders.models import Order, OrderLeg, OrderSide, OrderSource, OrderStatusChange, OrderType, Trade
from orders.statuses import OrderStatus
from portfolio.models import PortfolioSnapshot, Position
from signals_app.models import (
    Analyst,
    PromptPerformance,
    PromptTemplate,
    PromptType,
    PromptVersion,
    SignalAction,
    SignalOutcome,
    TradingSignal,
)
from trading.models import Strategy, StrategyExecution, StrategyIndicator

FIRST_SESSION = dt.datetime(2024, 1, 2, tzinfo=dt.UTC)  # a Tuesday; daily bars are keyed at 00:00 UTC
DEFAULT_PASSWORD = "factory-pass-1234"

# --- Users -------------------------------------------------------------------------------------------------------


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")
    password = factory.django.Password(DEFAULT_PASSWORD)

    class Params:
        staff = factory.Trait(is_staff=True, is_superuser=True)


class UserProfileFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = UserProfile
        django_get_or_create = ("user",)

    user = factory.SubFactory(UserFactory)
    time_zone = "America/New_York"


# --- Market ------------------------------------------------------------------------------------------------------


class SymbolFactory(factory.django.DjangoModelFactory):
    """An instrument without an IBKR contract id (an offline import); pass `conid=` for an IBKR one."""

    class Meta:
        model = Symbol

    symbol = factory.Sequence(lambda n: f"SYM{n}")
    name = factory.LazyAttribute(lambda s: f"{s.symbol} Inc.")
    exchange = "NASDAQ"
    currency = "USD"
    asset_type = AssetType.STOCK
    conid = None
    time_zone = "America/New_York"


class BarFactory(factory.django.DjangoModelFactory):
    """A daily bar on its own session date. Give `open` and `close`; high and low wrap them by `spread`."""

    class Meta:
        model = Bar

    class Params:
        spread = Decimal("1.00")

    symbol = factory.SubFactory(SymbolFactory)
    bar_size = BarSize.D1
    timestamp = factory.Sequence(lambda n: FIRST_SESSION + dt.timedelta(days=n))
    open = Decimal("100.00")
    close = Decimal("101.00")
    high = factory.LazyAttribute(lambda bar: max(Decimal(bar.open), Decimal(bar.close)) + bar.spread)
    low = factory.LazyAttribute(
        lambda bar: max(min(Decimal(bar.open), Decimal(bar.close)) - bar.spread, Decimal("0.01"))
    )
    volume = Decimal("1000000")


# --- Trading -----------------------------------------------------------------------------------------------------


class BrokerConnectionFactory(factory.django.DjangoModelFactory):
    """A simulated broker by default; `BrokerConnectionFactory(ibkr=True)` points at a Client Portal gateway."""

    class Meta:
        model = BrokerConnection

    owner = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"broker {n}")
    kind = BrokerKind.SIMULATED
    starting_cash = Decimal("100000.00")

    class Params:
        ibkr = factory.Trait(
            kind=BrokerKind.IBKR,
            gateway_url="https://localhost:5000/v1/api",
            account_id=factory.Sequence(lambda n: f"DU{1000000 + n}"),
        )


class IndicatorConfigFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = IndicatorConfig

    owner = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"RSI 14 #{n}")
    indicator_type = IndicatorType.RSI
    parameters = factory.LazyFunction(lambda: {"period": 14})


class StrategyFactory(factory.django.DjangoModelFactory):
    """Daily bars, the offline rules analyst and the owner's own simulated broker. It runs on any day (the calendar
    gate is tested with clocks set to holidays and weekends, not by the day the suite happens to run)."""

    class Meta:
        model = Strategy

    owner = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"strategy {n}")
    symbol = factory.SubFactory(SymbolFactory)
    bar_size = BarSize.D1
    lookback_bars = 120
    analyst = Analyst.RULES
    market_data_source = MarketDataSource.STORED
    broker_connection = factory.SubFactory(BrokerConnectionFactory, owner=factory.SelfAttribute("..owner"))
    risk_per_trade = Decimal("0.0100")
    max_position_value = Decimal("10000.00")
    trading_days_only = False
    is_active = True


class StrategyIndicatorFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = StrategyIndicator

    strategy = factory.SubFactory(StrategyFactory)
    indicator = factory.SubFactory(IndicatorConfigFactory, owner=factory.SelfAttribute("..strategy.owner"))
    position = factory.Sequence(lambda n: n)


class StrategyExecutionFactory(factory.django.DjangoModelFactory):
    """A run in progress; `finished=True` for a completed one."""

    class Meta:
        model = StrategyExecution

    strategy = factory.SubFactory(StrategyFactory)
    is_replay = factory.SelfAttribute("strategy.is_replay")
    status = "RUNNING"
    dry_run = False
    trigger = "schedule"
    started_at = factory.LazyFunction(timezone.now)

    class Params:
        finished = factory.Trait(
            status="COMPLETED",
            finished_at=factory.LazyAttribute(lambda run: run.started_at + dt.timedelta(seconds=3)),
        )


# --- Signals and prompts -----------------------------------------------------------------------------------------


class PromptTemplateFactory(factory.django.DjangoModelFactory):
    """An owner's template; `PromptTemplateFactory(owner=None)` is a global one."""

    class Meta:
        model = PromptTemplate

    owner = factory.SubFactory(UserFactory)
    strategy = None
    prompt_type = PromptType.ANALYSIS
    language = "en"
    name = factory.Sequence(lambda n: f"prompt {n}")


def _next_version_number(version) -> int:
    latest = PromptVersion.objects.filter(template=version.template).aggregate(latest=Max("number"))["latest"]
    return (latest or 0) + 1


class PromptVersionFactory(factory.django.DjangoModelFactory):
    """The template's next version: numbers go 1, 2, 3... per template."""

    class Meta:
        model = PromptVersion

    template = factory.SubFactory(PromptTemplateFactory)
    number = factory.LazyAttribute(_next_version_number)
    body = factory.Sequence(lambda n: f"Analyse the {{symbol}} chart and answer BUY, SELL or HOLD. (v{n})")


class TradingSignalFactory(factory.django.DjangoModelFactory):
    """A BUY with stop < entry < target. Traits: `sell=True` (an exit price only), `hold=True` (no prices)."""

    class Meta:
        model = TradingSignal

    strategy = factory.SubFactory(StrategyFactory)
    execution = factory.SubFactory(StrategyExecutionFactory, strategy=factory.SelfAttribute("..strategy"))
    is_replay = factory.SelfAttribute("strategy.is_replay")
    symbol = factory.SelfAttribute("strategy.symbol")
    action = SignalAction.BUY
    entry_price = Decimal("100.00")
    stop_loss = Decimal("95.00")
    take_profit = Decimal("110.00")
    confidence = Decimal("0.7500")
    reasoning = "Higher lows above a rising 20-day average."
    analyst = Analyst.RULES
    generated_at = factory.LazyFunction(timezone.now)
    outcome = SignalOutcome.NONE

    class Params:
        sell = factory.Trait(action=SignalAction.SELL, stop_loss=None, take_profit=None)
        hold = factory.Trait(action=SignalAction.HOLD, entry_price=None, stop_loss=None, take_profit=None)


class PromptPerformanceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PromptPerformance

    prompt_version = factory.SubFactory(PromptVersionFactory)
    model = factory.Sequence(lambda n: f"model-{n}")
    signals = 4
    buys = 2
    sells = 1
    holds = 1
    wins = 1
    losses = 1
    hit_rate = Decimal("0.5000")


# --- Orders ------------------------------------------------------------------------------------------------------


def _marked(*parents) -> bool:
    """A replay's row when any parent is one: as the services mark what they write."""
    return any(parent is not None and parent.is_replay for parent in parents)


class OrderFactory(factory.django.DjangoModelFactory):
    """A manual limit BUY of 10 @ 100, saved and not sent (PENDING)."""

    class Meta:
        model = Order

    owner = factory.SubFactory(UserFactory)
    source = OrderSource.MANUAL
    symbol = factory.SubFactory(SymbolFactory)
    leg = OrderLeg.ENTRY
    client_order_id = factory.Sequence(lambda n: f"test-{n:06d}")
    side = OrderSide.BUY
    order_type = OrderType.LIMIT
    quantity = Decimal("10")
    limit_price = Decimal("100.00")
    status = OrderStatus.PENDING
    is_replay = factory.LazyAttribute(
        lambda o: _marked(getattr(o, "broker_connection", None), getattr(o, "strategy", None))
    )

    class Params:
        market = factory.Trait(order_type=OrderType.MARKET, limit_price=None)
        filled = factory.Trait(
            status=OrderStatus.FILLED,
            filled_quantity=factory.SelfAttribute("quantity"),
            average_fill_price=factory.SelfAttribute("limit_price"),
            submitted_at=factory.LazyFunction(timezone.now),
            closed_at=factory.LazyFunction(timezone.now),
        )


class OrderStatusChangeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = OrderStatusChange

    order = factory.SubFactory(OrderFactory, status=OrderStatus.SUBMITTING)
    is_replay = factory.SelfAttribute("order.is_replay")
    from_status = OrderStatus.PENDING
    to_status = OrderStatus.SUBMITTING
    changed_at = factory.LazyFunction(timezone.now)


class TradeFactory(factory.django.DjangoModelFactory):
    """The one fill of a filled order."""

    class Meta:
        model = Trade

    order = factory.SubFactory(OrderFactory, filled=True)
    is_replay = factory.SelfAttribute("order.is_replay")
    quantity = factory.SelfAttribute("order.quantity")
    price = factory.SelfAttribute("order.average_fill_price")
    commission = Decimal("1.0000")
    executed_at = factory.LazyFunction(timezone.now)
    broker_execution_id = factory.Sequence(lambda n: f"exec-{n:06d}")


# --- Portfolio ---------------------------------------------------------------------------------------------------


class PositionFactory(factory.django.DjangoModelFactory):
    """An open long position of the strategy's symbol; `closed=True` for a flat, closed one."""

    class Meta:
        model = Position

    strategy = factory.SubFactory(StrategyFactory)
    is_replay = factory.LazyAttribute(lambda o: bool(o.strategy and o.strategy.is_replay))
    owner = factory.SelfAttribute("strategy.owner")
    symbol = factory.SelfAttribute("strategy.symbol")
    quantity = Decimal("10")
    average_cost = Decimal("100.00")
    stop_loss = Decimal("95.00")
    take_profit = Decimal("110.00")
    opened_at = factory.LazyFunction(timezone.now)

    class Params:
        closed = factory.Trait(
            quantity=Decimal("0"),
            realized_pnl=Decimal("50.0000"),
            closed_at=factory.LazyAttribute(lambda p: p.opened_at + dt.timedelta(days=1)),
        )


class PortfolioSnapshotFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PortfolioSnapshot

    owner = factory.SubFactory(UserFactory)
    cash = Decimal("99000.00")
    positions_value = Decimal("1000.00")
    total_value = factory.LazyAttribute(lambda snap: snap.cash + snap.positions_value)
    taken_at = factory.LazyFunction(timezone.now)


# --- Lineage -----------------------------------------------------------------------------------------------------


class LineageRecordFactory(factory.django.DjangoModelFactory):
    """A successful step; `failed=True` for an error with its message."""

    class Meta:
        model = LineageRecord

    execution = factory.SubFactory(StrategyExecutionFactory)
    is_replay = factory.SelfAttribute("execution.is_replay")
    step_number = factory.Sequence(lambda n: n + 1)
    step_name = factory.LazyAttribute(lambda rec: f"step_{rec.step_number}")
    input_data = factory.LazyFunction(lambda: {"symbol": "SPY"})
    output_data = factory.LazyFunction(lambda: {"ok": True})
    status = LineageStatus.SUCCESS
    duration_ms = 12

    class Params:
        failed = factory.Trait(status=LineageStatus.ERROR, error="upstream timed out", output_data={})


# --- Notifications -----------------------------------------------------------------------------------------------


class DeliveryFactory(factory.django.DjangoModelFactory):
    """One delivery of a notification: mail to the owner's account address (a server default), sent."""

    class Meta:
        model = Delivery

    notification = factory.SubFactory("tests.factories.NotificationFactory", delivery=None)
    default_key = "mail"
    destination = factory.LazyAttribute(lambda d: f"mail to {d.notification.owner.email}")
    state = DeliveryState.SENT
    attempts = 1
    sent_at = factory.LazyAttribute(lambda d: timezone.now() if d.state == DeliveryState.SENT else None)
    next_attempt_at = None


class NotificationFactory(factory.django.DjangoModelFactory):
    """A run-failed notification mailed to the strategy's owner (notifications.services stores one per event),
    with one delivery: `delivery__state="failed", delivery__error=...` for one that failed, `delivery=None` for
    none."""

    class Meta:
        model = Notification
        skip_postgeneration_save = True

    execution = factory.SubFactory(StrategyExecutionFactory, status="FAILED", error="llm_analysis: timed out")
    strategy = factory.SelfAttribute("execution.strategy")
    owner = factory.SelfAttribute("strategy.owner")
    kind = NotificationKind.RUN_FAILED
    subject = factory.LazyAttribute(lambda n: f"Run failed: {n.strategy.name}")
    body = factory.LazyAttribute(lambda n: n.execution.error)
    delivery = factory.RelatedFactory(DeliveryFactory, factory_related_name="notification")
