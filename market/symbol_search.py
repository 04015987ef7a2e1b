"""Symbol search for the pages and the API: the local Symbol table, and IBKR's contract search when connected."""

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


def symbols_from_broker(connection, query: str) -> list[Symbol]:
    """IBKR's contract search through the user's connection (one gateway call, cached by the broker). The broker
    keeps every contract it finds in the Symbol table, so the answer is those rows. Raises the broker's typed
    errors (NotAuthenticated, RateLimited, Rejected, Transient)."""
    from trading.broker import broker_for

    conids = [c.conid for c in broker_for(connection).search(query)[:SEARCH_LIMIT] if c.conid]
    found = Symbol.objects.in_bulk(conids, field_name="conid")
    return [found[conid] for conid in conids if conid in found]
