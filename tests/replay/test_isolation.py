"""A finished replay is invisible to everything live: every page, API route and admin view found in the URLconf,
every registered Celery task, and the kill switch. None of them shows a replay's row, schedules its copy of the
strategy, or changes anything it wrote. Endpoints and tasks added later are covered without editing this file.

Only the replay pages (replays.views) show a replay's rows: they are its report.
"""

from __future__ import annotations

import datetime as dt
import inspect
import itertools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.apps import apps
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.urls.exceptions import NoReverseMatch
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from brokers.models import SimAccount, SimFill, SimOrder, SimPosition
from config.celery import app as celery_app
from lineage.models import LineageRecord
from orders.models import Order
from portfolio.models import Position
from replays.services import replay_create, replay_run
from signals_app.models import TradingSignal
from trading.models import Strategy, StrategyClaim, StrategyExecution, StrategyIndicator

pytestmark = pytest.mark.django_db

LIVE_ONLY_EXEMPT_MODULES = ("replays.",)  # the replay's own pages and task: its report is theirs to show


@dataclass
class ReplayRows:
    """What the finished replay wrote, and the text by which a page would give one of its rows away."""

    shadow: Strategy
    ids: dict[str, list[Any]]
    markers: list[str]

    def state(self) -> dict[str, list[dict]]:
        """Every row the replay owns, as stored: any change (or a new row for its copy) shows here."""
        connection = self.shadow.broker_connection
        state = {
            model._meta.label: list(model.with_replays.filter(is_replay=True).order_by("pk").values())
            for model in apps.get_models()
            if hasattr(model, "with_replays")
        }
        state["sim"] = [
            list(SimAccount.objects.filter(connection=connection).values()),
            list(SimOrder.objects.filter(account__connection=connection).order_by("pk").values()),
            list(SimFill.objects.filter(order__account__connection=connection).order_by("pk").values()),
            list(SimPosition.objects.filter(account__connection=connection).order_by("pk").values()),
        ]
        state["copy"] = [
            list(StrategyIndicator.objects.filter(strategy=self.shadow).values()),
            list(StrategyClaim.objects.filter(pk=self.shadow.pk).values()),
            list(PeriodicTask.objects.filter(args=json.dumps([self.shadow.pk])).values()),
        ]
        return state

    def leak(self, content: bytes, *, echoed: str = "") -> str | None:
        """The first marker the response holds, leaving out what the request itself sent (a form shown again, or
        a link that keeps the query, repeats it without reading any row)."""
        text = content.decode(errors="replace")
        return next((marker for marker in self.markers if marker in text and marker not in echoed), None)


@pytest.fixture
def finished_replay(rules_strategy) -> ReplayRows:
    owner = rules_strategy.owner
    owner.is_staff = owner.is_superuser = True  # the admin's pages are walked as well
    owner.save()
    replay = replay_create(
        owner=owner, strategy=rules_strategy, start=dt.date(2010, 1, 4), end=dt.date(2010, 2, 12), render_charts=False
    )
    replay = replay_run(replay=replay)
    shadow = Strategy.with_replays.select_related("broker_connection").get(pk=replay.shadow_strategy_id)
    orders = list(Order.with_replays.filter(strategy=shadow))
    executions = [str(pk) for pk in StrategyExecution.with_replays.filter(strategy=shadow).values_list("pk", flat=True)]
    assert orders and executions, "the replay must have traded for this test to mean anything"
    ids = {
        "strategy": [shadow.pk],
        "connection": [shadow.broker_connection_id],
        "execution": executions[:1],
        "order": [orders[0].pk],
        "position": list(Position.with_replays.filter(strategy=shadow).values_list("pk", flat=True)[:1]),
        "signal": list(TradingSignal.with_replays.filter(strategy=shadow).values_list("pk", flat=True)[:1]),
        "record": list(LineageRecord.with_replays.filter(execution__strategy=shadow).values_list("pk", flat=True)[:1]),
    }
    # Its copy's name ("… · replay N"), its run ids and its orders' client ids appear nowhere live.
    markers = [shadow.name, *executions, *(o.client_order_id for o in orders)]
    return ReplayRows(shadow=shadow, ids=ids, markers=markers)


# --- finding the endpoints ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    name: str | None
    route: str  # the pattern text, for messages and for unnamed routes
    params: tuple[str, ...]
    module: str


def _endpoints(resolver: URLResolver | None = None, namespace: str = "", prefix: str = "") -> Iterator[Endpoint]:
    resolver = resolver or get_resolver()
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            yield from _endpoints(entry, inner, prefix + str(entry.pattern))
            continue
        assert isinstance(entry, URLPattern)
        params = tuple(entry.pattern.regex.groupindex)
        module = getattr(entry.callback, "__module__", "") or ""
        view_class = getattr(entry.callback, "cls", None) or getattr(entry.callback, "view_class", None)
        if view_class is not None:
            module = view_class.__module__
        yield Endpoint(f"{namespace}{entry.name}" if entry.name else None, prefix + str(entry.pattern), params, module)


def _candidates(param: str, rows: ReplayRows) -> list[Any]:
    """The replay's ids a parameter of this name could take: by its name, else every one of them."""
    for key, values in rows.ids.items():
        if key in param:
            return values
    if param == "format":
        return ["json"]
    if param in {"step_name", "step"}:
        return ["parse_signal", "generate_charts"]
    # A replay has no deliveries (it notifies nobody): a delivery task is handed every integer replay id instead.
    if param == "delivery":
        return sorted({value for values in rows.ids.values() for value in values if isinstance(value, int)})
    if param in {"pk", "id", "object_id"}:
        return sorted({value for values in rows.ids.values() for value in values}, key=str)
    return []


def _urls(endpoint: Endpoint, rows: ReplayRows) -> Iterator[str]:
    if not endpoint.params:
        if endpoint.name:
            yield reverse(endpoint.name)
        elif "(" not in endpoint.route and "<" not in endpoint.route:
            yield "/" + endpoint.route.lstrip("^").rstrip("$")
        return
    choices = [_candidates(param, rows) for param in endpoint.params]
    for values in itertools.product(*choices):
        kwargs = dict(zip(endpoint.params, values, strict=True))
        if endpoint.name:
            try:
                yield reverse(endpoint.name, kwargs=kwargs)
            except NoReverseMatch:
                continue
        else:
            url = endpoint.route
            for param, value in kwargs.items():
                url = re.sub(rf"<(?:\w+:)?{param}>|\(\?P<{param}>[^)]*\)", str(value), url)
            yield "/" + url.lstrip("^").rstrip("$")


def _form(rows: ReplayRows) -> dict[str, Any]:
    """Form fields and filters naming the replay's rows, as a hand-made request would send them."""
    return {
        "strategy": rows.ids["strategy"][0],
        "strategy_id": rows.ids["strategy"][0],
        "broker_connection": rows.ids["connection"][0],
        "connection": rows.ids["connection"][0],
        "execution": rows.ids["execution"][0],
        "order": rows.ids["order"][0],
        "position": rows.ids["position"][0] if rows.ids["position"] else "",
        "signal": rows.ids["signal"][0],
        "engage": "on",
        "side": "SELL",
        "quantity": "1",
        "order_type": "MKT",
    }


def _lists_what_a_delete_takes(endpoint: Endpoint) -> bool:
    """The admin's delete confirmation of a live row (a user, a symbol) must list all that the delete would take
    or is protected by, a replay's copy included: the truth about a cascade, not a live read. Still called, so it
    must neither fail nor change anything."""
    return bool(endpoint.name and endpoint.name.startswith("admin:") and endpoint.name.endswith("_delete"))


def _live_endpoints() -> list[Endpoint]:
    endpoints = [e for e in _endpoints() if not e.module.startswith(LIVE_ONLY_EXEMPT_MODULES)]
    assert len(endpoints) > 50, "the URLconf walk found too few endpoints to trust"
    return endpoints


def test_no_page_api_route_or_admin_view_shows_or_changes_a_finished_replays_rows(finished_replay):
    rows = finished_replay
    owner = rows.shadow.owner
    before = rows.state()
    form = _form(rows)
    calls = 0
    for endpoint in _live_endpoints():
        for url in _urls(endpoint, rows):
            requests = [
                ("get", url, {}),
                ("get", url, {"data": {k: form[k] for k in ("strategy", "execution", "connection", "order")}}),
                ("post", url, {"data": form}),
            ]
            if url.startswith("/api/"):
                body = {"data": json.dumps(form), "content_type": "application/json"}
                requests += [("post", url, body)]
                if endpoint.params:
                    requests += [("put", url, body), ("patch", url, body), ("delete", url, {})]
            for method, target, options in requests:
                # A fresh session each time: a logout cannot turn the rest into login redirects, and a message one
                # request leaves (which may repeat its input) is not read as the next one's page.
                client = Client()
                client.force_login(owner)
                response = getattr(client, method)(target, **options)
                calls += 1
                where = f"{method.upper()} {target} ({endpoint.name or endpoint.route})"
                assert response.status_code < 500, f"{where} failed with {response.status_code}"
                content = b"".join(response.streaming_content) if response.streaming else response.content
                if _lists_what_a_delete_takes(endpoint):
                    continue
                leaked = rows.leak(content, echoed=json.dumps(options.get("data", {}), default=str))
                assert leaked is None, f"{where} shows the replay's {leaked!r}"
    assert calls > 200
    assert rows.state() == before, "a live endpoint changed a replay's rows"


def test_the_kill_switch_counts_and_releases_live_strategies_only(client, finished_replay, rules_strategy):
    rows = finished_replay
    client.force_login(rows.shadow.owner)
    before = rows.state()

    engaged = client.post(reverse("kill_switch"), {"engage": "on"}, follow=True)
    released = client.post(reverse("kill_switch"), {"engage": "off"}, follow=True)

    assert "Kill switch engaged on 1 strategy." in engaged.content.decode()
    assert "Kill switch released on 1 strategy." in released.content.decode()
    rows.shadow.refresh_from_db()
    assert rows.shadow.periodic_task_id is None and not rows.shadow.kill_switch
    assert rows.state() == before
    rules_strategy.refresh_from_db()
    assert rules_strategy.periodic_task.enabled == rules_strategy.is_active and not rules_strategy.kill_switch
    assert PeriodicTask.objects.filter(task="trading.strategy_due").count() == 1


def _task_arguments(task, rows: ReplayRows) -> list[dict[str, Any]]:
    """Calls that aim the task at the replay's rows, by its parameters' names; one plain call if it takes none."""
    required = [
        p.name
        for p in inspect.signature(task.run).parameters.values()
        if p.default is inspect.Parameter.empty and p.kind is p.POSITIONAL_OR_KEYWORD
    ]
    if not required:
        return [{}]
    choices = [_candidates(name.removesuffix("_id"), rows) for name in required]
    assert all(choices), f"{task.name}: no replay id for {required}: teach _candidates the new parameter"
    return [dict(zip(required, values, strict=True)) for values in itertools.product(*choices)]


def test_no_registered_task_schedules_runs_or_changes_a_finished_replays_rows(finished_replay, settings):
    rows = finished_replay
    settings.CELERY_TASK_ALWAYS_EAGER = True
    celery_app.loader.import_default_modules()
    ours = {config.name for config in apps.get_app_configs()} | {"config"}
    tasks = sorted(
        (
            task
            for task in celery_app.tasks.values()
            if task.run.__module__.split(".")[0] in ours  # not Celery's own, nor a test's harness tasks
            and not task.run.__module__.startswith(LIVE_ONLY_EXEMPT_MODULES)
        ),
        key=lambda task: task.name,
    )
    assert {"trading.strategy_due", "trading.strategy_run", "portfolio.stops_watch"} <= {t.name for t in tasks}
    before = rows.state()

    for task in tasks:
        for kwargs in _task_arguments(task, rows):
            task.run(**kwargs)

    assert rows.state() == before, "a task changed a replay's rows or started its copy of the strategy"
    assert not StrategyExecution.with_replays.filter(strategy=rows.shadow).exclude(trigger="replay").exists()


def test_a_replays_copy_cannot_be_given_a_schedule(finished_replay):
    from django.db import IntegrityError, transaction

    from trading.services import ReplayCopyNotScheduled, schedule_sync

    shadow = finished_replay.shadow

    with pytest.raises(ReplayCopyNotScheduled):
        schedule_sync(strategy=shadow)
    crontab = CrontabSchedule.objects.create(minute="*")
    task = PeriodicTask.objects.create(name="sneaked", task="trading.strategy_due", crontab=crontab)
    with pytest.raises(IntegrityError), transaction.atomic():
        Strategy.with_replays.filter(pk=shadow.pk).update(periodic_task=task)
