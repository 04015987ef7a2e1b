"""The admin goes through the strategy service: adding, editing, pausing and deleting a strategy there changes its
PeriodicTask rows at once, and a bad cron expression is an error on its field."""

from __future__ import annotations

import pytest
from django_celery_beat.models import PeriodicTask, PeriodicTasks

from tests.factories import SymbolFactory
from trading.models import Strategy

pytestmark = pytest.mark.django_db


def form_data(owner, symbol, **overrides) -> dict:
    data = {
        "owner": owner.pk,
        "name": "Admin strategy",
        "symbol": symbol.pk,
        "bar_size": "1d",
        "lookback_bars": 120,
        "analyst": "rules",
        "llm_model": "",
        "schedule_cron": "*/15 9-16 * * 1-5",
        "schedule_timezone": "America/New_York",
        "market_data_source": "stored",
        "max_bar_age_bars": "2",
        "trading_days_only": "on",
        "risk_per_trade": "0.0100",
        "max_position_value": "10000.00",
        "max_open_positions": 1,
        "daily_loss_limit": "1000.00",
        "max_orders_per_day": 4,
        "min_confidence": "0.6000",
        "reward_risk_ratio": "2.0000",
        "is_active": "on",
        "strategy_indicators-TOTAL_FORMS": 0,
        "strategy_indicators-INITIAL_FORMS": 0,
        "strategy_indicators-MIN_NUM_FORMS": 0,
        "strategy_indicators-MAX_NUM_FORMS": 1000,
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


@pytest.fixture
def admin_client(client, staff_user):
    client.force_login(staff_user)
    return client


def test_adding_a_strategy_in_the_admin_creates_its_enabled_task(admin_client, staff_user):
    before = PeriodicTasks.last_change()

    response = admin_client.post("/admin/trading/strategy/add/", form_data(staff_user, SymbolFactory()))

    assert response.status_code == 302, response.content[:2000]
    strategy = Strategy.objects.get(name="Admin strategy")
    task = PeriodicTask.objects.get(pk=strategy.periodic_task_id)
    assert task.enabled and task.crontab.minute == "*/15"
    assert PeriodicTasks.last_change() != before


def test_editing_the_schedule_in_the_admin_reschedules_the_task(admin_client, staff_user):
    symbol = SymbolFactory()
    admin_client.post("/admin/trading/strategy/add/", form_data(staff_user, symbol))
    strategy = Strategy.objects.get(name="Admin strategy")
    before = PeriodicTasks.last_change()

    response = admin_client.post(
        f"/admin/trading/strategy/{strategy.pk}/change/",
        form_data(staff_user, symbol, schedule_cron="5 10 * * 1-5", schedule_timezone="Europe/Paris"),
    )

    assert response.status_code == 302
    task = PeriodicTask.objects.get(pk=strategy.periodic_task_id)
    assert (task.crontab.minute, task.crontab.hour, str(task.crontab.timezone)) == ("5", "10", "Europe/Paris")
    assert PeriodicTasks.last_change() > before


def test_unticking_active_in_the_admin_disables_the_task(admin_client, staff_user):
    symbol = SymbolFactory()
    admin_client.post("/admin/trading/strategy/add/", form_data(staff_user, symbol))
    strategy = Strategy.objects.get(name="Admin strategy")

    admin_client.post(f"/admin/trading/strategy/{strategy.pk}/change/", form_data(staff_user, symbol, is_active=None))

    assert PeriodicTask.objects.get(pk=strategy.periodic_task_id).enabled is False


def test_the_pause_and_resume_actions_toggle_the_task(admin_client, staff_user):
    admin_client.post("/admin/trading/strategy/add/", form_data(staff_user, SymbolFactory()))
    strategy = Strategy.objects.get(name="Admin strategy")

    admin_client.post("/admin/trading/strategy/", {"action": "pause", "_selected_action": [strategy.pk]})
    assert PeriodicTask.objects.get(pk=strategy.periodic_task_id).enabled is False

    admin_client.post("/admin/trading/strategy/", {"action": "resume", "_selected_action": [strategy.pk]})
    assert PeriodicTask.objects.get(pk=strategy.periodic_task_id).enabled is True


def test_deleting_in_the_admin_removes_the_task(admin_client, staff_user):
    admin_client.post("/admin/trading/strategy/add/", form_data(staff_user, SymbolFactory()))
    strategy = Strategy.objects.get(name="Admin strategy")
    task_id = strategy.periodic_task_id

    response = admin_client.post(f"/admin/trading/strategy/{strategy.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert Strategy.objects.get(pk=strategy.pk).archived_at is not None  # archived, its history kept
    assert not PeriodicTask.objects.filter(pk=task_id).exists()


def test_bulk_delete_in_the_admin_archives_and_removes_every_task(admin_client, staff_user):
    symbol = SymbolFactory()
    for name in ("one", "two"):
        admin_client.post("/admin/trading/strategy/add/", form_data(staff_user, symbol, name=name))
    ids = list(Strategy.objects.values_list("pk", flat=True))

    admin_client.post("/admin/trading/strategy/", {"action": "delete_selected", "_selected_action": ids, "post": "yes"})

    assert Strategy.objects.count() == 2 and not Strategy.objects.current().exists()
    assert not PeriodicTask.objects.filter(name__startswith="strategy-").exists()


def test_a_bad_cron_in_the_admin_is_an_error_on_its_field_and_nothing_is_saved(admin_client, staff_user):
    response = admin_client.post(
        "/admin/trading/strategy/add/", form_data(staff_user, SymbolFactory(), schedule_cron="61 * * * *")
    )

    assert response.status_code == 200
    assert "schedule_cron" in response.context["adminform"].form.errors
    assert not Strategy.objects.exists()
    assert not PeriodicTask.objects.filter(name__startswith="strategy-").exists()
