"""Symbol search for the pages and the API: the local Symbol table, and IBKR's contract search when connected."""

from __future__ import annotations

from django.db import transaction
from django.db.models import Case, IntegerField, Q, QuerySet, Value, When

from market.models import AssetType, Symbol

SEARCH_LIMIT = 20


def symbols_matching(query: str, *, limit: int = SEARCH_LIMIT) -> QuerySet[Symbol]:
    """Symbols whose ticker starts with the query or whose name contains it; exact tickers first."""
    query = (query or "").strip()
    if not query:
        return Symbol.objects.none()
    rank = Case(
        When(symbol__iexact=query, then=Value(0)),
        When(symbol__istartswith=query, then=Value(1)),
        default=Value(2),
        output_field=IntegerField(),
    )
    return (
        Symbol.objects.filter(Q(symbol__istartswith=query) | Q(name__icontains=query))
        .annotate(rank=rank)
        .order_by("rank", "symbol", "exchange")[:limit]
    )


def contracts_from_broker(connection, query: str) -> list:
    """IBKR's contract search through the user's connection (one gateway call). Raises the broker's typed errors."""
    from trading.broker import broker_for

    return broker_for(connection).search(query)[:SEARCH_LIMIT]


def symbol_from_contract(contract) -> Symbol:
    """The Symbol for an IBKR contract, created or refreshed by its conid."""
    asset_type = contract.asset_type if contract.asset_type in AssetType.values else AssetType.STOCK
    with transaction.atomic():
        symbol, _ = Symbol.objects.update_or_create(
            conid=contract.conid,
            defaults={
                "symbol": contract.symbol,
                "name": contract.name,
                "exchange": contract.exchange,
                "currency": contract.currency or "USD",
                "asset_type": asset_type,
            },
        )
    return symbol
