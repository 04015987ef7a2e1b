"""Replay tasks: thin, by id."""

from __future__ import annotations

from celery import shared_task

from replays import services
from replays.models import Replay


@shared_task(name="replays.replay_run", ignore_result=True)
def replay_run(replay_id: int) -> str | None:
    """Run a stored PENDING replay (and its rules baseline). A replay already claimed returns at once."""
    replay = Replay.objects.filter(pk=replay_id).first()
    if replay is None:
        return None
    return services.replay_run(replay=replay).status
