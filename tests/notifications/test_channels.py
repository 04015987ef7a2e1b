"""Channels on the settings page: added with their URL checked, shown masked, refused on private hosts, routed,
tested, removed; and the notifications page with each delivery's state."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from notifications.models import Channel, DeliveryState, NotificationKind
from notifications.services import channel_add
from tests.factories import DeliveryFactory, NotificationFactory, UserFactory

pytestmark = pytest.mark.django_db

TELEGRAM = "tgram://123456789:AAFsecretBotToken0123456789/987654"


@pytest.fixture
def trader(client):
    user = UserFactory(username="trader", email="trader@example.com")
    client.force_login(user)
    return user


def add(client, url, **fields):
    return client.post("/settings/", {"action": "channel_add", "url": url, **fields})


# --- adding: the URL is checked, stored as entered, shown masked ------------------------------------------------


def test_a_channel_is_stored_as_entered_and_the_settings_page_shows_it_only_masked(client, trader):
    response = add(client, f"  {TELEGRAM} ", name="phone", kinds=["order_filled", "run_failed"])

    assert response.status_code == 302
    channel = Channel.objects.get(owner=trader)
    assert channel.url == TELEGRAM
    assert (channel.name, channel.kinds) == ("phone", ["order_filled", "run_failed"])
    page = client.get("/settings/").content.decode()
    assert "AAFsecretBotToken" not in page and "123456789:" not in page
    assert channel.masked in page and channel.masked.startswith("tgram://1...")


def test_the_admin_never_shows_a_channels_url(admin_client, trader):
    channel = channel_add(owner=trader, url=TELEGRAM)
    for url in ("/admin/notifications/channel/", f"/admin/notifications/channel/{channel.pk}/change/"):
        body = admin_client.get(url).content.decode()
        assert "AAFsecretBotToken" not in body, url


@pytest.mark.parametrize(
    "url",
    [
        "json://127.0.0.1:5000/v1/api",
        "json://localhost:5000/hook",
        "jsons://10.1.2.3/hook",
        "json://192.168.1.20/hook",
        "json://[::1]:8080/hook",
        "json://2130706433/hook",
        "ntfy://169.254.169.254/topic",
        "json://gateway.local/hook",
        "mailto://user:pass@gmail.com?smtp=127.0.0.1",
    ],
    ids=["loopback", "localhost", "ten", "home-lan", "ipv6-loopback", "decimal-ip", "link-local", "mdns", "smtp-host"],
)
def test_a_private_or_loopback_host_is_refused_on_the_url_field_and_nothing_is_stored(client, trader, url):
    response = add(client, url)

    assert response.status_code == 422
    form = response.context["channel_add_form"]
    assert "loopback or private network" in " ".join(form.errors["url"])
    assert not Channel.objects.exists()


def test_the_server_can_allow_private_hosts(settings, trader):
    settings.NOTIFY_ALLOW_PRIVATE_HOSTS = True
    assert channel_add(owner=trader, url="json://127.0.0.1:8080/hook").pk


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("telegram-please", "Enter an Apprise URL"),
        ("nosuchservice://abc/def", "Apprise does not know the service 'nosuchservice://'"),
        ("tgram://one tgram://two", "no spaces"),
        ("", "This field is required"),
    ],
    ids=["not-a-url", "unknown-service", "two-urls", "empty"],
)
def test_a_url_apprise_cannot_use_is_refused_in_words(client, trader, url, words):
    response = add(client, url)

    assert response.status_code == 422
    assert words in " ".join(response.context["channel_add_form"].errors["url"])
    assert not Channel.objects.exists()


def test_an_unknown_kind_is_refused_by_the_service():
    with pytest.raises(ValidationError) as refused:
        channel_add(owner=UserFactory(), url=TELEGRAM, kinds=["order_filled", "moon_landing"])
    assert "moon_landing" in str(refused.value.message_dict["kinds"])


# --- routing, testing, removing ----------------------------------------------------------------------------------


def test_routing_is_saved_per_channel_and_only_for_the_owner(client, trader):
    mine = channel_add(owner=trader, url=TELEGRAM)
    theirs = channel_add(owner=UserFactory(), url=TELEGRAM)

    client.post("/settings/", {"action": "channel_update", "channel": mine.pk, "kinds": ["daily_summary"]})
    response = client.post("/settings/", {"action": "channel_update", "channel": theirs.pk, "kinds": []})
    bad = client.post("/settings/", {"action": "channel_test", "channel": "1 OR 1=1"})

    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert (mine.kinds, mine.enabled) == (["daily_summary"], False)  # the unticked "On" box switches it off
    assert response.status_code == 404 and theirs.kinds == list(NotificationKind.values)
    assert bad.status_code == 404


def test_send_a_test_reaches_the_channel_and_a_failing_one_says_why(settings, client, trader, endpoint):
    settings.NOTIFY_ALLOW_PRIVATE_HOSTS = True
    channel = channel_add(owner=trader, url=endpoint.url())

    page = client.post("/settings/", {"action": "channel_test", "channel": channel.pk}, follow=True)

    assert endpoint.received[0].body["title"] == "Test from trading"
    assert "Test sent to" in page.content.decode()
    endpoint.answer(500)
    page = client.post("/settings/", {"action": "channel_test", "channel": channel.pk}, follow=True)
    assert "failed: Failed to send JSON POST notification" in page.content.decode()
    channel.refresh_from_db()
    assert channel.failures == 1


def test_a_channel_that_keeps_failing_is_flagged_on_the_settings_page(client, trader):
    channel = channel_add(owner=trader, url=TELEGRAM)
    Channel.objects.filter(pk=channel.pk).update(failures=Channel.FLAG_AFTER, last_error="Unauthorized (401)")

    page = client.get("/settings/").content.decode()

    assert f"keeps failing: {Channel.FLAG_AFTER} in a row" in page and "Unauthorized (401)" in page


def test_a_removed_channel_is_gone_and_the_server_defaults_are_shown_again(settings, client, trader):
    settings.NOTIFY_WEBHOOK_URL = "https://hooks.example.com/trading"
    channel = channel_add(owner=trader, url=TELEGRAM)
    assert "server's defaults" not in client.get("/settings/").content.decode()

    client.post("/settings/", {"action": "channel_remove", "channel": channel.pk})

    assert not Channel.objects.exists()
    page = client.get("/settings/").content.decode()
    assert "server's defaults" in page
    assert "jsons://hooks.example.com/trading" in page and "mail to trader@example.com" in page


def test_htmx_gets_the_channels_card_with_its_errors(client, trader):
    response = client.post(
        "/settings/", {"action": "channel_add", "url": "json://localhost/x"}, headers={"HX-Request": "true"}
    )
    body = response.content.decode()
    assert response.status_code == 422
    assert body.lstrip().startswith('<section class="card" id="channels">')
    assert "loopback or private network" in body


# --- the notifications page -------------------------------------------------------------------------------------


def test_the_notifications_page_lists_each_delivery_with_its_state_and_only_the_users_own(client, trader):
    mine = NotificationFactory(
        execution__strategy__owner=trader,
        subject="Run failed: swing",
        delivery__state=DeliveryState.FAILED,
        delivery__error="Unauthorized",
        delivery__destination="tgram://1...n/987654/",
    )
    DeliveryFactory(notification=mine, destination="mail to trader@example.com")
    NotificationFactory(subject="Run failed: someone else's secret")

    body = client.get("/notifications/").content.decode()

    assert "Run failed: swing" in body and "someone else" not in body
    assert "tgram://1...n/987654/" in body and "Unauthorized" in body and "mail to trader@example.com" in body
    assert client.get("/notifications/?kind=order_filled").content.decode().count("Run failed: swing") == 0
    assert client.get("/notifications/?kind=nonsense&page=zz").status_code == 200


def test_a_hosted_services_token_is_not_taken_for_a_private_host(trader):
    # given a Telegram bot id that, read as a number, spells 10.0.0.1 (tgram://<bot id>:<token>/<chat>)
    channel = channel_add(owner=trader, url="tgram://167772161:AAFsecretBotToken0123456789/987654")
    assert channel.pk
