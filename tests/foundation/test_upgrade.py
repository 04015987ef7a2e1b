"""Upgrading a database from before the re-layering (issue 12): every row is found again, every stored beat schedule
still names a registered task.

Models moved between apps with their tables (renamed to the new app's name), and the simulated broker's ledger
left the app `simbroker` for `brokers`. The database is put at the schema of the last release (the migrations of
each app as they stood), filled with a row in every table of our apps, then migrated as `manage.py migrate` would.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.apps import apps
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from config.celery import app as celery_app
from core.coordination import lock, throttle
from market.models import Bar
from portfolio.models import Reconciliation
from portfolio.services import snapshot_take
from replays.services import replay_create, replay_run
from signals_app.models import LLMCall
from tests.factories import NotificationFactory, PromptPerformanceFactory
from trading.models import Strategy

OUR_APPS = (
    "core",
    "notifications",
    "lineage",
    "market",
    "brokers",
    "signals_app",
    "orders",
    "portfolio",
    "trading",
    "replays",
)

# Each app's last migration before the re-layering. `core` did not exist; `brokers` 0001 is simbroker's 0001.
BEFORE = [
    ("core", None),
    ("notifications", None),
    ("lineage", "0003_execution_index_covered"),
    ("market", "0002_playbackcursor"),
    ("brokers", "0001_initial"),
    ("signals_app", "0005_buy_signal_needs_stop_and_target"),
    ("orders", "0002_initial"),
    ("portfolio", "0003_reconciliation"),
    ("trading", "0005_notification"),
    ("replays", "0003_heartbeat"),
]
# Where a moved model's rows were kept before.
OLD_TABLES = {
    "core.UserProfile": "trading_userprofile",
    "core.Lease": "trading_lease",
    "core.RateSlot": "trading_rateslot",
    "market.IndicatorConfig": "trading_indicatorconfig",
    "brokers.BrokerConnection": "trading_brokerconnection",
    "brokers.SimAccount": "simbroker_simaccount",
    "brokers.SimOrder": "simbroker_simorder",
    "brokers.SimFill": "simbroker_simfill",
    "brokers.SimPosition": "simbroker_simposition",
}
# The beat's tasks as the last release registered them.
OLD_BEAT_TASKS = {
    "stops-watch": "trading.stops_watch",
    "portfolio-snapshots": "trading.portfolio_snapshots",
    "ibkr-keepalive": "trading.ibkr_keepalive",
    "orders-track": "trading.orders_track",
    "prompt-performance": "signals_app.prompt_performance_refresh",
}


# Tables the last release did not have: nothing to carry over (a channel cannot exist before its table).
NEW_SINCE_THE_RELEASE = {"notifications.Channel"}
# Rows rebuilt from another table's columns (a notification's mail and webhook results): found by what they say.
REBUILT = {"notifications.Delivery": ("notification_id", "default_key", "state", "error")}


def our_models():
    return [
        model
        for name in OUR_APPS
        for model in apps.get_app_config(name).get_models()
        if model._meta.label not in NEW_SINCE_THE_RELEASE
    ]


def fill_every_table() -> None:
    """Rows as a trader's database has them: the demo (users, symbols, bars, a strategy and its runs), a replay
    (its own strategy copy, simulated account, orders, fills, positions), and the few tables neither touches."""
    call_command("seed_demo", verbosity=0)
    strategy = Strategy.objects.get(name="SPY demo")
    last = Bar.objects.filter(symbol=strategy.symbol, bar_size=strategy.bar_size).latest("timestamp").timestamp
    end = last.date()
    replay_run(
        replay=replay_create(
            owner=strategy.owner, strategy=strategy, start=end - dt.timedelta(days=120), end=end, render_charts=False
        )
    )
    performance = PromptPerformanceFactory()  # a prompt's template, version and scores
    snapshot_take(owner=strategy.owner)
    LLMCall.objects.create(
        strategy=strategy,
        prompt_version=performance.prompt_version,
        analyst="anthropic",
        requested_model="claude-test",
        cache_key="k" * 64,
    )
    NotificationFactory()
    Reconciliation.objects.create(broker_connection=strategy.broker_connection, checked_at=timezone.now())
    with lock("upgrade-test", ttl=600, wait=0):  # without Redis: a Lease row
        pass
    throttle("upgrade-test", interval=600)  # a RateSlot row


def row_ids() -> dict[str, set]:
    return {
        model._meta.label: set(model._base_manager.values_list(*REBUILT.get(model._meta.label, ("pk",))))
        for model in our_models()
    }


def migrate(targets) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)


@pytest.mark.django_db(transaction=True)
def test_an_upgrade_from_the_last_release_keeps_every_row_and_every_beat_schedule(settings):
    # given a database at today's schema with a row in every table (locks and throttles on the database)
    settings.REDIS_URL = ""
    fill_every_table()
    before = row_ids()
    empty = sorted(label for label, ids in before.items() if not ids)
    assert empty == [], f"no rows to carry over in {empty}"

    # ... put back at the last release's schema, the beat's schedules naming that release's tasks
    migrate(BEFORE)
    with connection.cursor() as cursor:
        tables = set(connection.introspection.table_names(cursor))
        assert set(OLD_TABLES.values()) <= tables
        assert not {"brokers_brokerconnection", "core_lease", "market_indicatorconfig"} & tables
        for label, table in OLD_TABLES.items():
            cursor.execute(f'SELECT COUNT(*) FROM "{table}"')
            assert cursor.fetchone()[0] == len(before[label]), table
    every_minute, _ = IntervalSchedule.objects.get_or_create(every=60, period=IntervalSchedule.SECONDS)
    for name, task in OLD_BEAT_TASKS.items():
        PeriodicTask.objects.update_or_create(name=name, defaults={"task": task, "interval": every_minute})

    # when it is migrated as `manage.py migrate` does
    call_command("migrate", verbosity=0)

    # then every row is where today's models read it, and every stored schedule names a registered task
    assert row_ids() == before
    celery_app.loader.import_default_modules()
    unregistered = {task.name: task.task for task in PeriodicTask.objects.all() if task.task not in celery_app.tasks}
    assert unregistered == {}
    assert CrontabSchedule.objects.exists()  # the demo strategy's own schedule came through too
