"""Each user sees and changes only their own data: another user's ids are a 404 on every page and endpoint."""

from __future__ import annotations

import pytest

from orders.models import Order
from orders.statuses import OrderStatus
from trading.models import Strategy

# (id, url builder) for every page that names an object. Built from a World.
OWNED_PAGES = [
    ("strategy detail", lambda w: f"/strategies/{w.strategy.pk}/"),
    ("strategy edit", lambda w: f"/strategies/{w.strategy.pk}/edit/"),
    ("indicator edit", lambda w: f"/indicators/{w.indicator.pk}/"),
    ("prompt detail", lambda w: f"/prompts/{w.prompt.pk}/"),
    ("prompt diff", lambda w: f"/prompts/{w.prompt.pk}/diff/?a=1&b=2"),
    ("prompt preview", lambda w: f"/prompts/{w.prompt.pk}/preview/?strategy={w.strategy.pk}"),
    ("signal detail", lambda w: f"/signals/{w.signal.pk}/"),
    ("order detail", lambda w: f"/orders/{w.order.pk}/"),
    ("lineage by strategy", lambda w: f"/lineage/?strategy={w.strategy.pk}"),
    ("lineage by execution", lambda w: f"/lineage/?execution={w.execution.pk}"),
    ("lineage step", lambda w: f"/lineage/{w.execution.pk}/parse_signal/"),
    ("chart image", lambda w: f"/charts/{w.execution.pk}/0.png"),
    ("charts by strategy", lambda w: f"/charts/?strategy={w.strategy.pk}"),
    ("logs by strategy", lambda w: f"/logs/?strategy={w.strategy.pk}"),
]

OWNED_POSTS = [
    ("pause", lambda w: f"/strategies/{w.strategy.pk}/pause/"),
    ("resume", lambda w: f"/strategies/{w.strategy.pk}/resume/"),
    ("run now", lambda w: f"/strategies/{w.strategy.pk}/run/"),
    ("delete strategy", lambda w: f"/strategies/{w.strategy.pk}/delete/"),
    ("edit strategy", lambda w: f"/strategies/{w.strategy.pk}/edit/"),
    ("delete indicator", lambda w: f"/indicators/{w.indicator.pk}/delete/"),
    ("edit indicator", lambda w: f"/indicators/{w.indicator.pk}/"),
    ("new prompt version", lambda w: f"/prompts/{w.prompt.pk}/"),
    ("cancel order", lambda w: f"/orders/{w.open_order.pk}/cancel/"),
    ("allowed questions", lambda w: f"/ibkr/{w.connection.pk}/questions/"),
]

OWNED_API = [
    ("strategy", lambda w: f"/api/strategies/{w.strategy.pk}/"),
    ("strategy executions", lambda w: f"/api/strategies/{w.strategy.pk}/executions/"),
    ("execution", lambda w: f"/api/executions/{w.execution.pk}/"),
    ("indicator configuration", lambda w: f"/api/indicators/configurations/{w.indicator.pk}/"),
    ("prompt", lambda w: f"/api/prompts/{w.prompt.pk}/"),
    ("prompt versions", lambda w: f"/api/prompts/{w.prompt.pk}/versions/"),
    ("signal", lambda w: f"/api/signals/{w.signal.pk}/"),
    ("order", lambda w: f"/api/orders/{w.order.pk}/"),
    ("lineage execution", lambda w: f"/api/lineage/execution/{w.execution.pk}/"),
    ("lineage step", lambda w: f"/api/lineage/execution/{w.execution.pk}/step/parse_signal/"),
    ("lineage recent", lambda w: f"/api/lineage/strategy/{w.strategy.pk}/recent/"),
]

OWNED_API_WRITES = [
    ("patch strategy", "patch", lambda w: f"/api/strategies/{w.strategy.pk}/", {"name": "taken over"}),
    ("delete strategy", "delete", lambda w: f"/api/strategies/{w.strategy.pk}/", None),
    ("run strategy", "post", lambda w: f"/api/strategies/{w.strategy.pk}/run/", None),
    ("pause strategy", "post", lambda w: f"/api/strategies/{w.strategy.pk}/pause/", None),
    ("patch indicator", "patch", lambda w: f"/api/indicators/configurations/{w.indicator.pk}/", {"name": "x"}),
    ("delete indicator", "delete", lambda w: f"/api/indicators/configurations/{w.indicator.pk}/", None),
    ("new prompt version", "post", lambda w: f"/api/prompts/{w.prompt.pk}/versions/", {"body": "Hi {{ bar_size }}"}),
    ("cancel order", "post", lambda w: f"/api/orders/{w.open_order.pk}/cancel/", None),
]


@pytest.mark.parametrize(("name", "url"), OWNED_PAGES, ids=[name for name, _ in OWNED_PAGES])
def test_own_page_is_shown(name, url, world, owner_client):
    # given the owner's world, when they open the page, then it answers
    response = owner_client.get(url(world))
    assert response.status_code == 200, response.content[:500]


@pytest.mark.parametrize(("name", "url"), OWNED_PAGES, ids=[name for name, _ in OWNED_PAGES])
def test_another_users_page_is_not_found(name, url, world, other_world, owner_client):
    # given two users, when the owner opens a page naming the other user's object, then it is a 404
    response = owner_client.get(url(other_world))
    assert response.status_code == 404


@pytest.mark.parametrize(("name", "url"), OWNED_POSTS, ids=[name for name, _ in OWNED_POSTS])
def test_another_users_object_cannot_be_changed(name, url, world, other_world, owner_client):
    # given the other user's strategy, order, prompt and connection
    before = (
        list(Strategy.objects.filter(owner=other_world.user).values()),
        list(Order.objects.filter(owner=other_world.user).values("id", "status")),
        other_world.prompt.versions.count(),
    )
    # when the owner posts to their URLs
    response = owner_client.post(url(other_world), {"name": "mine now", "body": "x", "allowed_question_ids": "o1"})
    # then it is a 404 and nothing of theirs changed
    assert response.status_code == 404
    after = (
        list(Strategy.objects.filter(owner=other_world.user).values()),
        list(Order.objects.filter(owner=other_world.user).values("id", "status")),
        other_world.prompt.versions.count(),
    )
    assert after == before


@pytest.mark.parametrize(("name", "url"), OWNED_API, ids=[name for name, _ in OWNED_API])
def test_api_answers_for_own_objects(name, url, world, api_of):
    assert api_of(world.user).get(url(world)).status_code == 200


@pytest.mark.parametrize(("name", "url"), OWNED_API, ids=[name for name, _ in OWNED_API])
def test_api_hides_another_users_objects(name, url, world, other_world, api_of):
    assert api_of(world.user).get(url(other_world)).status_code == 404


@pytest.mark.parametrize(
    ("name", "method", "url", "payload"), OWNED_API_WRITES, ids=[name for name, *_ in OWNED_API_WRITES]
)
def test_api_cannot_change_another_users_objects(name, method, url, payload, world, other_world, api_of):
    before = list(Strategy.objects.filter(owner=other_world.user).values())
    response = getattr(api_of(world.user), method)(url(other_world), payload, format="json")
    assert response.status_code == 404
    assert list(Strategy.objects.filter(owner=other_world.user).values()) == before
    assert Order.objects.get(pk=other_world.open_order.pk).status == OrderStatus.SUBMITTED


LISTS = [
    ("dashboard", "/"),
    ("strategies", "/strategies/"),
    ("signals", "/signals/"),
    ("orders", "/orders/"),
    ("portfolio", "/portfolio/"),
    ("lineage", "/lineage/"),
    ("logs", "/logs/"),
    ("charts", "/charts/"),
    ("indicators", "/indicators/"),
    ("prompts", "/prompts/"),
    ("ibkr", "/ibkr/"),
]


@pytest.mark.parametrize(("name", "url"), LISTS, ids=[name for name, _ in LISTS])
def test_lists_show_only_own_rows(name, url, world, other_world, owner_client):
    # given both users have a strategy, a signal, an order... when the owner opens a list page
    body = owner_client.get(url).content.decode()
    # then nothing named after the other user appears
    for foreign in (
        other_world.strategy.name,
        other_world.symbol.symbol,
        other_world.connection.name,
        other_world.prompt.name,
    ):
        assert foreign not in body


API_LISTS = [
    ("strategies", "/api/strategies/", "name", lambda w: w.strategy.name),
    ("executions", "/api/executions/", "strategy", lambda w: w.strategy.pk),
    ("indicator configurations", "/api/indicators/configurations/", "name", lambda w: w.indicator.name),
    ("prompts", "/api/prompts/", "name", lambda w: w.prompt.name),
    ("signals", "/api/signals/", "strategy", lambda w: w.strategy.pk),
    ("orders", "/api/orders/", "id", lambda w: w.order.pk),
]


@pytest.mark.parametrize(("name", "url", "key", "value"), API_LISTS, ids=[name for name, *_ in API_LISTS])
def test_api_lists_only_own_rows(name, url, key, value, world, other_world, api_of):
    rows = api_of(world.user).get(url).json()["results"]
    values = {row[key] for row in rows}
    assert value(world) in values
    assert value(other_world) not in values


@pytest.mark.parametrize("url", ["/", "/strategies/", "/lineage/", "/settings/", "/orders/new/"])
def test_pages_need_a_login(url, client):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


@pytest.mark.parametrize(
    "url", ["/api/strategies/", "/api/orders/", "/api/portfolio/", "/api/lineage/step/x/statistics/"]
)
def test_api_needs_credentials(url, client):
    assert client.get(url).status_code in (401, 403)
