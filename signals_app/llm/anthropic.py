"""The one Anthropic client module (SDK 2.x, which runs on httpx2).

What the current API wants, and why the request looks the way it does:
- no temperature/top_p/top_k: API version 2026-10-21 rejects them with a 400, even at their defaults;
- chart PNGs as base64 image blocks before the text; exact numbers are in the text;
- structured output through `output_config.format` (JSON schema). A forced tool_choice is an error on the newest
  models, so a strict tool is used only for the legacy models that lack output_config;
- the static system prompt carries the cache breakpoint (each chart is unique, so only that prefix can be reused);
- `max_tokens` and `effort` capped from settings; thinking may come first, so blocks are picked by type;
- the SDK retries 429/529 and 5xx itself, except a spend-limit 429, which stops at once.
"""

from __future__ import annotations

import copy
import time

import anthropic
import httpx2
from django.conf import settings

from signals_app.llm.base import (
    AnalysisRequest,
    Answer,
    BaseAnalyst,
    Exchange,
    LLMError,
    SpendLimitReached,
)

TOOL_NAME = "emit_signal"
# Models without output_config (structured outputs and effort): they get a strict tool, forced, which they accept.
LEGACY_MODEL_PREFIXES = ("claude-3",)
SECRET_HEADERS = {"authorization", "x-api-key", "cookie", "proxy-authorization"}
SPEND_LIMIT_CODES = {"enforced_spend_limit_reached", "spend_limit_reached"}


def uses_strict_tool(model: str) -> bool:
    return model.startswith(LEGACY_MODEL_PREFIXES)


class AnthropicAnalyst(BaseAnalyst):
    kind = "anthropic"

    def __init__(
        self,
        *,
        http_client: httpx2.Client | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        max_retries: int = 2,
    ) -> None:
        self._http_client = http_client
        self._api_key = api_key
        self._base_url = base_url
        self._max_retries = max_retries

    def default_model(self) -> str:
        return settings.LLM_MODEL

    def client(self) -> anthropic.Anthropic:
        api_key = self._api_key or settings.ANTHROPIC_API_KEY
        if not api_key:
            raise LLMError("ANTHROPIC_API_KEY is not set: the Anthropic analyst cannot run (try --analyst rules)")
        return anthropic.Anthropic(
            api_key=api_key,  # always explicit, so the SDK never goes looking for profiles or federation
            base_url=self._base_url or settings.ANTHROPIC_BASE_URL or None,
            timeout=settings.LLM_TIMEOUT_SECONDS,
            max_retries=self._max_retries,
            http_client=self._http_client,
            middleware=[_stop_on_spend_limit],
        )

    def build_body(self, request: AnalysisRequest) -> dict:
        """The Messages API body for one analysis (images as base64)."""
        content: list[dict] = [
            {
                "type": "image",
                "source": {"type": "base64", "media_type": image.media_type, "data": image.base64()},
            }
            for image in request.images
        ]
        content.append({"type": "text", "text": request.prompt})
        body: dict = {
            "model": request.model,
            "max_tokens": request.max_tokens,
            "system": [{"type": "text", "text": request.system, "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": content}],
        }
        if uses_strict_tool(request.model):
            body["tools"] = [
                {
                    "name": TOOL_NAME,
                    "description": "Record the trading decision.",
                    "input_schema": request.schema,
                    "strict": True,
                }
            ]
            body["tool_choice"] = {"type": "tool", "name": TOOL_NAME}
        else:
            body["output_config"] = {
                "effort": request.effort,
                "format": {"type": "json_schema", "schema": request.schema},
            }
        return body

    def audit_body(self, body: dict, request: AnalysisRequest) -> dict:
        """The body as sent, with each image's base64 replaced by its storage key and sha256."""
        audited = copy.deepcopy(body)
        blocks = audited["messages"][0]["content"]
        for block, image in zip((b for b in blocks if b["type"] == "image"), request.images, strict=True):
            block["source"] = {"type": "base64", "media_type": image.media_type, "data": None, **image.audit()}
        return audited

    def analyse(self, request: AnalysisRequest) -> Answer:
        body = self.build_body(request)
        exchange = Exchange(request=self.audit_body(body, request))
        client = self.client()
        started = time.monotonic()
        try:
            raw = client.messages.with_raw_response.create(**body)
        except SpendLimitReached as exc:
            _finish(exchange, started, exc.exchange)
            exc.exchange = exchange
            raise
        except anthropic.APIStatusError as exc:
            _finish(exchange, started)
            _record_http(exchange, exc.response)
            exchange.retries = _retries_from(exc.response)
            detail = _error_text(exc.response)
            raise LLMError(f"Anthropic API {exc.status_code}: {detail}", exchange=exchange) from None
        except anthropic.APIConnectionError as exc:
            _finish(exchange, started)
            raise LLMError(f"Anthropic API unreachable: {type(exc).__name__}: {exc}", exchange=exchange) from None
        finally:
            if self._http_client is None:  # an injected client belongs to the caller
                client.close()
        _finish(exchange, started)
        _record_http(exchange, raw.http_response)
        exchange.retries = raw.retries_taken
        data = exchange.response
        exchange.resolved_model = str(data.get("model", ""))
        exchange.stop_reason = str(data.get("stop_reason") or "")
        exchange.usage = _usage(data.get("usage") or {})
        return _answer_from(data, exchange, tool_mode=uses_strict_tool(request.model))


def _answer_from(data: dict, exchange: Exchange, *, tool_mode: bool) -> Answer:
    """Pick blocks by type: thinking (possibly empty) may come first; only text or the tool's input is the answer."""
    blocks = data.get("content") or []
    stop = exchange.stop_reason
    complete = stop == "end_turn" or (tool_mode and stop == "tool_use")
    if not complete:
        return Answer(stop_reason=stop or "unknown", exchange=exchange)
    if tool_mode:
        for block in blocks:
            if block.get("type") == "tool_use" and block.get("name") == TOOL_NAME:
                fields = block.get("input")
                return Answer(
                    fields=fields if isinstance(fields, dict) else None, stop_reason="end_turn", exchange=exchange
                )
    text = "".join(block.get("text", "") for block in blocks if block.get("type") == "text")
    return Answer(text=text, stop_reason="end_turn", exchange=exchange)


def _stop_on_spend_limit(request, call_next):
    """SDK middleware, run once per attempt: a 429 for a reached spend cap raises instead of being retried."""
    response = call_next(request)
    http = response.http_response
    if http.status_code == 429:
        http.read()
        body = _json_or_empty(http)
        error = body.get("error") or {}
        code = str((error.get("details") or {}).get("error_code", ""))
        if code in SPEND_LIMIT_CODES:
            exchange = Exchange()
            _record_http(exchange, http)
            exchange.retries = request.retries_taken
            raise SpendLimitReached(
                f"Anthropic spend limit reached ({code}): not retried; raise the limit or wait for it to reset",
                exchange=exchange,
            )
    return response


def _finish(exchange: Exchange, started: float, source: Exchange | None = None) -> None:
    exchange.latency_ms = int((time.monotonic() - started) * 1000)
    if source is not None:
        exchange.response = source.response
        exchange.request_id = source.request_id
        exchange.request_headers = source.request_headers
        exchange.retries = source.retries


def _record_http(exchange: Exchange, response: httpx2.Response) -> None:
    exchange.response = _json_or_empty(response)
    exchange.request_id = response.headers.get("request-id", "") or str(exchange.response.get("request_id", ""))
    exchange.request_headers = {
        name: value for name, value in response.request.headers.items() if name.lower() not in SECRET_HEADERS
    }


def _retries_from(response: httpx2.Response) -> int:
    try:
        return int(response.request.headers.get("x-stainless-retry-count", "0"))
    except ValueError:
        return 0


def _json_or_empty(response: httpx2.Response) -> dict:
    try:
        data = response.json()
    except ValueError:
        return {"raw": response.text[:2000]}
    return data if isinstance(data, dict) else {"raw": data}


def _error_text(response: httpx2.Response) -> str:
    body = _json_or_empty(response)
    error = body.get("error") or {}
    if isinstance(error, dict) and error:
        return f"{error.get('type', 'error')}: {error.get('message', '')}".strip()
    return str(body.get("raw", ""))[:500]


def _usage(usage: dict) -> dict:
    creation = usage.get("cache_creation") or {}
    return {
        "input_tokens": int(usage.get("input_tokens") or 0),
        "output_tokens": int(usage.get("output_tokens") or 0),
        "cache_creation_input_tokens": int(usage.get("cache_creation_input_tokens") or 0),
        "cache_read_input_tokens": int(usage.get("cache_read_input_tokens") or 0),
        "cache_creation_1h_input_tokens": int(creation.get("ephemeral_1h_input_tokens") or 0),
    }
