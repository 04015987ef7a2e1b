"""Reading signals for the pages: the newest first, fast, however many a user has."""

from __future__ import annotations

from django.db import connection
from django.db.models.expressions import RawSQL


def newest_signal_ids_sql(signals, strategy_ids: list[int], *, offset: int, limit: int) -> tuple[str, list]:
    """The SQL (and its parameters) of `newest_signal_ids`' query: one id column, newest first. A caller that
    wants the rows themselves filters on `id IN (this)`, one round trip instead of two.

    The merge is PostgreSQL's (unnest, LATERAL); on SQLite, the embedded default for one person's data, the ids
    come from a plain sort of these strategies' signals."""
    if connection.vendor != "postgresql":
        plain = signals.filter(strategy_id__in=strategy_ids).order_by("-generated_at", "-id").values_list("id")
        return plain[offset : offset + limit].query.sql_with_params()
    per_strategy = (
        signals.filter(strategy_id=RawSQL("chosen.id", ()))
        .order_by("-generated_at", "-id")
        .values_list("id", "generated_at")[: offset + limit]
    )
    sql, params = per_strategy.query.sql_with_params()
    return (
        "SELECT newest.id FROM unnest(%s::bigint[]) AS chosen(id) "
        f"CROSS JOIN LATERAL ({sql}) AS newest "
        "ORDER BY newest.generated_at DESC, newest.id DESC OFFSET %s LIMIT %s",
        [list(strategy_ids), *params, offset, limit],
    )


def newest_signal_ids(signals, strategy_ids: list[int], *, offset: int, limit: int) -> list[int]:
    """The ids of `signals` (any filters applied) newest first, rows offset..offset+limit, over these strategies.

    Sorting all of a user's signals to show fifty is the slow part of a signals page. Per strategy, the
    (strategy, -generated_at) index yields the newest rows in order, so one LATERAL scan per strategy, each
    stopping after offset+limit rows, and a merge of those short lists give the same page for a fraction of the
    work. The per-strategy query is built by the ORM (with every filter); only the merge is written out here.
    """
    if not strategy_ids:
        return []
    sql, params = newest_signal_ids_sql(signals, strategy_ids, offset=offset, limit=limit)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [row[0] for row in cursor.fetchall()]
