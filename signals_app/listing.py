"""Reading signals for the pages: the newest first, fast, however many a user has."""

from __future__ import annotations

# Above this many strategies the merge below is a long UNION; sorting the narrow rows is then the better plan.
MERGE_MAX_STRATEGIES = 60


def newest_signal_ids(signals, strategy_ids: list[int], *, offset: int, limit: int) -> list[int]:
    """The ids of `signals` newest first, rows offset..offset+limit, over the given strategies.

    Per strategy the (strategy, -generated_at) index yields the newest rows directly; merging those short lists
    (a UNION ALL of one LIMITed index scan per strategy) avoids sorting every signal the user ever had.
    """
    if not strategy_ids:
        return []
    ordered = ("-generated_at", "-id")
    if len(strategy_ids) == 1 or len(strategy_ids) > MERGE_MAX_STRATEGIES:
        ids = signals.filter(strategy_id__in=strategy_ids).order_by(*ordered).values_list("id", flat=True)
        return list(ids[offset : offset + limit])
    parts = [
        signals.filter(strategy_id=strategy_id).order_by(*ordered).values_list("id", "generated_at")[: offset + limit]
        for strategy_id in strategy_ids
    ]
    merged = parts[0].union(*parts[1:], all=True).order_by(*ordered)
    return [pk for pk, _ in merged[offset : offset + limit]]
