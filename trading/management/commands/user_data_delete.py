"""python manage.py user_data_delete USERNAME --confirm USERNAME [--keep-user]

The one way to delete a person's data for good (a privacy request, a test account): their strategies with their
schedules, runs and lineage, signals, orders and fills, positions, snapshots, accounts and notifications. Everywhere
else "delete" archives. Asks for the username twice so that it is never run by a slip of the shell history.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from trading.services import user_data_delete


class Command(BaseCommand):
    help = "Delete every row of one user's data for good (staff only; everywhere else, deleting archives)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("username")
        parser.add_argument("--confirm", required=True, help="the username again")
        parser.add_argument("--keep-user", action="store_true", help="keep the login itself, empty")

    def handle(self, *args: Any, **options: Any) -> None:
        username = options["username"]
        if options["confirm"] != username:
            raise CommandError("--confirm must repeat the username exactly: nothing was deleted")
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"there is no user {username!r}: nothing was deleted")
        counts = user_data_delete(user=user, keep_user=options["keep_user"])
        for label, count in sorted(counts.items()):
            self.stdout.write(f"{label}: {count}")
        self.stdout.write(self.style.SUCCESS(f"deleted the data of {username}"))
