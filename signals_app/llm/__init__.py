"""The analysts: `get_analyst(name)` returns the Anthropic, OpenAI-compatible or rules analyst, all behind the one
interface of `signals_app.llm.base` (re-exported here). The LLM analysts only talk HTTP; recording the call
(LLMCall), the LLM cache and the prompt resolution live with the run's steps (trading.analysis).
"""

from __future__ import annotations

from django.conf import settings

from signals_app.llm.anthropic import AnthropicAnalyst
from signals_app.llm.base import (
    MILLION,
    Analysis,
    AnalysisRequest,
    Answer,
    BaseAnalyst,
    ChartImage,
    Exchange,
    LLMCacheMiss,
    LLMError,
    SpendLimitReached,
    cost_usd,
    price_for,
)
from signals_app.llm.openai import OpenAIAnalyst
from signals_app.llm.rules import RulesAnalyst
from signals_app.models import Analyst as AnalystKind

__all__ = [
    "Analysis",
    "AnalysisRequest",
    "Answer",
    "BaseAnalyst",
    "ChartImage",
    "Exchange",
    "LLMCacheMiss",
    "LLMError",
    "MILLION",
    "SpendLimitReached",
    "analyst_unavailable",
    "cost_usd",
    "get_analyst",
    "price_for",
]


def get_analyst(kind: str) -> BaseAnalyst:
    if kind == AnalystKind.ANTHROPIC:
        return AnthropicAnalyst()
    if kind == AnalystKind.OPENAI:
        return OpenAIAnalyst()
    if kind == AnalystKind.RULES:
        return RulesAnalyst()
    raise ValueError(f"unknown analyst {kind!r}: use one of {', '.join(AnalystKind.values)}")


def analyst_unavailable(kind: str) -> str:
    """Why the analyst cannot make a call with the current settings ("" when it can), so a request can be refused
    where the user typed it instead of failing at its first analysis."""
    if kind == AnalystKind.ANTHROPIC and not settings.ANTHROPIC_API_KEY:
        return "ANTHROPIC_API_KEY is not set: the Anthropic analyst cannot run"
    if kind == AnalystKind.OPENAI and not settings.OPENAI_BASE_URL:
        return "OPENAI_BASE_URL is not set: the OpenAI-compatible analyst has no server to call"
    return ""
