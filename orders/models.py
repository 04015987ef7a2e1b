from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import models, transaction
from django.db.models import F, Q
from django.utils import timezone

from core.models import DecimalDigits, LiveManager, ReplayMarked
from market.models import PRICE, Symbol
from orders.querysets import OrderQuerySet
from orders.statuses import OPEN_STATUSES, ORDER_TRANSITIONS, TERMINAL_STATUSES, OrderStatus

QUANTITY: DecimalDigits = {"max_digits": 18, "decimal_places": 6}


class InvalidTransition(Exception):
    pass


class OrderSide(models.TextChoices):
    BUY = "BUY"
    SELL = "SELL"


class OrderType(models.TextChoices):
    LIMIT = "LMT", "Limit"
    MARKET = "MKT", "Market"
    STOP = "STP", "Stop"
    STOP_LIMIT = "STOP_LIMIT", "Stop limit"


class TimeInForce(models.TextChoices):
    DAY = "DAY"
    GTC = "GTC"
    IOC = "IOC"
    OPG = "OPG"


class OrderLeg(models.TextChoices):
    ENTRY = "entry"
    STOP = "stop"
    TARGET = "target"
    EXIT = "exit", "exit (closes a position)"


class OrderSource(models.TextChoices):
    STRATEGY = "strategy"
    MANUAL = "manual"
    STOP_WATCH = "stop_watch", "stop/target watch"
    RECONCILIATION = "reconciliation", "reconciliation (booked, never sent)"


class Order(ReplayMarked):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="orders")
    strategy = models.ForeignKey(
        "trading.Strategy", on_delete=models.SET_NULL, null=True, blank=True, related_name="orders"
    )
    signal = models.ForeignKey(
        "signals_app.TradingSignal", on_delete=models.SET_NULL, null=True, blank=True, related_name="orders"
    )
    broker_connection = models.ForeignKey(
        "brokers.BrokerConnection", on_delete=models.PROTECT, null=True, blank=True, related_name="orders"
    )
    source = models.CharField(max_length=16, choices=OrderSource.choices, default=OrderSource.MANUAL)
    symbol = models.ForeignKey(Symbol, on_delete=models.PROTECT, related_name="orders")
    conid = models.BigIntegerField(null=True, blank=True)
    position = models.ForeignKey(
        "portfolio.Position", on_delete=models.SET_NULL, null=True, blank=True, related_name="closing_orders"
    )
    parent = models.ForeignKey("self", on_delete=models.CASCADE, null=True, blank=True, related_name="children")
    leg = models.CharField(max_length=8, choices=OrderLeg.choices, default=OrderLeg.ENTRY)
    client_order_id = models.CharField(max_length=64, unique=True)
    broker_order_id = models.CharField(max_length=64, blank=True, db_index=True)
    side = models.CharField(max_length=4, choices=OrderSide.choices)
    order_type = models.CharField(max_length=12, choices=OrderType.choices, default=OrderType.LIMIT)
    quantity = models.DecimalField(**QUANTITY)
    limit_price = models.DecimalField(**PRICE, null=True, blank=True)
    stop_price = models.DecimalField(**PRICE, null=True, blank=True)
    time_in_force = models.CharField(max_length=4, choices=TimeInForce.choices, default=TimeInForce.DAY)
    status = models.CharField(max_length=16, choices=OrderStatus.choices, default=OrderStatus.PENDING)
    status_reason = models.TextField(blank=True, help_text="why it was rejected, expired or went unknown")
    filled_quantity = models.DecimalField(**QUANTITY, default=0)
    average_fill_price = models.DecimalField(**PRICE, null=True, blank=True)
    payload = models.JSONField(default=dict, blank=True, help_text="what was sent to the broker")
    created_at = models.DateTimeField(default=timezone.now)
    submitted_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    objects = LiveManager.from_queryset(OrderQuerySet)()
    with_replays = OrderQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["owner", "status"], name="order_owner_status"),
            models.Index(fields=["strategy", "-created_at"], name="order_strategy_recent"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=OrderStatus.values), name="order_status_valid"),
            models.CheckConstraint(condition=Q(side__in=OrderSide.values), name="order_side_valid"),
            models.CheckConstraint(condition=Q(order_type__in=OrderType.values), name="order_type_valid"),
            models.CheckConstraint(condition=Q(time_in_force__in=TimeInForce.values), name="order_tif_valid"),
            models.CheckConstraint(condition=Q(leg__in=OrderLeg.values), name="order_leg_valid"),
            models.CheckConstraint(condition=Q(quantity__gt=0), name="order_quantity_positive"),
            models.CheckConstraint(
                condition=Q(filled_quantity__gte=0, filled_quantity__lte=F("quantity")),
                name="order_filled_within_quantity",
            ),
            models.CheckConstraint(
                condition=(Q(limit_price__isnull=True) | Q(limit_price__gt=0))
                & (Q(stop_price__isnull=True) | Q(stop_price__gt=0)),
                name="order_prices_positive",
            ),
            models.CheckConstraint(
                condition=~Q(order_type__in=["LMT", "STOP_LIMIT"]) | Q(limit_price__isnull=False),
                name="order_limit_has_limit_price",
            ),
            models.CheckConstraint(
                condition=~Q(order_type__in=["STP", "STOP_LIMIT"]) | Q(stop_price__isnull=False),
                name="order_stop_has_stop_price",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.side} {self.quantity} {self.symbol.symbol} [{self.client_order_id}] {self.status}"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    def can_transition_to(self, status: str) -> bool:
        return status in ORDER_TRANSITIONS[self.status]

    def transition_to(self, status: str, *, reason: str = "", at: dt.datetime | None = None, **fields: object) -> None:
        """Move to `status` if the map allows it, save `fields` with it, and write a history row.

        The update is conditional on the status we read, so two processes racing to move the same order cannot both
        win: the loser gets InvalidTransition and re-reads.
        """
        if not self.can_transition_to(status):
            raise InvalidTransition(f"order {self.client_order_id}: {self.status} -> {status} is not allowed")
        at = at or timezone.now()
        changes = {"status": status, "updated_at": timezone.now(), **fields}
        if reason:
            changes["status_reason"] = reason
        if status in TERMINAL_STATUSES:
            changes["closed_at"] = at
        with transaction.atomic():
            updated = Order.with_replays.filter(pk=self.pk, status=self.status).update(**changes)
            if updated != 1:
                raise InvalidTransition(f"order {self.client_order_id} changed under us (was {self.status})")
            OrderStatusChange.objects.create(
                order=self,
                is_replay=self.is_replay,
                from_status=self.status,
                to_status=status,
                reason=reason,
                changed_at=at,
            )
        for name, value in changes.items():
            setattr(self, name, value)


class OrderStatusChange(ReplayMarked):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="status_changes")
    from_status = models.CharField(max_length=16, choices=OrderStatus.choices)
    to_status = models.CharField(max_length=16, choices=OrderStatus.choices)
    reason = models.TextField(blank=True)
    changed_at = models.DateTimeField(default=timezone.now)

    objects = LiveManager["OrderStatusChange"]()
    with_replays = models.Manager["OrderStatusChange"]()

    class Meta:
        ordering = ["order", "changed_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(from_status__in=OrderStatus.values) & Q(to_status__in=OrderStatus.values),
                name="order_status_change_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.order.client_order_id}: {self.from_status} -> {self.to_status}"


class Trade(ReplayMarked):
    """One fill (execution) of an order."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="trades")
    quantity = models.DecimalField(**QUANTITY)
    price = models.DecimalField(**PRICE)
    commission = models.DecimalField(max_digits=18, decimal_places=4, default=0)
    executed_at = models.DateTimeField()
    realized_pnl = models.DecimalField(max_digits=18, decimal_places=4, null=True, blank=True)
    broker_execution_id = models.CharField(max_length=64, unique=True)

    objects = LiveManager["Trade"]()
    with_replays = models.Manager["Trade"]()

    class Meta:
        ordering = ["-executed_at"]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="trade_quantity_positive"),
            models.CheckConstraint(condition=Q(price__gt=0), name="trade_price_positive"),
            models.CheckConstraint(condition=Q(commission__gte=0), name="trade_commission_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.order.side} {self.quantity} @ {self.price} ({self.broker_execution_id})"
