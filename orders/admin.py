from django.contrib import admin

from orders.models import Order, OrderStatusChange, Trade


class OrderStatusChangeInline(admin.TabularInline):
    model = OrderStatusChange
    extra = 0
    can_delete = False
    readonly_fields = ["from_status", "to_status", "reason", "changed_at"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class TradeInline(admin.TabularInline):
    model = Trade
    extra = 0
    can_delete = False
    readonly_fields = ["quantity", "price", "commission", "executed_at", "realized_pnl", "broker_execution_id"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
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

    def get_readonly_fields(self, request, obj=None):
        # Orders change only through the order service; the admin is for reading them.
        return [field.name for field in self.model._meta.fields] if obj else []


@admin.register(OrderStatusChange)
class OrderStatusChangeAdmin(admin.ModelAdmin):
    list_display = ["order", "from_status", "to_status", "reason", "changed_at"]
    list_filter = ["to_status"]
    search_fields = ["order__client_order_id", "reason"]
    list_select_related = ["order__symbol"]


@admin.register(Trade)
class TradeAdmin(admin.ModelAdmin):
    list_display = ["broker_execution_id", "order", "quantity", "price", "commission", "realized_pnl", "executed_at"]
    search_fields = ["broker_execution_id", "order__client_order_id"]
    list_select_related = ["order__symbol"]
    date_hierarchy = "executed_at"
