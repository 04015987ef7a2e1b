"""Command arguments that name a strategy (the grammar: core.cli)."""

from __future__ import annotations

from django.core.management.base import CommandError

from trading.models import Strategy


def resolve_strategy(arg: str):
    """A strategy by id or by exact name. An unknown one, or a name several strategies share, is a CommandError
    (the latter listing the candidates with their ids and owners)."""
    arg = str(arg).strip()
    if arg.isdigit():
        by_id = Strategy.objects.filter(pk=int(arg)).select_related("owner").first()
        if by_id is not None:
            return by_id
    matches = list(Strategy.objects.filter(name=arg).select_related("owner").order_by("pk"))
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise CommandError(f"no strategy with id or name {arg!r}")
    candidates = "; ".join(f"id {s.pk} (owner {s.owner.get_username()})" for s in matches)
    raise CommandError(f"{len(matches)} strategies are named {arg!r}: {candidates}. Name one by its id.")
