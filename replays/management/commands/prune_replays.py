"""python manage.py prune_replays [--older-than DAYS] [--delete]"""

from __future__ import annotations

import datetime as dt

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from replays.models import Replay
from replays.services import replay_delete, replay_lineage_prune


class Command(BaseCommand):
    help = "Delete the lineage of finished replays (their reports stay), or with --delete the replays themselves."

    def add_arguments(self, parser):
        parser.add_argument("--older-than", type=int, default=30, metavar="DAYS", help="finished this long ago")
        parser.add_argument("--delete", action="store_true", help="delete whole replays, not just their lineage")

    def handle(self, *args, **options):
        days = options["older_than"]
        if days < 0:
            raise CommandError("--older-than: the number of days cannot be negative")
        age = dt.timedelta(days=days)
        if not options["delete"]:
            deleted = replay_lineage_prune(older_than=age)
            self.stdout.write(f"Deleted {deleted} lineage records of replays finished more than {days} days ago.")
            return
        old = Replay.objects.primary().finished_before(timezone.now() - age)
        count = 0
        for replay in old:
            replay_delete(replay=replay)
            count += 1
        self.stdout.write(f"Deleted {count} replays finished more than {days} days ago, with all they made.")
