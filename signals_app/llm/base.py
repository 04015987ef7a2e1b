"""One interface for every analyst: a request (system text, rendered prompt, chart images) in, an answer out, and
what an answer costs. The analysts (anthropic, openai, rules) build on it; `signals_app.llm.get_analyst` picks one."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings


class LLMError(Exception):
    """The analyst could not produce an answer (transport, HTTP status, bad configuration). The call is recorded
    with this error and the step fails; nothing is traded."""

    def __init__(self, message: str, *, exchange: Exchange | None = None) -> None:
        super().__init__(message)
        self.exchange = exchange


class SpendLimitReached(LLMError):
    """The provider's spend cap is reached: retrying cannot help until it resets."""


class LLMCacheMiss(LLMError):
    """--llm-cache only, and no stored answer matches this request."""


@dataclass(frozen=True)
class ChartImage:
    """A rendered chart as stored: the bytes go to the model, the key and sha256 go to the audit log."""

    key: str
    sha256: str
    data: bytes
    width: int = 0
    height: int = 0
    media_type: str = "image/png"
    title: str = ""

    def base64(self) -> str:
        return base64.b64encode(self.data).decode("ascii")

    def audit(self) -> dict:
        return {"key": self.key, "sha256": self.sha256, "media_type": self.media_type, "bytes": len(self.data)}


@dataclass(frozen=True)
class AnalysisRequest:
    model: str
    system: str
    prompt: str
    images: list[ChartImage] = field(default_factory=list)
    schema: dict = field(default_factory=dict)
    max_tokens: int = 4096
    effort: str = "low"
    context: dict = field(default_factory=dict)  # for the rules analyst, which reads numbers instead of text


@dataclass
class Exchange:
    """What went over the wire for one analysis: enough to audit and to price it."""

    request: dict = field(default_factory=dict)  # as sent, without credentials, images by key and sha256
    request_headers: dict = field(default_factory=dict)
    response: dict = field(default_factory=dict)
    resolved_model: str = ""
    stop_reason: str = ""
    request_id: str = ""
    retries: int = 0
    latency_ms: int = 0
    usage: dict = field(default_factory=dict)


@dataclass
class Answer:
    """The analyst's answer: `text` (JSON or the labelled text format) or `fields` already structured."""

    text: str = ""
    fields: dict | None = None
    stop_reason: str = "end_turn"
    exchange: Exchange = field(default_factory=Exchange)


@dataclass
class Analysis:
    """What `steps.analyse` returns: the answer plus where it came from and what it cost."""

    analyst: str
    model: str
    answer: Answer
    prompt_version: object | None = None  # PromptVersion, or None for the rules analyst
    system_prompt_version: object | None = None
    rendered_prompt: str = ""
    llm_call: object | None = None  # LLMCall, or None for the rules analyst
    from_cache: bool = False
    cost_usd: Decimal | None = Decimal(0)

    @property
    def usage(self) -> dict:
        return self.answer.exchange.usage

    @property
    def resolved_model(self) -> str:
        return self.answer.exchange.resolved_model or self.model


class BaseAnalyst:
    kind: str = ""

    def analyse(self, request: AnalysisRequest) -> Answer:
        raise NotImplementedError

    def default_model(self) -> str:
        raise NotImplementedError


MILLION = Decimal(1_000_000)


def price_for(model: str, prices: dict | None = None) -> dict[str, Decimal] | None:
    """The price row (USD per million tokens) whose key is the longest prefix of `model`, or None."""
    table = settings.LLM_PRICES if prices is None else prices
    matches = [key for key in table if model == key or model.startswith(key + "-")]
    if not matches:
        return None
    return {name: Decimal(value) for name, value in table[max(matches, key=len)].items()}


def cost_usd(model: str, usage: dict, prices: dict | None = None) -> Decimal | None:
    """What one call cost: uncached input, cache writes (5-minute or 1-hour), cache reads and output (thinking
    included). None when the model has no price, so an unknown cost is never shown as zero."""
    price = price_for(model, prices)
    if price is None:
        return None
    write_1h = int(usage.get("cache_creation_1h_input_tokens") or 0)
    write_5m = int(usage.get("cache_creation_input_tokens") or 0) - write_1h
    total = (
        int(usage.get("input_tokens") or 0) * price["input"]
        + write_5m * price["cache_write_5m"]
        + write_1h * price["cache_write_1h"]
        + int(usage.get("cache_read_input_tokens") or 0) * price["cache_read"]
        + int(usage.get("output_tokens") or 0) * price["output"]
    )
    return (total / MILLION).quantize(Decimal("0.000001"))
