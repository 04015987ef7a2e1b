"""`manage.py seed_demo` run again and again: the password is shown once, nothing is duplicated or overwritten."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command

from brokers.models import BrokerConnection
from market.models import Bar, IndicatorConfig, Symbol
from trading.models import Strategy, StrategyIndicator

PASSWORD_LINE = re.compile(r"password: (\S+)")


def seed() -> str:
    out = StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def printed_password(output: str) -> str | None:
    match = PASSWORD_LINE.search(output)
    return match.group(1) if match else None


def counts() -> dict[str, int]:
    return {
        model.__name__: model.objects.count()
        for model in (
            Bar,
            Symbol,
            get_user_model(),
            BrokerConnection,
            IndicatorConfig,
            Strategy,
            StrategyIndicator,
        )
    }


@pytest.mark.django_db
def test_demo_user_password_is_printed_once_and_signs_in():
    first = seed()
    second = seed()

    password = printed_password(first)
    assert password is not None
    assert printed_password(second) is None
    user = get_user_model().objects.get(username="demo")
    assert authenticate(username="demo", password=password) == user
    assert password not in user.password  # only the hash is stored
    assert user.is_staff and user.is_superuser  # the admin works for the demo user (a local demo only)


@pytest.mark.django_db
def test_a_second_seed_creates_nothing_new():
    seed()
    before = counts()

    seed()

    assert counts() == before


@pytest.mark.django_db
def test_seeding_again_leaves_the_users_own_changes_alone():
    seed()
    user = get_user_model().objects.get(username="demo")
    user.set_password("my-own-password-123")
    user.save()
    Strategy.objects.filter(name="SPY demo").update(schedule_cron="*/15 9-16 * * 1-5", is_active=False)

    output = seed()

    strategy = Strategy.objects.get(name="SPY demo")
    assert (strategy.schedule_cron, strategy.is_active) == ("*/15 9-16 * * 1-5", False)
    assert authenticate(username="demo", password="my-own-password-123") is not None
    assert "Strategy 'SPY demo': paused (resume it on its page or in the admin), schedule */15 9-16 * * 1-5" in output
