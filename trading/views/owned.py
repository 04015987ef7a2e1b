"""Ownership: every page fetches through these, so another user's id is a 404, never someone else's row."""

from __future__ import annotations

import uuid

from django.http import Http404
from django.shortcuts import get_object_or_404

from brokers.models import BrokerConnection
from lineage.models import LineageRecord
from lineage.steps import CHART_STEP
from market.models import IndicatorConfig
from signals_app.models import PromptTemplate, TradingSignal
from trading.models import Strategy, StrategyExecution


def get_strategy_for_user(user, strategy_id) -> Strategy:
    return get_object_or_404(Strategy.objects.for_owner(user).select_related("symbol"), pk=strategy_id)


def get_execution_for_user(user, execution_id) -> StrategyExecution:
    """Any text is a 404 unless it is the id of one of the user's executions (an id that is no UUID too)."""
    try:
        execution_id = uuid.UUID(str(execution_id))
    except ValueError:
        raise Http404("not an execution id") from None
    return get_object_or_404(
        StrategyExecution.objects.for_owner(user).select_related("strategy__symbol"), pk=execution_id
    )


def get_indicator_for_user(user, indicator_id) -> IndicatorConfig:
    return get_object_or_404(IndicatorConfig.objects.filter(owner=user), pk=indicator_id)


def get_connection_for_user(user, connection_id) -> BrokerConnection:
    return get_object_or_404(BrokerConnection.objects.filter(owner=user), pk=connection_id)


def get_chart_step_for_user(user, execution_id) -> LineageRecord:
    return get_object_or_404(
        LineageRecord.objects.for_owner(user).select_related("execution__strategy__symbol"),
        execution_id=execution_id,
        step_name=CHART_STEP,
    )


def get_prompt_for_user(user, template_id) -> PromptTemplate:
    """A template the user may read: their own or a global one."""
    return get_object_or_404(PromptTemplate.objects.visible_to(user), pk=template_id)


def get_editable_prompt_for_user(user, template_id) -> PromptTemplate:
    """Only the owner edits a template; only staff edit the global ones. Anything else is a 404."""
    template = get_prompt_for_user(user, template_id)
    if template.owner_id != user.pk and not (template.is_global and user.is_staff):
        raise Http404("not yours to edit")
    return template


def get_signal_for_user(user, signal_id) -> TradingSignal:
    return get_object_or_404(
        TradingSignal.objects.for_owner(user).select_related(
            "strategy", "symbol", "execution", "prompt_version__template"
        ),
        pk=signal_id,
    )
