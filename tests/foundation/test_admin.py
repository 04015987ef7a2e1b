"""The staff user can open every model registered in the admin: its list (with a row in it), its add page, and the
row's change page. The list of models comes from the admin site itself, so a newly registered model is covered."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.core import checks
from django.urls import reverse

from core.checks import utc_everywhere
from tests import factories

FACTORIES = {
    f._meta.model: f for f in vars(factories).values() if isinstance(f, type) and hasattr(f, "_meta") and f._meta.model
}


def _third_party_makers() -> dict[str, Callable[[object], object]]:
    """Rows for models that are not ours (no factory in tests/factories.py)."""
    from django_celery_beat.models import (
        ClockedSchedule,
        CrontabSchedule,
        IntervalSchedule,
        PeriodicTask,
        SolarSchedule,
    )
    from django_celery_results.models import GroupResult, TaskResult
    from rest_framework.authtoken.models import Token

    from signals_app.models import LLMCall

    def periodic_task(user):
        every_minute = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.MINUTES)
        return PeriodicTask.objects.create(name="ping every minute", task="config.ping", interval=every_minute)

    return {
        "auth.Group": lambda user: Group.objects.create(name="traders"),
        "auth.User": lambda user: user,
        "authtoken.TokenProxy": lambda user: Token.objects.create(user=user),
        "django_celery_beat.PeriodicTask": periodic_task,
        "django_celery_beat.ClockedSchedule": lambda user: ClockedSchedule.objects.create(
            clocked_time=dt.datetime(2026, 1, 5, 14, 30, tzinfo=dt.UTC)
        ),
        "django_celery_beat.CrontabSchedule": lambda user: CrontabSchedule.objects.create(minute="*/15"),
        "django_celery_beat.SolarSchedule": lambda user: SolarSchedule.objects.create(
            event="sunrise", latitude=40.7, longitude=-74.0
        ),
        "django_celery_beat.IntervalSchedule": lambda user: IntervalSchedule.objects.create(every=30, period="seconds"),
        "django_celery_results.TaskResult": lambda user: TaskResult.objects.create(task_id="harness-task-1"),
        "django_celery_results.GroupResult": lambda user: GroupResult.objects.create(group_id="harness-group-1"),
        "signals_app.LLMCall": lambda user: LLMCall.objects.create(
            analyst="rules", requested_model="rules", cache_key="0" * 64
        ),
    }


def make_row(model, user):
    if model in FACTORIES:
        return FACTORIES[model]()
    maker = _third_party_makers().get(model._meta.label)
    if maker is None:
        return None
    return maker(user)


def admin_url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


REGISTERED = [pytest.param(model, id=model._meta.label) for model in admin.site._registry]


def test_every_foundation_model_is_in_the_admin():
    from tests.foundation.test_factories import FOUNDATION_MODELS

    registered = {model._meta.label for model in admin.site._registry}
    assert FOUNDATION_MODELS - {"trading.StrategyIndicator"} <= registered  # the link rows are a strategy inline


@pytest.mark.django_db
@pytest.mark.parametrize("model", REGISTERED)
def test_staff_opens_the_list_add_and_change_pages(model, client, staff_user):
    row = make_row(model, staff_user)
    client.force_login(staff_user)
    model_admin = admin.site._registry[model]

    listing = client.get(admin_url(model, "changelist"))
    add_page = client.get(admin_url(model, "add"))

    assert listing.status_code == 200
    changelist = listing.context["cl"]
    can_add = model_admin.has_add_permission(listing.wsgi_request)
    assert add_page.status_code == (200 if can_add else 403)
    if row is not None:
        assert changelist.result_count >= 1
        change_page = client.get(changelist.url_for_result(changelist.result_list[0]))
        assert change_page.status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("model", REGISTERED)
def test_a_user_who_is_not_staff_is_sent_to_the_login_page(model, client, owner):
    client.force_login(owner)

    response = client.get(admin_url(model, "changelist"))

    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


# --- The UTC system check -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "expected_ids"),
    [
        ({}, []),
        ({"TIME_ZONE": "America/New_York"}, ["trading.E001"]),
        ({"USE_TZ": False}, ["trading.E002"]),
        ({"TIME_ZONE": "Europe/Berlin", "USE_TZ": False}, ["trading.E001", "trading.E002"]),
    ],
    ids=["utc-and-aware", "local-time-zone", "naive-datetimes", "both"],
)
def test_system_check_reports_anything_but_aware_utc(settings, overrides, expected_ids):
    for name, value in overrides.items():
        setattr(settings, name, value)

    errors = utc_everywhere(None)

    assert [error.id for error in errors] == expected_ids
    assert all(error.level == checks.ERROR for error in errors)


def test_utc_check_is_registered_with_django():
    assert utc_everywhere in checks.registry.registry.get_checks()
