"""Turn an analyst's answer into a signal we are willing to act on, or into HOLD with the reason why not.

Two input shapes: the structured JSON the schema asks for, and the original design's text format
("Signal: BUY / Entry Price: $… / Stop Loss: $… / Target Price: $… / Confidence: …%") for servers without
structured output. Whatever the shape, the same checks apply; nothing that fails one reaches an order.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from signals_app.models import SignalAction

PRICE_QUANTUM = Decimal("0.000001")  # TradingSignal price fields keep 6 decimal places
CONFIDENCE_QUANTUM = Decimal("0.0001")
MAX_REASONING_CHARS = 4000

# The JSON schema sent to the model (Anthropic output_config.format / OpenAI response_format). The server enforces
# only its shape; every numeric rule is checked here.
SIGNAL_SCHEMA: dict = {
    "type": "object",
    "additionalProperties": False,
    "required": ["action", "entry", "stop_loss", "target", "confidence", "reasoning"],
    "properties": {
        "action": {"type": "string", "enum": ["BUY", "SELL", "HOLD"]},
        "entry": {"type": ["number", "null"], "description": "BUY: entry price; SELL: exit price"},
        "stop_loss": {"type": ["number", "null"], "description": "BUY: protective stop below the entry"},
        "target": {"type": ["number", "null"], "description": "BUY: take-profit above the entry"},
        "confidence": {"type": "number", "description": "0 to 1"},
        "reasoning": {"type": "string", "description": "a few sentences citing the supplied numbers"},
    },
}
SIGNAL_SCHEMA_VERSION = "signal-v1"
SIGNAL_FIELDS = tuple(SIGNAL_SCHEMA["properties"])

# Phrases that have no business in a market analysis: a sign that something in the input (a symbol name, a
# note, a chart annotation) steered the model, so the whole answer is distrusted.
INJECTION_PATTERNS = [
    r"ignore (all |any |the )?(previous|prior|above|earlier) (instructions|rules|prompts?)",
    r"disregard (all |any |the )?(previous|prior|above|risk|instructions|rules)",
    r"\b(system|developer) (prompt|message|instructions?)\b",
    r"\byou are now\b",
    r"\bnew instructions?\b",
    r"\b(override|bypass|disable|skip) (the )?(risk|limits?|kill.?switch|guard|checks?|stop)",
    r"\b(place|submit|execute) (an? )?(market )?order",
    r"\bquantity\s*[:=]",
    r"<\|?/?(system|assistant|user|im_start|im_end)\|?>",
    r"^\s*(assistant|system|user)\s*:",
]
_INJECTION = re.compile("|".join(INJECTION_PATTERNS), re.IGNORECASE | re.MULTILINE)
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class SignalRejected(Exception):
    """The answer cannot be acted on; the message says why, in words a trader can read."""


@dataclass(frozen=True)
class ParsedSignal:
    action: str
    entry: Decimal | None = None
    stop_loss: Decimal | None = None
    target: Decimal | None = None
    confidence: Decimal = Decimal(0)
    reasoning: str = ""
    refusal_reason: str = ""  # set when the answer was turned into HOLD
    source: str = "json"  # json, text, rules or none
    raw: dict = field(default_factory=dict)  # the fields as the analyst gave them, for the audit trail

    @property
    def refused(self) -> bool:
        return bool(self.refusal_reason)

    def as_dict(self) -> dict:
        """Plain JSON-ready values, for lineage."""
        return {
            "action": self.action,
            "entry": _str_or_none(self.entry),
            "stop_loss": _str_or_none(self.stop_loss),
            "target": _str_or_none(self.target),
            "confidence": str(self.confidence),
            "reasoning": self.reasoning,
            "refusal_reason": self.refusal_reason,
            "source": self.source,
        }


def hold(reason: str, *, reasoning: str = "", source: str = "none", raw: dict | None = None) -> ParsedSignal:
    return ParsedSignal(
        action=SignalAction.HOLD,
        reasoning=reasoning[:MAX_REASONING_CHARS],
        refusal_reason=reason,
        source=source,
        raw=raw or {},
    )


def parse_answer(answer: str | dict, *, last_close: Decimal, band: float) -> ParsedSignal:
    """Parse and validate one answer. Never raises for a bad answer: it comes back as HOLD with the reason."""
    try:
        fields, source = _extract_fields(answer)
    except SignalRejected as exc:
        return hold(str(exc), reasoning=answer if isinstance(answer, str) else "")
    try:
        return validate_fields(fields, last_close=last_close, band=band, source=source)
    except SignalRejected as exc:
        reasoning = fields.get("reasoning")
        text = reasoning if isinstance(reasoning, str) else ""
        return hold(str(exc), reasoning=text, source=source, raw=_jsonable(fields))


def validate_fields(fields: dict, *, last_close: Decimal, band: float, source: str = "json") -> ParsedSignal:
    """Check every rule on the fields of one answer; raise SignalRejected with the first broken one."""
    missing = [name for name in SIGNAL_FIELDS if name not in fields]
    if missing:
        raise SignalRejected(f"answer is missing {', '.join(missing)}")
    extra = sorted(set(fields) - set(SIGNAL_FIELDS))
    if extra:
        raise SignalRejected(f"answer has fields the schema does not allow: {', '.join(extra)}")

    action = fields["action"]
    if not isinstance(action, str) or action not in SignalAction.values:
        raise SignalRejected(f"action {action!r} is not BUY, SELL or HOLD")
    reasoning = fields["reasoning"]
    if not isinstance(reasoning, str):
        raise SignalRejected("reasoning is not text")
    if len(reasoning) > MAX_REASONING_CHARS:
        raise SignalRejected(f"reasoning is longer than {MAX_REASONING_CHARS} characters")
    if _CONTROL_CHARS.search(reasoning):
        raise SignalRejected("reasoning contains control characters")
    if match := _INJECTION.search(reasoning):
        raise SignalRejected(f"reasoning contains instructions ({match.group(0).strip()!r}), not analysis")

    confidence = _number(fields["confidence"], "confidence")
    if confidence is None:
        raise SignalRejected("confidence is missing")
    if not Decimal(0) <= confidence <= Decimal(1):
        raise SignalRejected(f"confidence {confidence} is outside 0..1")
    confidence = confidence.quantize(CONFIDENCE_QUANTUM)

    if action == SignalAction.HOLD:
        return ParsedSignal(action=action, confidence=confidence, reasoning=reasoning, source=source)

    prices = {name: _number(fields[name], name) for name in ("entry", "stop_loss", "target")}
    last_close = Decimal(last_close)
    if last_close <= 0:
        raise SignalRejected(f"last close {last_close} is not a usable reference price")
    for name, value in prices.items():
        if value is None:
            continue
        if value <= 0:
            raise SignalRejected(f"{name} {value} is not a positive price")
        if abs(value - last_close) > last_close * Decimal(str(band)):
            raise SignalRejected(
                f"{name} {value} is more than {band:.0%} away from the last close {last_close.normalize()}"
            )
        if value != value.quantize(PRICE_QUANTUM):
            raise SignalRejected(f"{name} {value} has more than 6 decimal places")

    entry, stop, target = prices["entry"], prices["stop_loss"], prices["target"]
    if action == SignalAction.BUY:
        for name in ("entry", "stop_loss", "target"):
            if prices[name] is None:
                raise SignalRejected(f"a BUY needs {name}")
        assert entry is not None and stop is not None and target is not None  # the loop raised for a missing one
        if not stop < entry:
            raise SignalRejected(f"a BUY's stop {stop} must be below its entry {entry}")
        if not entry < target:
            raise SignalRejected(f"a BUY's target {target} must be above its entry {entry}")
    elif entry is None:
        raise SignalRejected("a SELL needs an exit price (entry)")

    return ParsedSignal(
        action=action,
        entry=entry,
        stop_loss=stop,
        target=target,
        confidence=confidence,
        reasoning=reasoning,
        source=source,
        raw=_jsonable(fields),
    )


# --- shapes ---------------------------------------------------------------------------------------------------------


def _extract_fields(answer: str | dict) -> tuple[dict, str]:
    if isinstance(answer, dict):
        return answer, "json"
    if not isinstance(answer, str) or not answer.strip():
        raise SignalRejected("the answer is empty")
    text = answer.strip()
    fenced = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", text, re.DOTALL)
    if fenced:
        text = fenced.group(1)
    if text.startswith(("{", "[")):
        return _loads(text), "json"
    return _text_fields(text), "text"


def _loads(text: str) -> dict:
    def no_constants(name: str):
        raise SignalRejected(f"the answer contains {name}, not a finite number")

    def no_duplicates(pairs: list[tuple]) -> dict:
        keys = [key for key, _ in pairs]
        repeated = sorted({key for key in keys if keys.count(key) > 1})
        if repeated:
            raise SignalRejected(f"the answer gives {', '.join(repeated)} more than once")
        return dict(pairs)

    try:
        value = json.loads(
            text,
            parse_float=Decimal,
            parse_int=Decimal,
            parse_constant=no_constants,
            object_pairs_hook=no_duplicates,
        )
    except json.JSONDecodeError as exc:
        raise SignalRejected(f"the answer is not valid JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(value, dict):
        raise SignalRejected("the answer is JSON but not an object")
    return value


_NUMBER = r"\$?\s*([-+]?[0-9][0-9,]*(?:\.[0-9]+)?|[-+]?\.[0-9]+|nan|inf(?:inity)?)"
_TEXT_FIELDS = {
    "action": re.compile(r"^\W*signal\W*:\s*\**\s*([A-Za-z]+)", re.IGNORECASE | re.MULTILINE),
    "entry": re.compile(rf"^\W*(?:entry|exit)(?: price)?\W*:\s*\**\s*{_NUMBER}", re.IGNORECASE | re.MULTILINE),
    "stop_loss": re.compile(rf"^\W*stop(?: loss)?\W*:\s*\**\s*{_NUMBER}", re.IGNORECASE | re.MULTILINE),
    "target": re.compile(rf"^\W*(?:target|take profit)(?: price)?\W*:\s*\**\s*{_NUMBER}", re.IGNORECASE | re.MULTILINE),
    "confidence": re.compile(rf"^\W*confidence\W*:\s*\**\s*{_NUMBER}\s*(%?)", re.IGNORECASE | re.MULTILINE),
}
_REASONING = re.compile(r"^\W*(?:reasoning|rationale|analysis)\W*:\s*(.+)", re.IGNORECASE | re.MULTILINE | re.DOTALL)


def _text_fields(text: str) -> dict:
    """The original design's labelled lines. Each label may appear once: two different values for one label is
    an answer that contradicts itself, and it is refused rather than guessed at."""
    fields: dict = {}
    for name, pattern in _TEXT_FIELDS.items():
        found = pattern.findall(text)
        values = {(m if isinstance(m, str) else "".join(m)).upper() for m in found}
        if len(values) > 1:
            raise SignalRejected(f"the answer gives {name} more than once with different values")
        if not found:
            if name == "action":
                raise SignalRejected("the answer has no 'Signal:' line and is not JSON")
            fields[name] = None
            continue
        match = found[0]
        if name == "action":
            fields[name] = match.upper()
        elif name == "confidence":
            number, percent = match
            value = _text_number(number, name)
            fields[name] = value / 100 if percent or value > 1 else value
        else:
            fields[name] = _text_number(match, name)
    reasoning = _REASONING.search(text)
    fields["reasoning"] = reasoning.group(1).strip() if reasoning else text
    if fields["action"] == SignalAction.HOLD:
        fields["confidence"] = fields["confidence"] if fields["confidence"] is not None else Decimal(0)
    return fields


def _text_number(raw: str, name: str) -> Decimal:
    try:
        value = Decimal(raw.replace(",", "").replace(" ", ""))
    except InvalidOperation:
        raise SignalRejected(f"{name} {raw!r} is not a number") from None
    if not value.is_finite():
        raise SignalRejected(f"{name} is {raw}, not a finite number")
    return value


def _number(value, name: str) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise SignalRejected(f"{name} {value!r} is not a number")
    number = value if isinstance(value, Decimal) else Decimal(str(value))
    if not number.is_finite():
        raise SignalRejected(f"{name} is {value}, not a finite number")
    return number


def _str_or_none(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _jsonable(fields: dict) -> dict:
    return {key: str(value) if isinstance(value, Decimal) else value for key, value in fields.items()}
