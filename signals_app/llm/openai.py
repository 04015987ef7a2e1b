"""The OpenAI-compatible client module, for local models (Ollama, vLLM, LM Studio) or any server speaking
chat.completions: `OPENAI_BASE_URL`, `OPENAI_API_KEY`, `OPENAI_MODEL`.

Images go as data URLs after the text part. A JSON-schema `response_format` is asked for; a server that rejects
it with a 400 gets the same request once more without it, and the answer is then read by the text fallback parser
(the system prompt describes both formats).
"""

from __future__ import annotations

import copy
import time

import httpx2
import openai
from django.conf import settings

from signals_app.llm.base import AnalysisRequest, Answer, BaseAnalyst, Exchange, LLMError

SECRET_HEADERS = {"authorization", "api-key", "x-api-key", "cookie", "proxy-authorization"}
FINISH_TO_STOP = {"stop": "end_turn", "length": "max_tokens", "content_filter": "refusal"}


class OpenAIAnalyst(BaseAnalyst):
    kind = "openai"

    def __init__(self, *, http_client: httpx2.Client | None = None, base_url: str | None = None, max_retries: int = 2):
        self._http_client = http_client
        self._base_url = base_url
        self._max_retries = max_retries

    def default_model(self) -> str:
        if not settings.OPENAI_MODEL:
            raise LLMError("OPENAI_MODEL is not set: name the model on the OpenAI-compatible server (or use --model)")
        return settings.OPENAI_MODEL

    def client(self) -> openai.OpenAI:
        base_url = self._base_url or settings.OPENAI_BASE_URL
        if not base_url:
            raise LLMError("OPENAI_BASE_URL is not set: point it at the server, e.g. http://localhost:11434/v1")
        return openai.OpenAI(
            api_key=settings.OPENAI_API_KEY or "not-needed",  # local servers ignore it; the SDK insists on one
            base_url=base_url,
            timeout=settings.LLM_TIMEOUT_SECONDS,
            max_retries=self._max_retries,
            http_client=self._http_client,
        )

    def build_body(self, request: AnalysisRequest, *, with_schema: bool = True) -> dict:
        content: list[dict] = [{"type": "text", "text": request.prompt}]
        content += [
            {"type": "image_url", "image_url": {"url": f"data:{image.media_type};base64,{image.base64()}"}}
            for image in request.images
        ]
        body: dict = {
            "model": request.model,
            "max_tokens": request.max_tokens,
            "messages": [{"role": "system", "content": request.system}, {"role": "user", "content": content}],
        }
        if with_schema:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "trading_signal", "schema": request.schema, "strict": True},
            }
        return body

    def audit_body(self, body: dict, request: AnalysisRequest) -> dict:
        audited = copy.deepcopy(body)
        parts = [p for p in audited["messages"][1]["content"] if p["type"] == "image_url"]
        for part, image in zip(parts, request.images, strict=True):
            part["image_url"] = {"url": None, **image.audit()}
        return audited

    def analyse(self, request: AnalysisRequest) -> Answer:
        client = self.client()
        started = time.monotonic()
        body = self.build_body(request)
        exchange = Exchange(request=self.audit_body(body, request))
        try:
            try:
                raw = client.chat.completions.with_raw_response.create(**body)
            except openai.BadRequestError as exc:
                if "response_format" not in exc.response.text and "json_schema" not in exc.response.text:
                    raise
                body = self.build_body(request, with_schema=False)
                exchange.request = self.audit_body(body, request)
                exchange.request["fallback"] = "server rejected response_format; text format requested"
                raw = client.chat.completions.with_raw_response.create(**body)
        except openai.APIStatusError as exc:
            _record_http(exchange, exc.response, started)
            raise LLMError(
                f"OpenAI-compatible API {exc.status_code}: {exc.response.text[:500]}", exchange=exchange
            ) from None
        except openai.APIConnectionError as exc:
            exchange.latency_ms = int((time.monotonic() - started) * 1000)
            raise LLMError(f"OpenAI-compatible server unreachable: {type(exc).__name__}", exchange=exchange) from None
        finally:
            if self._http_client is None:
                client.close()
        _record_http(exchange, raw.http_response, started)
        exchange.retries = raw.retries_taken
        data = exchange.response
        exchange.resolved_model = str(data.get("model") or request.model)
        choice = (data.get("choices") or [{}])[0]
        message = choice.get("message") or {}
        stop = "refusal" if message.get("refusal") else FINISH_TO_STOP.get(choice.get("finish_reason"), "unknown")
        exchange.stop_reason = stop
        usage = data.get("usage") or {}
        cached = int(((usage.get("prompt_tokens_details") or {}).get("cached_tokens")) or 0)
        exchange.usage = {
            "input_tokens": int(usage.get("prompt_tokens") or 0) - cached,
            "output_tokens": int(usage.get("completion_tokens") or 0),
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": cached,
            "cache_creation_1h_input_tokens": 0,
        }
        if stop != "end_turn":
            return Answer(stop_reason=stop, exchange=exchange)
        return Answer(text=str(message.get("content") or ""), stop_reason=stop, exchange=exchange)


def _record_http(exchange: Exchange, response: httpx2.Response, started: float) -> None:
    exchange.latency_ms = int((time.monotonic() - started) * 1000)
    try:
        exchange.response = response.json()
    except ValueError:
        exchange.response = {"raw": response.text[:2000]}
    exchange.request_id = response.headers.get("x-request-id", "") or str(exchange.response.get("id", ""))
    exchange.request_headers = {
        name: value for name, value in response.request.headers.items() if name.lower() not in SECRET_HEADERS
    }
