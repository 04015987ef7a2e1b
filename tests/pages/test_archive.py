"""No orphaned positions, no lost history: deleting a strategy, on every path, archives it. An archived strategy has
no schedule, runs nothing (SKIPPED strategy_archived), keeps its history and its position's stop/target watch; the
API answers 409 while a position or orders are open unless asked to archive anyway. Hard deletion is a staff
command."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.admin.sites import site
from django.core.management import CommandError, call_command
from django.test import RequestFactory
from django_celery_beat.models import PeriodicTask

from lineage.models import LineageRecord
from orders.models import Order, Trade
from portfolio.models import Position
from signals_app.models import TradingSignal
from tests.factories import StrategyFactory
from trading.executor import execute
from trading.models import SkipReason, Strategy, StrategyExecution
from trading.services import execution_start, schedule_sync

D = Decimal


def scheduled(strategy) -> Strategy:
    schedule_sync(strategy=strategy)
    assert strategy.periodic_task_id is not None
    return strategy


def test_the_api_refuses_to_delete_a_strategy_with_an_open_position_and_says_why(world, api_of):
    strategy = scheduled(world.strategy)
    Position.objects.filter(pk=world.position.pk).update(stop_loss=D("90"), take_profit=D("120"))

    refused = api_of(world.user).delete(f"/api/strategies/{strategy.pk}/")

    assert refused.status_code == 409
    detail = refused.json()["detail"]
    assert "an open position of" in detail and "stop 90" in detail and "target 120" in detail
    assert "archive it anyway" in detail
    assert Strategy.objects.get(pk=strategy.pk).archived_at is None
    assert PeriodicTask.objects.filter(pk=strategy.periodic_task_id).exists()


def test_archive_anyway_keeps_the_history_and_the_position_watched(world, api_of):
    strategy = scheduled(world.strategy)
    task_id = strategy.periodic_task_id
    history = {
        "executions": StrategyExecution.objects.filter(strategy=strategy).count(),
        "lineage": LineageRecord.objects.filter(execution__strategy=strategy).count(),
        "signals": TradingSignal.objects.filter(strategy=strategy).count(),
        "orders": Order.objects.filter(strategy=strategy).count(),
    }
    client = api_of(world.user)

    archived = client.delete(f"/api/strategies/{strategy.pk}/?archive_anyway=true")

    assert archived.status_code == 204
    strategy.refresh_from_db()
    assert strategy.archived_at is not None and not strategy.is_active
    assert not PeriodicTask.objects.filter(pk=task_id).exists()
    assert history == {
        "executions": StrategyExecution.objects.filter(strategy=strategy).count(),
        "lineage": LineageRecord.objects.filter(execution__strategy=strategy).count(),
        "signals": TradingSignal.objects.filter(strategy=strategy).count(),
        "orders": Order.objects.filter(strategy=strategy).count(),
    }
    position = Position.objects.get(pk=world.position.pk)
    assert position.strategy_id == strategy.pk
    Position.objects.filter(pk=position.pk).update(stop_loss=D("1"))
    assert Position.objects.watched().filter(pk=position.pk).exists()

    # listed only when asked, still readable, and deleting again changes nothing
    assert strategy.pk not in [s["id"] for s in client.get("/api/strategies/").json()["results"]]
    listed = client.get("/api/strategies/?archived=true").json()["results"]
    assert strategy.pk in [s["id"] for s in listed]
    assert client.get(f"/api/strategies/{strategy.pk}/").json()["archived_at"]
    assert client.delete(f"/api/strategies/{strategy.pk}/?archive_anyway=true").status_code == 204


def test_an_archived_strategy_runs_nothing_and_cannot_be_changed(world, api_of):
    strategy = world.strategy
    api_of(world.user).delete(f"/api/strategies/{strategy.pk}/?archive_anyway=true")

    run = execute(execution_start(strategy=strategy, trigger="schedule").pk)

    execution = StrategyExecution.objects.get(pk=run.execution_id)
    assert execution.skip_reason == SkipReason.STRATEGY_ARCHIVED
    assert not Order.objects.filter(strategy=strategy, created_at__gte=execution.started_at).exists()
    changed = api_of(world.user).patch(f"/api/strategies/{strategy.pk}/", {"is_active": True}, format="json")
    assert changed.status_code == 400
    assert "archived" in str(changed.json())
    assert api_of(world.user).post(f"/api/strategies/{strategy.pk}/run/").status_code == 409


def test_the_delete_button_archives_and_the_name_can_be_used_again(world, owner_client):
    strategy = world.strategy

    response = owner_client.post(f"/strategies/{strategy.pk}/delete/", follow=True)

    html = response.content.decode()
    assert f"Archived {strategy.name}" in html
    assert "still watches" in html or "keeps watching" in html
    assert 'id="archived"' in html
    assert Strategy.objects.get(pk=strategy.pk).archived_at is not None
    again = StrategyFactory(owner=world.user, name=strategy.name, symbol=world.symbol)
    assert again.pk != strategy.pk


def test_the_admin_delete_archives(world, admin_user):
    strategy = world.strategy
    request = RequestFactory().post("/admin/")
    request.user = admin_user

    site._registry[Strategy].delete_model(request, strategy)

    assert Strategy.objects.get(pk=strategy.pk).archived_at is not None


@pytest.mark.django_db
def test_hard_deletion_is_a_staff_command_that_asks_twice(world, capsys):
    with pytest.raises(CommandError, match="nothing was deleted"):
        call_command("user_data_delete", world.user.username, confirm="someone")
    assert Strategy.objects.filter(pk=world.strategy.pk).exists()

    call_command("user_data_delete", world.user.username, confirm=world.user.username)

    assert not Strategy.with_replays.filter(owner_id=world.user.pk).exists()
    assert not Order.with_replays.filter(owner_id=world.user.pk).exists()
    assert not Trade.with_replays.filter(order__owner_id=world.user.pk).exists()
    assert not PeriodicTask.objects.filter(name=f"strategy-{world.strategy.pk}").exists()
    assert f"deleted the data of {world.user.username}" in capsys.readouterr().out
