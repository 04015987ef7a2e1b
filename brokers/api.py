"""API: symbol search and contract details."""

from __future__ import annotations

from typing import Any, cast

from django.contrib.auth.models import User
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from brokers.interface import BrokerError
from brokers.models import BrokerConnection, BrokerKind
from brokers.services import broker_for
from market.models import Symbol
from market.symbol_search import symbols_matching


class SymbolSerializer(serializers.ModelSerializer[Symbol]):
    class Meta:
        model = Symbol
        fields = ["id", "symbol", "name", "exchange", "currency", "asset_type", "conid", "time_zone", "last_updated"]
        read_only_fields = fields


class ContractSerializer(serializers.Serializer[dict[str, Any]]):  # a dict, built in SymbolViewSet.contract
    symbol = SymbolSerializer()
    # the metaclass moves declared fields off the class, so this never shadows Field.source
    source = serializers.CharField(  # type: ignore[assignment]
        help_text="local (the stored row) or ibkr (refreshed from the gateway)"
    )
    broker_error = serializers.CharField(allow_blank=True)
    bars = serializers.IntegerField()


class SymbolViewSet(viewsets.ReadOnlyModelViewSet[Symbol]):
    """Instruments (shared reference data). `?q=` searches tickers and names."""

    serializer_class = SymbolSerializer

    def get_queryset(self) -> QuerySet[Symbol]:
        query = self.request.query_params.get("q", "").strip()
        if query and self.action == "list":
            return symbols_matching(query, limit=50)
        return Symbol.objects.order_by("symbol", "exchange")

    @extend_schema(
        parameters=[OpenApiParameter("q", str, description="ticker prefix or part of the name", required=True)],
        responses=SymbolSerializer(many=True),
    )
    @action(detail=False, methods=["get"])
    def search(self, request: Request) -> Response:
        """Live search: up to 20 symbols, exact tickers first."""
        return Response(SymbolSerializer(symbols_matching(request.query_params.get("q", "")), many=True).data)

    @extend_schema(responses=ContractSerializer)
    @action(detail=True, methods=["get"])
    def contract(self, request: Request, pk: str | None = None) -> Response:
        """Contract details: the stored symbol, refreshed from IBKR when it has a contract id and you a connection."""
        symbol = self.get_object()
        source, broker_error = "local", ""
        owner = cast(User, request.user)  # IsAuthenticated (the API's default permission): a User
        connection = BrokerConnection.objects.filter(owner=owner, kind=BrokerKind.IBKR).first()
        if symbol.conid and connection is not None:
            try:
                broker_for(connection).contract(symbol.conid)  # the broker refreshes the Symbol row it caches
                symbol.refresh_from_db()
                source = "ibkr"
            except BrokerError as error:
                broker_error = str(error) or error.__class__.__name__
        data = {"symbol": symbol, "source": source, "broker_error": broker_error, "bars": symbol.bars.count()}
        return Response(ContractSerializer(data).data)
