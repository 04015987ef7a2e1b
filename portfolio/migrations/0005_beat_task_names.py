"""The beat's portfolio tasks moved from trading/tasks.py with new registered names: the stored schedules follow them."""

from django.db import migrations

RENAMED = [
    ("trading.stops_watch", "portfolio.stops_watch"), ("trading.portfolio_snapshots", "portfolio.snapshots")
]


def rename(apps, schema_editor, pairs=RENAMED):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for old, new in pairs:
        PeriodicTask.objects.filter(task=old).update(task=new)


def rename_back(apps, schema_editor):
    rename(apps, schema_editor, pairs=[(new, old) for old, new in RENAMED])


class Migration(migrations.Migration):
    dependencies = [
        ("portfolio", "0004_broker_connection_moved"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(rename, rename_back)]
