"""Prompt resolution, versioning and rendering."""

from __future__ import annotations

import pytest

from signals_app.models import PromptType, PromptVersion
from signals_app.prompts import (
    DEFAULT_ANALYSIS_PROMPT,
    SAMPLE_CONTEXT,
    PromptRenderError,
    prompt_version_create,
    render_prompt,
    render_text,
    resolve_prompt_version,
)
from tests.factories import PromptTemplateFactory, StrategyFactory

BODY = "Analyse {{ symbol.symbol }} at {{ last_close }}."


def template_with_version(body: str = BODY, **fields):
    template = PromptTemplateFactory(**fields)
    return template, prompt_version_create(template=template, body=body)


@pytest.fixture
def strategy(db):
    return StrategyFactory()


def test_no_template_anywhere_installs_and_uses_the_builtin_default(strategy):
    version = resolve_prompt_version(strategy)

    assert version.template.is_global and version.number == 1
    assert version.body == DEFAULT_ANALYSIS_PROMPT
    assert resolve_prompt_version(strategy) == version


def test_global_template_is_used_when_the_owner_has_none(strategy):
    _, global_version = template_with_version(owner=None)

    assert resolve_prompt_version(strategy) == global_version


def test_owner_template_beats_the_global_one(strategy):
    template_with_version(owner=None)
    _, own = template_with_version(owner=strategy.owner)

    assert resolve_prompt_version(strategy) == own


def test_strategy_template_beats_the_owner_template(strategy):
    template_with_version(owner=strategy.owner)
    _, for_strategy = template_with_version(owner=strategy.owner, strategy=strategy)

    assert resolve_prompt_version(strategy) == for_strategy


def test_strategy_chosen_template_wins(strategy):
    template_with_version(owner=strategy.owner, strategy=strategy)
    chosen, chosen_version = template_with_version(owner=None)
    strategy.prompt_template = chosen
    strategy.save()

    assert resolve_prompt_version(strategy) == chosen_version


def test_another_users_template_is_never_used_even_if_chosen(strategy, other_user):
    theirs, _ = template_with_version(owner=other_user)
    _, global_version = template_with_version(owner=None)
    strategy.prompt_template = theirs
    strategy.save()

    assert resolve_prompt_version(strategy) == global_version


def test_latest_version_is_used_unless_one_is_pinned(strategy):
    template, first = template_with_version(owner=strategy.owner)
    second = prompt_version_create(template=template, body=BODY + " Be brief.")
    assert resolve_prompt_version(strategy) == second

    strategy.pinned_prompt_version = first
    strategy.save()

    assert resolve_prompt_version(strategy) == first


def test_system_prompt_resolves_separately(strategy):
    _, analysis = template_with_version(owner=strategy.owner)

    system = resolve_prompt_version(strategy, PromptType.SYSTEM)

    assert system.template.prompt_type == PromptType.SYSTEM
    assert system != analysis


def test_language_falls_back_to_english(strategy):
    _, english = template_with_version(owner=strategy.owner, language="en")

    assert resolve_prompt_version(strategy, language="de") == english


def test_editing_creates_numbered_versions_and_identical_body_adds_none(db):
    template, first = template_with_version()

    second = prompt_version_create(template=template, body=BODY + " Mind the ATR.")
    again = prompt_version_create(template=template, body=BODY + " Mind the ATR.")

    assert (first.number, second.number) == (1, 2)
    assert again == second
    assert PromptVersion.objects.filter(template=template).count() == 2


@pytest.mark.parametrize(
    "body, message",
    [
        pytest.param("{% if %}", "template error", id="syntax-error"),
        pytest.param("{{ symbol.symbol }} {% for x in bars %}", "template error", id="unclosed-tag"),
        pytest.param("{{ strategy.owner.password }}", "unknown variable", id="reaches-for-owner"),
        pytest.param("{{ secret_key }}", "unknown variable", id="unknown-variable"),
        pytest.param("{% include 'base.html' %}", "failed", id="include-a-file"),
        pytest.param("{% load static %}", "template error", id="load-a-library"),
        pytest.param("{{ position.quantity }}", "unknown variable", id="position-used-without-checking-it-exists"),
        pytest.param("   ", "empty", id="empty"),
    ],
)
def test_body_that_fails_to_render_is_refused_and_nothing_is_saved(db, body, message):
    template = PromptTemplateFactory()

    with pytest.raises(PromptRenderError, match=message):
        prompt_version_create(template=template, body=body)

    assert not template.versions.exists()


def test_rendering_uses_the_context_and_does_not_escape():
    text = render_text("{{ symbol.symbol }} & {{ symbol.name }} <{{ last_close }}>", SAMPLE_CONTEXT)

    assert text == "SAMPLE & Sample Corp <100.0>"


def test_default_prompts_render_with_and_without_a_position(db):
    version = resolve_prompt_version(StrategyFactory())

    with_position = render_prompt(version, SAMPLE_CONTEXT)
    flat = render_prompt(version, {**SAMPLE_CONTEXT, "position": None})

    assert "long 10.0 at 95.0" in with_position
    assert "none (flat). SELL is not possible." in flat
    assert "within 10.0% of the last close" in flat


def test_a_pinned_version_of_another_users_template_is_ignored(strategy, other_user):
    _, theirs = template_with_version(owner=other_user)
    _, own = template_with_version(owner=strategy.owner)
    strategy.pinned_prompt_version = theirs
    strategy.save()

    assert resolve_prompt_version(strategy) == own
