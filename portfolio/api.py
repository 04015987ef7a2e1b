"""API: the portfolio now (valuation), its statistics, a refresh that takes a snapshot, and the trader's manual
orders (the read side is orders.api)."""

from __future__ import annotations

import dataclasses
from typing import Any, cast

from django.contrib.auth.models import User
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response

from brokers.interface import BrokerError
from core.models import DecimalDigits
from orders.api import ManualOrderSerializer, OrderDetailSerializer, OrderViewSet
from orders.models import Order
from orders.services import OrderInputError, order_client_id
from portfolio import services
from portfolio.models import PortfolioSnapshot
from portfolio.services import manual_order_place

MONEY: DecimalDigits = {"max_digits": 18, "decimal_places": 2}


class PositionValueSerializer(serializers.Serializer[dict[str, Any]]):  # a PositionValue as a dict
    position_id = serializers.IntegerField()
    strategy_id = serializers.IntegerField(allow_null=True)
    symbol = serializers.CharField()
    quantity = serializers.DecimalField(max_digits=18, decimal_places=6)
    average_cost = serializers.DecimalField(max_digits=18, decimal_places=6)
    price = serializers.DecimalField(max_digits=18, decimal_places=6, allow_null=True)
    market_value = serializers.DecimalField(**MONEY)
    unrealized_pnl = serializers.DecimalField(**MONEY)


class ValuationSerializer(serializers.Serializer[dict[str, Any]]):  # a Valuation as a dict
    at = serializers.DateTimeField()
    cash = serializers.DecimalField(**MONEY)
    positions_value = serializers.DecimalField(**MONEY)
    total_value = serializers.DecimalField(**MONEY)
    realized_pnl = serializers.DecimalField(**MONEY)
    unrealized_pnl = serializers.DecimalField(**MONEY)
    positions = PositionValueSerializer(many=True)


class StatisticsSerializer(serializers.Serializer[dict[str, Any]]):  # Statistics as a dict
    trades = serializers.IntegerField()
    wins = serializers.IntegerField()
    losses = serializers.IntegerField()
    win_rate = serializers.DecimalField(max_digits=7, decimal_places=4, allow_null=True)
    average_win = serializers.DecimalField(**MONEY, allow_null=True)
    average_loss = serializers.DecimalField(**MONEY, allow_null=True)
    largest_win = serializers.DecimalField(max_digits=18, decimal_places=4, allow_null=True)
    largest_loss = serializers.DecimalField(max_digits=18, decimal_places=4, allow_null=True)
    total_pnl = serializers.DecimalField(max_digits=18, decimal_places=4)
    max_drawdown = serializers.DecimalField(max_digits=18, decimal_places=4)


class SnapshotSerializer(serializers.ModelSerializer[PortfolioSnapshot]):
    class Meta:
        model = PortfolioSnapshot
        fields = ["cash", "positions_value", "total_value", "realized_pnl", "unrealized_pnl", "taken_at"]
        read_only_fields = fields


class PortfolioViewSet(viewsets.ViewSet):
    """Your portfolio: always the requesting user's own."""

    @extend_schema(responses=ValuationSerializer)
    def list(self, request: Request) -> Response:
        """Positions valued now, cash, realised and unrealised P&L."""
        valuation = services.portfolio_valuation(owner=cast(User, request.user))  # IsAuthenticated: a User
        return Response(ValuationSerializer(dataclasses.asdict(valuation)).data)

    @extend_schema(responses=StatisticsSerializer)
    @action(detail=False, methods=["get"])
    def statistics(self, request: Request) -> Response:
        """Closed trades, win rate, average and largest win and loss, total P&L, max drawdown."""
        stats = services.portfolio_statistics(owner=cast(User, request.user))  # IsAuthenticated: a User
        return Response(StatisticsSerializer(dataclasses.asdict(stats)).data)

    @extend_schema(request=None, responses={201: SnapshotSerializer})
    @action(detail=False, methods=["post"])
    def refresh(self, request: Request) -> Response:
        """Value the portfolio now and store it as a snapshot (a point on the equity curve)."""
        snapshot = services.snapshot_take(owner=cast(User, request.user))  # IsAuthenticated: a User
        return Response(SnapshotSerializer(snapshot).data, status=201)

    @extend_schema(responses=SnapshotSerializer(many=True))
    @action(detail=False, methods=["get"])
    def snapshots(self, request: Request) -> Response:
        """The equity curve's points, newest first (paginated)."""
        paginator = LimitOffsetPagination()
        queryset = PortfolioSnapshot.objects.filter(owner=cast(User, request.user)).order_by("-taken_at")
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response(SnapshotSerializer(page, many=True).data)


class ManualOrderViewSet(mixins.CreateModelMixin, OrderViewSet):
    """Your orders. POST places a manual order through the order service (guarded like a strategy's); a SELL closes
    (part of) your open position in the symbol on that account."""

    def get_serializer_class(self) -> type[serializers.BaseSerializer[Order]]:
        if self.action == "create":
            return ManualOrderSerializer
        return super().get_serializer_class()

    @extend_schema(request=ManualOrderSerializer, responses={201: OrderDetailSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = ManualOrderSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            order = manual_order_place(
                owner=cast(User, request.user),  # IsAuthenticated: a User
                broker_connection=data["broker_connection"],
                symbol=data["symbol"],
                side=data["side"],
                quantity=data["quantity"],
                order_type=data["order_type"],
                limit_price=data.get("limit_price"),
                stop_price=data.get("stop_price"),
                tif=data["tif"],
                client_order_id=data.get("client_order_id") or order_client_id(),
            )
        except OrderInputError as error:
            raise serializers.ValidationError({"non_field_errors": [str(error)]}) from None
        except BrokerError as error:
            return Response({"detail": f"broker: {error}"}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        if order.owner_id != request.user.pk:  # a client order id that is someone else's
            raise serializers.ValidationError({"client_order_id": ["This order id is taken."]})
        return Response(OrderDetailSerializer(order).data, status=status.HTTP_201_CREATED)
