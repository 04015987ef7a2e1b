from typing import TYPE_CHECKING

from django.contrib import admin
from django.http import HttpRequest

from orders.models import Order, OrderStatusChange, Trade

# The admin classes are generic in django-stubs only: at run time they take no type arguments.
if TYPE_CHECKING:
    StatusChangeInlineBase = admin.TabularInline[OrderStatusChange, Order]
    TradeInlineBase = admin.TabularInline[Trade, Order]
    OrderAdminBase = admin.ModelAdmin[Order]
    StatusChangeAdminBase = admin.ModelAdmin[OrderStatusChange]
    TradeAdminBase = admin.ModelAdmin[Trade]
else:
    StatusChangeInlineBase = TradeInlineBase = admin.TabularInline
    OrderAdminBase = StatusChangeAdminBase = TradeAdminBase = admin.ModelAdmin


class OrderStatusChangeInline(StatusChangeInlineBase):
    model = OrderStatusChange
    extra = 0
    can_delete = False
    readonly_fields = ["from_status", "to_status", "reason", "changed_at"]

    def has_add_permission(self, request: HttpRequest, obj: Order | None = None) -> bool:
        return False


class TradeInline(TradeInlineBase):
    model = Trade
    extra = 0
    can_delete = False
    readonly_fields = ["quantity", "price", "commission", "executed_at", "realized_pnl", "broker_execution_id"]

    def has_add_permission(self, request: HttpRequest, obj: Order | None = None) -> bool:
        return False


@admin.register(Order)
class OrderAdmin(OrderAdminBase):
    list_display = [
        "client_order_id",
        "owner",
        "symbol",
        "side",
        "order_type",
        "quantity",
        "limit_price",
        "status",
        "filled_quantity",
        "created_at",
    ]
    list_filter = ["status", "side", "order_type", "source", "leg"]
    search_fields = ["client_order_id", "broker_order_id", "symbol__symbol", "owner__username"]
    list_select_related = ["owner", "symbol"]
    raw_id_fields = ["strategy", "signal", "symbol", "position", "parent", "broker_connection"]
    date_hierarchy = "created_at"
    inlines = [OrderStatusChangeInline, TradeInline]

    def get_readonly_fields(self, request: HttpRequest, obj: Order | None = None) -> list[str]:
        # Orders change only through the order service; the admin is for reading them.
        return [field.name for field in self.model._meta.fields] if obj else []


@admin.register(OrderStatusChange)
class OrderStatusChangeAdmin(StatusChangeAdminBase):
    list_display = ["order", "from_status", "to_status", "reason", "changed_at"]
    list_filter = ["to_status"]
    search_fields = ["order__client_order_id", "reason"]
    list_select_related = ["order__symbol"]


@admin.register(Trade)
class TradeAdmin(TradeAdminBase):
    list_display = ["broker_execution_id", "order", "quantity", "price", "commission", "realized_pnl", "executed_at"]
    search_fields = ["broker_execution_id", "order__client_order_id"]
    list_select_related = ["order__symbol"]
    date_hierarchy = "executed_at"
