"""The prompt admin: editing adds a version, a bad template is refused where it was typed, preview and diff."""

from __future__ import annotations

import pytest
from django.urls import reverse

from signals_app.models import PromptTemplate, PromptVersion
from signals_app.prompts import prompt_version_create
from tests.factories import PromptTemplateFactory

BODY = "{{ symbol.symbol }} closed at {{ last_close }}."


@pytest.fixture
def admin_client(client, staff_user):
    client.force_login(staff_user)
    return client


def form_data(template: PromptTemplate, body: str, note: str = "") -> dict:
    return {
        "name": template.name,
        "description": template.description,
        "prompt_type": template.prompt_type,
        "language": template.language,
        "owner": template.owner_id or "",
        "strategy": template.strategy_id or "",
        "body": body,
        "note": note,
        "versions-TOTAL_FORMS": "0",
        "versions-INITIAL_FORMS": "0",
        "versions-MIN_NUM_FORMS": "0",
        "versions-MAX_NUM_FORMS": "1000",
    }


def test_editing_the_body_creates_a_new_version_and_keeps_the_old_one(admin_client, staff_user):
    template = PromptTemplateFactory(owner=None)
    first = prompt_version_create(template=template, body=BODY)
    url = reverse("admin:signals_app_prompttemplate_change", args=[template.pk])

    page = admin_client.get(url)
    response = admin_client.post(url, form_data(template, BODY + " Be brief.", note="shorter answers"))

    assert BODY in page.content.decode()
    assert response.status_code == 302
    versions = list(template.versions.order_by("number"))
    assert [v.number for v in versions] == [1, 2]
    assert versions[0].body == first.body == BODY
    assert (versions[1].body, versions[1].note, versions[1].created_by) == (
        BODY + " Be brief.",
        "shorter answers",
        staff_user,
    )


def test_saving_an_unchanged_body_adds_no_version(admin_client):
    template = PromptTemplateFactory(owner=None)
    prompt_version_create(template=template, body=BODY)

    admin_client.post(reverse("admin:signals_app_prompttemplate_change", args=[template.pk]), form_data(template, BODY))

    assert template.versions.count() == 1


def test_a_body_that_fails_to_render_is_refused_with_the_error_and_nothing_changes(admin_client):
    template = PromptTemplateFactory(owner=None)
    prompt_version_create(template=template, body=BODY)

    response = admin_client.post(
        reverse("admin:signals_app_prompttemplate_change", args=[template.pk]),
        form_data(template, "{{ strategy.owner.email }}"),
    )

    assert response.status_code == 200
    assert "unknown variable(s): strategy.owner.email" in response.content.decode()
    assert template.versions.count() == 1


def test_adding_a_template_creates_version_one(admin_client):
    template = PromptTemplate(name="Momentum", prompt_type="analysis", language="en")

    admin_client.post(reverse("admin:signals_app_prompttemplate_add"), form_data(template, BODY))

    saved = PromptTemplate.objects.get(name="Momentum")
    assert saved.versions.get().number == 1


def test_versions_cannot_be_edited_in_the_admin(admin_client):
    version = prompt_version_create(template=PromptTemplateFactory(owner=None), body=BODY)

    admin_client.post(reverse("admin:signals_app_promptversion_change", args=[version.pk]), {"body": "changed"})

    version.refresh_from_db()
    assert version.body == BODY


def test_preview_renders_the_version_against_the_strategys_latest_data(admin_client, make_strategy):
    strategy = make_strategy()
    version = prompt_version_create(
        template=PromptTemplateFactory(owner=None),
        body="{{ symbol.symbol }} last {{ last_close }}\n{{ indicators_table }}",
    )
    last_close = strategy.symbol.bars.order_by("-timestamp").first().close

    response = admin_client.get(
        reverse("admin:signals_app_promptversion_preview", args=[version.pk]), {"strategy": strategy.pk}
    )

    text = response.content.decode()
    assert response.status_code == 200
    assert f"ACME last {float(last_close)}" in text
    assert "RSI 14 (RSI period=14): rsi=" in text


def test_diff_shows_added_and_removed_lines(admin_client):
    template = PromptTemplateFactory(owner=None)
    a = prompt_version_create(template=template, body="line one\nline two\n")
    b = prompt_version_create(template=template, body="line one\nline 2\n")

    response = admin_client.get(reverse("admin:signals_app_promptversion_diff"), {"a": a.pk, "b": b.pk})

    text = response.content.decode()
    assert '<div class="removed">-line two</div>' in text
    assert '<div class="added">+line 2</div>' in text
    assert '<div class="same"> line one</div>' in text


def test_prompt_admin_is_for_staff_only(client, owner):
    client.force_login(owner)
    version = prompt_version_create(template=PromptTemplateFactory(owner=None), body=BODY)

    response = client.get(reverse("admin:signals_app_promptversion_preview", args=[version.pk]))

    assert response.status_code == 302 and "/login/" in response.url
    assert PromptVersion.objects.count() == 1
