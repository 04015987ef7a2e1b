"""The /replays/ pages and the `replay` command, end to end on real SPY bars with the rules analyst."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from replays.models import Replay, ReplayStatus
from replays.services import replay_create, replay_run


def _finished(strategy, start=dt.date(2010, 1, 4), end=dt.date(2010, 1, 29)) -> Replay:
    replay = replay_create(owner=strategy.owner, strategy=strategy, start=start, end=end, render_charts=False)
    return replay_run(replay=replay)


def test_starting_a_replay_from_the_page_runs_it_as_a_task_and_shows_its_report(
    client, rules_strategy, settings, django_capture_on_commit_callbacks, celery_eager
):
    # given the owner on the replays page
    client.force_login(rules_strategy.owner)
    page = client.get(reverse("replay_list"))
    assert page.status_code == 200 and b"SPY trend" in page.content

    # when they start a replay of the first week of 2010
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("replay_list"),
            {"strategy": rules_strategy.pk, "start": "2010-01-04", "end": "2010-01-08", "llm_cache": "use"},
        )

    # then the task ran it and its page shows the report beside buy-and-hold and the rules analyst
    replay = Replay.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("replay_detail", args=[replay.pk])
    assert replay.status == ReplayStatus.COMPLETED and replay.steps_done == 5
    detail = client.get(response["Location"]).content.decode()
    for text in ("Total return", "CAGR", "Max drawdown", "Sharpe", "Win rate", "Average R", "Exposure", "Fees",
                 "LLM cost", "Return net of LLM cost", "Buy &amp; hold", "Rules analyst", "Calibration"):  # fmt: skip
        assert text in detail
    plot = client.get(reverse("replay_plot", args=[replay.pk]))
    assert plot["Content-Type"] == "image/png" and b"".join(plot.streaming_content).startswith(b"\x89PNG")


def test_a_bad_range_is_shown_on_the_form_and_starts_nothing(client, rules_strategy):
    client.force_login(rules_strategy.owner)

    response = client.post(
        reverse("replay_list"),
        {"strategy": rules_strategy.pk, "start": "2010-02-01", "end": "2010-01-04", "llm_cache": "use"},
    )

    assert response.status_code == 200
    assert "is before the start" in response.content.decode()
    assert not Replay.objects.exists()


def test_progress_is_served_as_a_partial_to_htmx(client, rules_strategy):
    replay = replay_create(
        owner=rules_strategy.owner, strategy=rules_strategy, start=dt.date(2010, 1, 4), end=dt.date(2010, 1, 29)
    )
    client.force_login(rules_strategy.owner)

    response = client.get(reverse("replay_detail", args=[replay.pk]), HTTP_HX_REQUEST="true")

    body = response.content.decode()
    assert body.lstrip().startswith('<section class="card" id="replay-progress"')
    assert 'hx-trigger="every 1s"' in body and '<progress max="19" value="0"' in body


def test_another_users_replay_is_not_found(client, rules_strategy, other_user):
    replay = replay_create(
        owner=rules_strategy.owner, strategy=rules_strategy, start=dt.date(2010, 1, 4), end=dt.date(2010, 1, 8)
    )
    client.force_login(other_user)

    assert client.get(reverse("replay_detail", args=[replay.pk])).status_code == 404
    assert client.get(reverse("replay_compare") + f"?id={replay.pk}&id={replay.pk}").status_code == 404
    assert client.post(reverse("replay_delete", args=[replay.pk])).status_code == 404


def test_two_replays_are_compared_side_by_side(client, rules_strategy):
    january = _finished(rules_strategy, end=dt.date(2010, 1, 15))
    february = _finished(rules_strategy, dt.date(2010, 2, 1), dt.date(2010, 2, 12))
    client.force_login(rules_strategy.owner)

    response = client.get(reverse("replay_compare") + f"?id={january.pk}&id={february.pk}")

    body = response.content.decode()
    assert response.status_code == 200
    assert f"Replay #{january.pk} vs #{february.pk}" in body
    january_return = january.report["columns"]["replay"]["total_return"]
    assert f"{january_return * 100:.2f}%" in body


def test_replay_command_prints_progress_and_the_report(rules_strategy):
    out = io.StringIO()

    call_command("replay", "SPY trend", "--start", "2010-01-04", "--end", "2010-01-08", stdout=out)

    text = out.getvalue()
    assert "5 steps" in text and "5/5" in text and "steps/s" in text
    for label in ("Total return", "CAGR", "Max drawdown", "Sharpe", "Win rate", "Average R", "Exposure", "Fees",
                  "LLM cost", "Return net of LLM cost", "buy & hold"):  # fmt: skip
        assert label in text
    replay = Replay.objects.get()
    assert f"{replay.report['columns']['replay']['total_return'] * 100:+.2f}%" in text


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        pytest.param(["--start", "2010-13-01", "--end", "2010-01-29"], "not a date", id="bad-date"),
        pytest.param(["--start", "2010-02-01", "--end", "2010-01-04"], "before the start", id="end-before-start"),
        pytest.param(["--start", "2010-01-04", "--end", "2010-01-29", "--budget-usd", "-2"], "positive", id="budget"),
        pytest.param(
            ["--start", "2010-01-04", "--end", "2010-01-29", "--llm-cache", "maybe"], "invalid choice", id="cache-mode"
        ),  # fmt: skip
    ],
)
def test_replay_command_refuses_bad_input_and_writes_nothing(rules_strategy, arguments, message):
    with pytest.raises((CommandError, SystemExit)) as caught:
        call_command("replay", str(rules_strategy.pk), *arguments, stderr=io.StringIO())
    if isinstance(caught.value, CommandError):
        assert message in str(caught.value)
    assert not Replay.objects.exists()


def test_prune_command_deletes_old_replay_lineage_and_then_old_replays(rules_strategy):
    from lineage.models import LineageRecord

    replay = _finished(rules_strategy, end=dt.date(2010, 1, 8))
    assert LineageRecord.with_replays.of_replays().count() == 9 * replay.steps_total

    young = io.StringIO()
    call_command("prune_replays", "--older-than", "1", stdout=young)
    assert "Deleted 0 lineage records" in young.getvalue()

    call_command("prune_replays", "--older-than", "0", stdout=io.StringIO())
    assert not LineageRecord.with_replays.of_replays().exists() and Replay.objects.filter(pk=replay.pk).exists()

    call_command("prune_replays", "--older-than", "0", "--delete", stdout=io.StringIO())
    assert not Replay.objects.exists()


def test_a_stale_replay_offers_resume_and_resuming_finishes_it(
    client, rules_strategy, settings, django_capture_on_commit_callbacks, celery_eager
):
    from django.utils import timezone

    replay = replay_create(
        owner=rules_strategy.owner, strategy=rules_strategy, start=dt.date(2010, 1, 4), end=dt.date(2010, 1, 8)
    )
    Replay.objects.filter(pk=replay.pk).update(
        status=ReplayStatus.RUNNING, heartbeat_at=timezone.now() - dt.timedelta(hours=1)
    )
    client.force_login(rules_strategy.owner)
    assert "Resume" in client.get(reverse("replay_detail", args=[replay.pk])).content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("replay_resume", args=[replay.pk]))

    replay.refresh_from_db()
    assert (replay.status, replay.steps_done) == (ReplayStatus.COMPLETED, 5)
