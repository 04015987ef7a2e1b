"""API: orders (list, status, cancel); the manual order's POST is portfolio.api's."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, cast

from django.contrib.auth.models import User
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from brokers.interface import BrokerError
from brokers.models import BrokerConnection
from core.api import OwnedPrimaryKeyField, UpperChoiceField, list_filters
from market.models import Symbol
from orders import services
from orders.models import Order, OrderSide, OrderStatusChange, OrderType, TimeInForce, Trade
from orders.querysets import OrderQuerySet
from orders.statuses import OrderStatus


class StatusChangeSerializer(serializers.ModelSerializer[OrderStatusChange]):
    class Meta:
        model = OrderStatusChange
        fields = ["from_status", "to_status", "reason", "changed_at"]
        read_only_fields = fields


class TradeSerializer(serializers.ModelSerializer[Trade]):
    class Meta:
        model = Trade
        fields = ["quantity", "price", "commission", "executed_at", "realized_pnl", "broker_execution_id"]
        read_only_fields = fields


class OrderSerializer(serializers.ModelSerializer[Order]):
    symbol_ticker = serializers.CharField(source="symbol.symbol", read_only=True)

    class Meta:
        model = Order
        fields = [
            "id",
            "client_order_id",
            "broker_order_id",
            "strategy",
            "signal",
            "broker_connection",
            "source",
            "symbol",
            "symbol_ticker",
            "leg",
            "parent",
            "side",
            "order_type",
            "quantity",
            "limit_price",
            "stop_price",
            "time_in_force",
            "status",
            "status_reason",
            "filled_quantity",
            "average_fill_price",
            "created_at",
            "submitted_at",
            "closed_at",
        ]
        read_only_fields = fields


class OrderDetailSerializer(OrderSerializer):
    status_changes = StatusChangeSerializer(many=True, read_only=True)
    trades = TradeSerializer(many=True, read_only=True)

    class Meta(OrderSerializer.Meta):
        fields = [*OrderSerializer.Meta.fields, "status_changes", "trades"]
        read_only_fields = fields


class ManualOrderSerializer(serializers.Serializer[Order]):  # the input of an Order (the order service makes it)
    broker_connection = OwnedPrimaryKeyField(queryset=BrokerConnection.objects.all())
    symbol = serializers.PrimaryKeyRelatedField(queryset=Symbol.objects.all())
    side = serializers.ChoiceField(choices=OrderSide.choices)
    quantity = serializers.DecimalField(max_digits=18, decimal_places=6, min_value=Decimal("0.000001"))
    order_type = serializers.ChoiceField(choices=OrderType.choices, default=OrderType.LIMIT)
    limit_price = serializers.DecimalField(
        max_digits=18, decimal_places=6, min_value=Decimal("0.000001"), required=False, allow_null=True
    )
    stop_price = serializers.DecimalField(
        max_digits=18, decimal_places=6, min_value=Decimal("0.000001"), required=False, allow_null=True
    )
    tif = serializers.ChoiceField(choices=TimeInForce.choices, default=TimeInForce.DAY)
    client_order_id = serializers.RegexField(
        r"^m-[0-9a-f]{24}$",
        required=False,
        help_text="send the same id again and you get the same order back (no second order)",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        order_type = attrs.get("order_type")
        errors = {}
        if order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT) and attrs.get("limit_price") is None:
            errors["limit_price"] = ["A limit order needs a limit price."]
        if order_type in (OrderType.STOP, OrderType.STOP_LIMIT) and attrs.get("stop_price") is None:
            errors["stop_price"] = ["A stop order needs a stop price."]
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class OrderQuery(serializers.Serializer[None]):  # query parameters: never given an instance
    status = UpperChoiceField(choices=[("OPEN", "Open (not settled)"), *OrderStatus.choices])


class OrderViewSet(viewsets.ReadOnlyModelViewSet[Order]):
    """Your orders, and cancel (POSTing a manual order is portfolio.api.ManualOrderViewSet's: a SELL closes a
    position of the books)."""

    queryset = Order.objects.none()  # for the schema; get_queryset gives the user's own

    @extend_schema(parameters=[OrderQuery])
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    def get_queryset(self) -> OrderQuerySet:
        user = cast(User, self.request.user)  # IsAuthenticated (the API's default permission): a User
        orders = Order.objects.for_owner(user).select_related("symbol").order_by("-created_at")
        if self.action == "retrieve":
            orders = orders.prefetch_related("status_changes", "trades")
        if self.action == "list":
            wanted = list_filters(OrderQuery, self.request).get("status")
            if wanted == "OPEN":
                orders = orders.open()
            elif wanted:
                orders = orders.filter(status=wanted)
        return orders

    def get_serializer_class(self) -> type[serializers.BaseSerializer[Order]]:
        return OrderDetailSerializer if self.action == "retrieve" else OrderSerializer

    @extend_schema(request=None, responses=OrderDetailSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        """Cancel at the broker; the answer is the order's status right after."""
        order = self.get_object()
        try:
            order = services.order_cancel(order=order)
        except services.OrderInputError as error:
            raise serializers.ValidationError({"non_field_errors": [str(error)]}) from None
        except BrokerError as error:
            return Response({"detail": f"broker: {error}"}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        return Response(OrderDetailSerializer(order).data)
