"""The beat's brokers tasks moved from trading/tasks.py with new registered names: the stored schedules follow them."""

from django.db import migrations

RENAMED = [
    ("trading.ibkr_keepalive", "brokers.ibkr_keepalive"),
    ("trading.ibkr_keepalive_environment", "brokers.ibkr_keepalive_environment"),
    ("trading.ibkr_keepalive_connection", "brokers.ibkr_keepalive_connection"),
]


def rename(apps, schema_editor, pairs=RENAMED):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for old, new in pairs:
        PeriodicTask.objects.filter(task=old).update(task=new)


def rename_back(apps, schema_editor):
    rename(apps, schema_editor, pairs=[(new, old) for old, new in RENAMED])


class Migration(migrations.Migration):
    dependencies = [
        ("brokers", "0002_brokerconnection_moved_here"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(rename, rename_back)]
