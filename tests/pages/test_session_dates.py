"""Dates as sessions: a daily bar is keyed at 00:00 UTC of its session date, which is the evening before west of
Greenwich. Pages show it as its session date whatever the viewer's zone; intraday bars keep their local time."""

from __future__ import annotations

import datetime as dt

import pytest

from core.models import UserProfile
from core.templatetags.ui import bar_time
from tests.factories import BarFactory, SymbolFactory

SESSION = dt.datetime(2018, 1, 19, tzinfo=dt.UTC)


@pytest.mark.parametrize("zone", ["America/Los_Angeles", "America/New_York", "UTC", "Asia/Tokyo"])
def test_the_symbol_page_shows_the_last_daily_bar_by_its_session_date(owner, owner_client, zone):
    UserProfile.objects.update_or_create(user=owner, defaults={"time_zone": zone})
    symbol = SymbolFactory(symbol="AAPL")
    BarFactory(symbol=symbol, bar_size="1d", timestamp=SESSION)

    html = owner_client.get(f"/symbols/{symbol.pk}/").content.decode()

    assert "last 2018-01-19" in html
    assert "2018-01-18" not in html


def test_an_intraday_bar_keeps_its_time_in_the_viewers_zone(settings):
    from django.utils import timezone

    with timezone.override("America/New_York"):
        assert bar_time(dt.datetime(2018, 1, 19, 15, 30, tzinfo=dt.UTC), "15min") == "Jan 19, 2018 10:30"
        assert bar_time(SESSION, "1w") == "2018-01-19"
    assert bar_time(None) == "—"
