"""One grammar for every management command: `--param k=v` and `NAME[:k=v,...]` here; bar sizes and symbols in
market.cli, strategies in trading.cli.

Parsers raise CommandError (argparse's ArgumentTypeError for `type=` functions) with the message the user should
see; Django prints it to stderr and exits non-zero.
"""

from __future__ import annotations

from django.core.management.base import CommandError


def parse_params(pairs: list[str] | None) -> dict[str, str]:
    """`--param k=v` repeated -> {k: v}. Values stay strings; the indicator registry coerces and validates them."""
    params: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise CommandError(f"--param {pair!r}: write it as name=value, e.g. --param period=14")
        if key in params:
            raise CommandError(f"--param {key} is given twice")
        params[key] = value
    return params


def parse_indicator_spec(text: str) -> tuple[str, dict[str, str]]:
    """`NAME[:k=v,...]` -> (NAME, {k: v}), e.g. `BB:period=20,std=2.5`."""
    name, _, rest = text.partition(":")
    if not name.strip():
        raise CommandError(f"--indicator {text!r}: start with the indicator name, e.g. RSI:period=14")
    pairs = [part for part in rest.split(",") if part.strip()] if rest else []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip() or not value.strip():
            example = f"{name.strip().upper()}:period=14"
            raise CommandError(f"--indicator {text!r}: write each parameter as name=value, e.g. --indicator {example}")
    try:
        return name.strip().upper(), parse_params(pairs)
    except CommandError as exc:
        raise CommandError(f"--indicator {text!r}: {exc}") from exc
