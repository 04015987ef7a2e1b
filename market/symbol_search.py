"""Symbol search for the pages and the API in the local Symbol table (IBKR's contract search: brokers.services)."""

from __future__ import annotations

from django.db.models import Case, IntegerField, Q, QuerySet, Value, When

from market.models import Symbol

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
