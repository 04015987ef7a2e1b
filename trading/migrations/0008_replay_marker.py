"""Replay rows get a mark of their own (`is_replay`), which the default managers filter on.

Until now a replay's rows were told apart by a join to the replay that owns their strategy or account, which every
live read had to remember. This marks the rows replays already wrote, and unschedules any replay copy of a strategy
that was given a PeriodicTask (the kill switch's "Release" did that), before the constraint forbids it. It reads
replays.Replay, a layer above, because that is where the existing rows say which strategies are copies.
"""

from django.db import migrations, models
from django.db.models import Q


def mark_replay_rows(apps, schema_editor):
    Replay = apps.get_model("replays", "Replay")
    Strategy = apps.get_model("trading", "Strategy")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    copies = Replay.objects.exclude(shadow_strategy=None).values("shadow_strategy_id")
    accounts = Replay.objects.exclude(broker_connection=None).values("broker_connection_id")
    stray_tasks = list(Strategy.objects.filter(pk__in=copies).exclude(periodic_task=None).values_list("periodic_task_id", flat=True))
    Strategy.objects.filter(pk__in=copies).update(periodic_task=None, next_execution_at=None, is_replay=True)
    PeriodicTask.objects.filter(pk__in=stray_tasks).delete()
    apps.get_model("brokers", "BrokerConnection").objects.filter(pk__in=accounts).update(is_replay=True)
    apps.get_model("trading", "StrategyExecution").objects.filter(strategy__is_replay=True).update(is_replay=True)
    apps.get_model("lineage", "LineageRecord").objects.filter(execution__is_replay=True).update(is_replay=True)
    apps.get_model("signals_app", "TradingSignal").objects.filter(strategy__is_replay=True).update(is_replay=True)
    Order = apps.get_model("orders", "Order")
    Order.objects.filter(Q(strategy__is_replay=True) | Q(broker_connection__is_replay=True)).update(is_replay=True)
    apps.get_model("orders", "Trade").objects.filter(order__is_replay=True).update(is_replay=True)
    apps.get_model("orders", "OrderStatusChange").objects.filter(order__is_replay=True).update(is_replay=True)
    apps.get_model("portfolio", "Position").objects.filter(strategy__is_replay=True).update(is_replay=True)


class Migration(migrations.Migration):
    dependencies = [
        ("brokers", "0004_replay_marker"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
        ("lineage", "0004_replay_marker"),
        ("orders", "0004_replay_marker"),
        ("portfolio", "0006_replay_marker"),
        ("replays", "0004_broker_connection_moved"),
        ("signals_app", "0006_replay_marker"),
        ("trading", "0007_execution_skip_reason"),
    ]

    operations = [
        migrations.AddField(
            model_name="strategy",
            name="is_replay",
            field=models.BooleanField(default=False, editable=False, help_text="written by a replay: never live"),
        ),
        migrations.AddField(
            model_name="strategyexecution",
            name="is_replay",
            field=models.BooleanField(default=False, editable=False, help_text="written by a replay: never live"),
        ),
        migrations.RunPython(mark_replay_rows, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="strategy",
            constraint=models.CheckConstraint(
                condition=Q(is_replay=False) | Q(periodic_task__isnull=True), name="strategy_replay_copy_unscheduled"
            ),
        ),
    ]
