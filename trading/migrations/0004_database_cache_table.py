"""Create the database cache table, so the embedded default (no REDIS_URL) has its cache after `migrate` alone."""

from django.core.management import call_command
from django.db import migrations

CACHE_TABLE = "django_cache"  # settings.CACHES LOCATION when REDIS_URL is unset


def create_cache_table(apps, schema_editor) -> None:
    # createcachetable skips a table that already exists, so this is safe on a database set up by hand.
    call_command("createcachetable", CACHE_TABLE, database=schema_editor.connection.alias, verbosity=0)


class Migration(migrations.Migration):
    dependencies = [
        ("trading", "0003_strategy_claim"),
    ]

    operations = [
        migrations.RunPython(create_cache_table, migrations.RunPython.noop, elidable=False),
    ]
