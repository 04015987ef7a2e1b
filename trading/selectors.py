"""Named reads that span several models, for the pages and the API: each reads only the columns it is for."""

from __future__ import annotations

from django.db.models import OuterRef, Subquery
from django.db.models.expressions import RawSQL

from signals_app.listing import newest_signal_ids_sql
from signals_app.models import TradingSignal
from trading.models import Strategy, StrategyExecution

STRATEGY_ROW_FIELDS = (
    "name",
    "bar_size",
    "analyst",
    "schedule_cron",
    "schedule_timezone",
    "kill_switch",
    "is_active",
    "last_execution_at",
    "next_execution_at",
    "symbol__symbol",
)


def strategies_with_last_run(user):
    """The user's strategies (the columns a list shows), each with its latest execution's status and id, in one
    query."""
    latest = StrategyExecution.objects.filter(strategy=OuterRef("pk")).order_by("-started_at")
    return (
        Strategy.objects.for_owner(user)
        .live()
        .select_related("symbol")
        .only(*STRATEGY_ROW_FIELDS)
        .annotate(
            last_status=Subquery(latest.values("status")[:1]),
            last_execution_id=Subquery(latest.values("execution_id")[:1]),
        )
        .order_by("name")
    )


RECENT_SIGNAL_FIELDS = ("id", "generated_at", "action", "entry_price", "confidence", "strategy__name", "symbol__symbol")


def recent_signals(user, strategies: list[dict], *, limit: int) -> list[dict]:
    """The newest signals of these strategies, newest first, in one query: the per-strategy index merge
    (`newest_signal_ids_sql`) picks the ids, and only the columns the dashboard shows are read, as plain values
    (building eight model instances and their related ones cost more than the query)."""
    if not strategies:
        return []
    sql, params = newest_signal_ids_sql(
        TradingSignal.objects.all(), [s["id"] for s in strategies], offset=0, limit=limit
    )
    return list(
        TradingSignal.objects.filter(pk__in=RawSQL(sql, params))
        .order_by("-generated_at", "-id")
        .values(*RECENT_SIGNAL_FIELDS)
    )
