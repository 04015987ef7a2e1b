from django.conf import settings
from django.db import models
from django.db.models import Q

from core.models import DecimalDigits, LiveManager, ReplayMarked
from market.models import PRICE, Symbol
from orders.models import QUANTITY
from portfolio.querysets import PositionQuerySet

MONEY: DecimalDigits = {"max_digits": 18, "decimal_places": 2}


class Position(ReplayMarked):
    """A long position. Quantity never goes below zero: the product does not short."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="positions")
    strategy = models.ForeignKey(
        "trading.Strategy", on_delete=models.SET_NULL, null=True, blank=True, related_name="positions"
    )
    symbol = models.ForeignKey(Symbol, on_delete=models.PROTECT, related_name="positions")
    quantity = models.DecimalField(**QUANTITY, default=0)
    average_cost = models.DecimalField(**PRICE, default=0)
    stop_loss = models.DecimalField(**PRICE, null=True, blank=True)
    take_profit = models.DecimalField(**PRICE, null=True, blank=True)
    realized_pnl = models.DecimalField(max_digits=18, decimal_places=4, default=0)
    opened_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)

    objects = LiveManager.from_queryset(PositionQuerySet)()
    with_replays = PositionQuerySet.as_manager()

    class Meta:
        ordering = ["-opened_at"]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gte=0), name="position_quantity_not_negative"),
            models.CheckConstraint(condition=Q(average_cost__gte=0), name="position_average_cost_not_negative"),
            models.CheckConstraint(condition=Q(closed_at__isnull=True) | Q(quantity=0), name="closed_position_is_flat"),
            models.UniqueConstraint(
                fields=["owner", "strategy", "symbol"],
                condition=Q(closed_at__isnull=True),
                name="one_open_position_per_strategy_symbol",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.symbol.symbol} x{self.quantity} @ {self.average_cost}"


class PortfolioSnapshot(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="portfolio_snapshots")
    cash = models.DecimalField(**MONEY)
    positions_value = models.DecimalField(**MONEY)
    total_value = models.DecimalField(**MONEY)
    realized_pnl = models.DecimalField(**MONEY, default=0)
    unrealized_pnl = models.DecimalField(**MONEY, default=0)
    taken_at = models.DateTimeField()

    class Meta:
        ordering = ["-taken_at"]
        get_latest_by = "taken_at"
        indexes = [models.Index(fields=["owner", "-taken_at"], name="snapshot_owner_recent")]
        constraints = [
            models.CheckConstraint(condition=Q(positions_value__gte=0), name="snapshot_positions_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.owner} {self.total_value} @ {self.taken_at:%Y-%m-%d %H:%M}"


class Reconciliation(models.Model):
    """One comparison of an account's books with the broker's: positions by symbol, cash (a simulated account's, which
    our books know in full) and orders working at the broker that we do not know. A drifted symbol halts entries and
    holds exits until it is resolved: by fills found at the broker (booked automatically), or by the owner accepting
    the broker's position (an adjusting trade `recon-<id>`). Never "fixed" silently."""

    broker_connection = models.ForeignKey(
        "brokers.BrokerConnection", on_delete=models.CASCADE, related_name="reconciliations"
    )
    has_drift = models.BooleanField(default=False)
    drift = models.JSONField(
        default=list,
        blank=True,
        help_text="[{symbol, ours, broker}] positions that differ; [{kind: order, ...}] broker orders we do not know",
    )
    cash_ours = models.DecimalField(**MONEY, null=True, blank=True)
    cash_broker = models.DecimalField(**MONEY, null=True, blank=True)
    resolutions = models.JSONField(
        default=list, blank=True, help_text="[{symbol, by, at, trade_ids, note}] the owner's resolutions of this drift"
    )
    checked_at = models.DateTimeField()

    class Meta:
        ordering = ["-checked_at"]
        get_latest_by = "checked_at"
        indexes = [models.Index(fields=["broker_connection", "-checked_at"], name="reconciliation_recent")]

    def __str__(self) -> str:
        return f"{self.broker_connection} {self.checked_at:%Y-%m-%d %H:%M} {'DRIFT' if self.has_drift else 'ok'}"

    @property
    def position_drift(self) -> list[dict[str, str]]:
        return [d for d in self.drift if "symbol" in d and d.get("kind", "position") == "position"]

    @property
    def other_drift(self) -> list[dict[str, str]]:
        return [d for d in self.drift if d.get("kind", "position") != "position"]

    def resolved(self, symbol: str) -> bool:
        return any(r["symbol"] == symbol for r in self.resolutions)
