"""The strategy service owns each strategy's beat schedule: create, edit, pause, resume and delete keep the
PeriodicTask and CrontabSchedule rows in line, in the same transaction, in a way beat notices."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask, PeriodicTasks

from tests.factories import IndicatorConfigFactory, StrategyFactory, SymbolFactory
from trading.models import Strategy
from trading.services import (
    BEAT_TASK,
    cron_next,
    strategy_archive,
    strategy_create,
    strategy_pause,
    strategy_resume,
    strategy_update,
)

pytestmark = pytest.mark.django_db


def _create(owner, **overrides) -> Strategy:
    fields = {"name": "Breakout", "symbol": SymbolFactory(), "schedule_cron": "*/15 9-16 * * 1-5"}
    fields.update(overrides)
    return strategy_create(owner=owner, **fields)


def test_creating_a_strategy_creates_its_enabled_periodic_task_in_new_york_time(owner):
    strategy = _create(owner)

    task = PeriodicTask.objects.get(pk=strategy.periodic_task_id)
    assert task.task == BEAT_TASK
    assert json.loads(task.args) == [strategy.pk]
    assert task.enabled is True
    assert task.expire_seconds and task.expire_seconds > 0
    assert (task.crontab.minute, task.crontab.hour, task.crontab.day_of_week) == ("*/15", "9-16", "1-5")
    assert str(task.crontab.timezone) == "America/New_York"


def test_creating_a_strategy_bumps_beats_change_marker(owner):
    before = PeriodicTasks.last_change()

    _create(owner)

    assert PeriodicTasks.last_change() is not None
    assert before is None or PeriodicTasks.last_change() > before


def test_editing_the_schedule_reschedules_the_same_task_and_beat_notices(owner):
    strategy = _create(owner)
    task_id = strategy.periodic_task_id
    before = PeriodicTasks.last_change()

    strategy_update(strategy=strategy, schedule_cron="30 10 * * 1-5", schedule_timezone="Europe/London")

    task = PeriodicTask.objects.get(pk=task_id)
    assert (task.crontab.minute, task.crontab.hour) == ("30", "10")
    assert str(task.crontab.timezone) == "Europe/London"
    assert PeriodicTasks.last_change() > before


def test_the_old_crontab_is_removed_when_no_task_uses_it(owner):
    strategy = _create(owner, schedule_cron="7 7 * * *")
    old_crontab = strategy.periodic_task.crontab_id

    strategy_update(strategy=strategy, schedule_cron="8 8 * * *")

    assert not CrontabSchedule.objects.filter(pk=old_crontab).exists()


def test_pausing_disables_the_task_and_clears_the_next_run_and_resuming_restores_both(owner):
    strategy = _create(owner)
    before = PeriodicTasks.last_change()

    strategy_pause(strategy=strategy)

    strategy.refresh_from_db()
    assert PeriodicTask.objects.get(pk=strategy.periodic_task_id).enabled is False
    assert strategy.next_execution_at is None
    assert PeriodicTasks.last_change() > before

    strategy_resume(strategy=strategy)

    strategy.refresh_from_db()
    assert PeriodicTask.objects.get(pk=strategy.periodic_task_id).enabled is True
    assert strategy.next_execution_at is not None


def test_archiving_a_strategy_removes_its_task_and_crontab_and_keeps_the_strategy(owner):
    strategy = _create(owner, schedule_cron="3 3 * * *")
    task_id, crontab_id = strategy.periodic_task_id, strategy.periodic_task.crontab_id
    before = PeriodicTasks.last_change()

    strategy_archive(strategy=strategy)

    kept = Strategy.objects.get(name="Breakout")
    assert kept.archived_at is not None and not kept.is_active and kept.periodic_task_id is None
    assert not PeriodicTask.objects.filter(pk=task_id).exists()
    assert not CrontabSchedule.objects.filter(pk=crontab_id).exists()
    assert PeriodicTasks.last_change() > before


@pytest.mark.parametrize(
    "cron",
    [
        pytest.param("*/15 9-16 * *", id="four-fields"),
        pytest.param("61 * * * *", id="minute-out-of-range"),
        pytest.param("0 25 * * *", id="hour-out-of-range"),
        pytest.param("every day", id="words"),
        pytest.param("", id="empty"),
    ],
)
def test_a_bad_cron_expression_is_refused_on_its_field_and_nothing_is_written(owner, cron):
    with pytest.raises(ValidationError) as caught:
        _create(owner, schedule_cron=cron)

    assert "schedule_cron" in caught.value.message_dict
    assert not Strategy.objects.exists()
    assert not PeriodicTask.objects.filter(task=BEAT_TASK).exists()


def test_a_bad_time_zone_is_refused_on_its_field(owner):
    with pytest.raises(ValidationError) as caught:
        _create(owner, schedule_timezone="Mars/Olympus")

    assert "schedule_timezone" in caught.value.message_dict
    assert not Strategy.objects.exists()


def test_a_bad_edit_leaves_the_strategy_and_its_task_as_they_were(owner):
    strategy = _create(owner, schedule_cron="0 10 * * 1-5")

    with pytest.raises(ValidationError):
        strategy_update(strategy=Strategy.objects.get(pk=strategy.pk), schedule_cron="0 99 * * *")

    strategy.refresh_from_db()
    assert strategy.schedule_cron == "0 10 * * 1-5"
    assert PeriodicTask.objects.get(pk=strategy.periodic_task_id).crontab.hour == "10"


def test_indicators_are_linked_in_order_and_only_the_owners(owner, other_user):
    mine = [IndicatorConfigFactory(owner=owner), IndicatorConfigFactory(owner=owner)]
    strategy = _create(owner, indicators=list(reversed(mine)))
    assert [link.indicator for link in strategy.strategy_indicators.order_by("position")] == list(reversed(mine))

    with pytest.raises(ValidationError):
        strategy_update(strategy=strategy, indicators=[IndicatorConfigFactory(owner=other_user)])


def test_next_execution_time_is_the_next_cron_instant_in_the_strategys_zone(owner):
    before = timezone.now()

    strategy = _create(owner, schedule_cron="30 9 * * 1-5")

    strategy.refresh_from_db()
    assert strategy.next_execution_at == cron_next("30 9 * * 1-5", "America/New_York", after=before)
    local = strategy.next_execution_at.astimezone(ZoneInfo("America/New_York"))
    assert (local.hour, local.minute, local.isoweekday() <= 5) == (9, 30, True)


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        # Friday 2024-03-08 17:00 New York -> Monday 09:30 (EDT starts Sunday: 13:30 UTC)
        pytest.param(
            dt.datetime(2024, 3, 8, 22, 0, tzinfo=dt.UTC),
            dt.datetime(2024, 3, 11, 13, 30, tzinfo=dt.UTC),
            id="over-a-weekend-into-daylight-time",
        ),
        # Tuesday 09:29:59 New York (EST) -> 09:30 the same day
        pytest.param(
            dt.datetime(2024, 1, 2, 14, 29, 59, tzinfo=dt.UTC),
            dt.datetime(2024, 1, 2, 14, 30, tzinfo=dt.UTC),
            id="same-day",
        ),
        # exactly at 09:30 -> the next day's 09:30
        pytest.param(
            dt.datetime(2024, 1, 2, 14, 30, tzinfo=dt.UTC),
            dt.datetime(2024, 1, 3, 14, 30, tzinfo=dt.UTC),
            id="strictly-after",
        ),
    ],
)
def test_cron_next_follows_the_zone_and_weekdays(after, expected):
    assert cron_next("30 9 * * 1-5", "America/New_York", after=after) == expected


def test_changing_risk_fields_through_the_service_is_validated(owner):
    strategy = _create(owner)

    with pytest.raises(ValidationError):
        strategy_update(strategy=strategy, risk_per_trade=Decimal("0.5"))


def test_a_factory_strategy_has_no_task_until_saved_through_the_service(owner):
    strategy = StrategyFactory(owner=owner)
    assert strategy.periodic_task is None

    strategy_update(strategy=strategy, name="renamed")

    assert PeriodicTask.objects.filter(pk=strategy.periodic_task_id, enabled=True).exists()
