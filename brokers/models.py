"""Broker connections, and the simulated broker's own ledger. Only `brokers.simulated.SimulatedBroker` reads or
writes the Sim* tables, so reconciling our orders against it is a real comparison of two books."""

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from core.models import DecimalDigits, LiveManager, ReplayMarked
from market.models import PRICE, BarSize, Symbol

QUANTITY: DecimalDigits = {"max_digits": 18, "decimal_places": 6}
CASH: DecimalDigits = {"max_digits": 20, "decimal_places": 4}
MONEY: DecimalDigits = {"max_digits": 18, "decimal_places": 2}

DEFAULT_QUESTION_IDS = ["o163", "o383", "o451", "o10331"]


def default_question_ids() -> list[str]:
    return list(DEFAULT_QUESTION_IDS)


class BrokerKind(models.TextChoices):
    SIMULATED = "simulated", "Simulated"
    IBKR = "ibkr", "Interactive Brokers"


class BrokerConnection(ReplayMarked):
    """Where a strategy's orders go. Never holds a password: IBKR logins happen in the gateway's own page."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="broker_connections")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=16, choices=BrokerKind.choices, default=BrokerKind.SIMULATED)
    gateway_url = models.URLField(blank=True, help_text="e.g. https://localhost:5000/v1/api")
    account_id = models.CharField(max_length=32, blank=True)
    verify_tls = models.CharField(
        max_length=500, default="true", help_text="true, false, or the path of a CA bundle for the gateway"
    )
    allowed_question_ids = models.JSONField(
        default=default_question_ids,
        blank=True,
        help_text="IBKR order questions answered 'yes' because our own guard checks the same thing",
    )
    starting_cash = models.DecimalField(
        **MONEY, default=Decimal("100000.00"), help_text="simulated broker: the cash the account starts with"
    )
    last_keepalive_at = models.DateTimeField(null=True, blank=True)
    authenticated = models.BooleanField(default=False)
    connected = models.BooleanField(default=False)
    competing = models.BooleanField(default=False)
    auth_message = models.CharField(max_length=500, blank=True)
    drift_halted = models.JSONField(
        default=list,
        blank=True,
        editable=False,
        help_text="symbols whose books differ from the broker's: no new entries, exits wait (set by reconciliation)",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = LiveManager["BrokerConnection"]()
    with_replays = models.Manager["BrokerConnection"]()

    class Meta:
        ordering = ["owner", "name"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="broker_connection_name_unique_per_owner"),
            models.CheckConstraint(condition=Q(kind__in=BrokerKind.values), name="broker_connection_kind_valid"),
            models.CheckConstraint(
                condition=Q(kind="simulated") | ~Q(gateway_url=""), name="ibkr_connection_has_gateway_url"
            ),
            models.CheckConstraint(condition=Q(starting_cash__gte=0), name="broker_starting_cash_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"

    @property
    def can_trade(self) -> bool:
        return self.kind == BrokerKind.SIMULATED or (self.authenticated and self.connected and not self.competing)


class SimOrderStatus(models.TextChoices):
    WORKING = "SUBMITTED", "Working"
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"
    REJECTED = "REJECTED"


class SimAccount(models.Model):
    connection = models.OneToOneField(BrokerConnection, on_delete=models.CASCADE, related_name="sim_account")
    cash = models.DecimalField(**CASH)
    commission_per_share = models.DecimalField(max_digits=10, decimal_places=6, default=Decimal("0.005"))
    commission_minimum = models.DecimalField(max_digits=10, decimal_places=4, default=Decimal("1.00"))
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(cash__gte=0), name="sim_cash_not_negative"),
            models.CheckConstraint(
                condition=Q(commission_per_share__gte=0, commission_minimum__gte=0), name="sim_commission_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"sim account of {self.connection_id}: {self.cash}"


class SimOrder(models.Model):
    account = models.ForeignKey(SimAccount, on_delete=models.CASCADE, related_name="orders")
    order_ref = models.CharField(max_length=64, blank=True, help_text="the client order id; blank on children")
    parent = models.ForeignKey("self", on_delete=models.CASCADE, null=True, blank=True, related_name="children")
    symbol = models.ForeignKey(Symbol, on_delete=models.PROTECT, related_name="+")
    bar_size = models.CharField(max_length=8, choices=BarSize.choices, default=BarSize.D1)
    side = models.CharField(max_length=4)
    order_type = models.CharField(max_length=12)
    quantity = models.DecimalField(**QUANTITY)
    limit_price = models.DecimalField(**PRICE, null=True, blank=True)
    stop_price = models.DecimalField(**PRICE, null=True, blank=True)
    tif = models.CharField(max_length=4, default="DAY")
    status = models.CharField(max_length=10, choices=SimOrderStatus.choices, default=SimOrderStatus.WORKING)
    reason = models.CharField(max_length=300, blank=True)
    filled_quantity = models.DecimalField(**QUANTITY, default=0)
    average_price = models.DecimalField(**PRICE, null=True, blank=True)
    placed_at = models.DateTimeField(help_text="market-clock time")
    expires_at = models.DateTimeField(null=True, blank=True, help_text="DAY orders: the session's close")
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["placed_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "order_ref"], condition=~Q(order_ref=""), name="sim_order_ref_unique"
            ),
            models.CheckConstraint(condition=Q(status__in=SimOrderStatus.values), name="sim_order_status_valid"),
            models.CheckConstraint(condition=Q(side__in=["BUY", "SELL"]), name="sim_order_side_valid"),
            models.CheckConstraint(condition=Q(quantity__gt=0), name="sim_order_quantity_positive"),
            models.CheckConstraint(
                condition=Q(filled_quantity__gte=0, filled_quantity__lte=F("quantity")), name="sim_order_fill_bounded"
            ),
        ]

    def __str__(self) -> str:
        return f"sim {self.side} {self.quantity} {self.order_type} [{self.order_ref or self.parent_id}] {self.status}"


class SimFill(models.Model):
    order = models.ForeignKey(SimOrder, on_delete=models.CASCADE, related_name="fills")
    execution_id = models.CharField(max_length=64, unique=True)
    quantity = models.DecimalField(**QUANTITY)
    price = models.DecimalField(**PRICE)
    commission = models.DecimalField(max_digits=18, decimal_places=4)
    executed_at = models.DateTimeField()

    class Meta:
        ordering = ["executed_at", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0, price__gt=0), name="sim_fill_positive"),
        ]

    def __str__(self) -> str:
        return f"sim fill {self.quantity} @ {self.price}"


class SimPosition(models.Model):
    account = models.ForeignKey(SimAccount, on_delete=models.CASCADE, related_name="positions")
    symbol = models.ForeignKey(Symbol, on_delete=models.PROTECT, related_name="+")
    quantity = models.DecimalField(**QUANTITY, default=0)
    average_cost = models.DecimalField(**PRICE, default=0)
    realized_pnl = models.DecimalField(max_digits=18, decimal_places=4, default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "symbol"], name="sim_position_unique"),
            models.CheckConstraint(condition=Q(quantity__gte=0), name="sim_position_not_short"),
        ]

    def __str__(self) -> str:
        return f"sim {self.symbol_id} x{self.quantity}"
