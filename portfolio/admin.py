from typing import TYPE_CHECKING

from django.contrib import admin
from django.http import HttpRequest

from portfolio.models import PortfolioSnapshot, Position, Reconciliation
from portfolio.services import drift_words

# The admin classes are generic in django-stubs only: at run time they take no type arguments.
if TYPE_CHECKING:
    PositionAdminBase = admin.ModelAdmin[Position]
    SnapshotAdminBase = admin.ModelAdmin[PortfolioSnapshot]
    ReconciliationAdminBase = admin.ModelAdmin[Reconciliation]
else:
    PositionAdminBase = SnapshotAdminBase = ReconciliationAdminBase = admin.ModelAdmin


@admin.register(Position)
class PositionAdmin(PositionAdminBase):
    list_display = [
        "symbol",
        "owner",
        "strategy",
        "quantity",
        "average_cost",
        "stop_loss",
        "take_profit",
        "opened_at",
        "closed_at",
    ]
    list_filter = ["closed_at"]
    search_fields = ["symbol__symbol", "owner__username", "strategy__name"]
    list_select_related = ["symbol", "owner", "strategy"]


@admin.register(PortfolioSnapshot)
class PortfolioSnapshotAdmin(SnapshotAdminBase):
    list_display = ["owner", "total_value", "cash", "positions_value", "realized_pnl", "unrealized_pnl", "taken_at"]
    search_fields = ["owner__username"]
    list_select_related = ["owner"]
    date_hierarchy = "taken_at"


@admin.register(Reconciliation)
class ReconciliationAdmin(ReconciliationAdminBase):
    """Every check of an account against its broker; read-only: a drift is resolved on the portfolio page, where
    accepting the broker's position books an adjusting trade."""

    list_display = ["broker_connection", "checked_at", "has_drift", "differences", "resolved_symbols"]
    list_filter = ["has_drift", "broker_connection__kind"]
    search_fields = ["broker_connection__name", "broker_connection__owner__username"]
    list_select_related = ["broker_connection"]
    date_hierarchy = "checked_at"
    readonly_fields = [
        "broker_connection",
        "checked_at",
        "has_drift",
        "drift",
        "cash_ours",
        "cash_broker",
        "resolutions",
    ]

    @admin.display(description="differences")
    def differences(self, obj: Reconciliation) -> str:
        return "; ".join(drift_words(d) for d in obj.drift) or "—"

    @admin.display(description="resolved")
    def resolved_symbols(self, obj: Reconciliation) -> str:
        return ", ".join(r["symbol"] for r in obj.resolutions) or "—"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Reconciliation | None = None) -> bool:
        return False
