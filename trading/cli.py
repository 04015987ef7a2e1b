"""One grammar for every management command: bar sizes, `--param k=v`, `NAME[:k=v,...]`, strategies and symbols.

Parsers raise CommandError (argparse's ArgumentTypeError for `type=` functions) with the message the user should
see; Django prints it to stderr and exits non-zero.
"""

from __future__ import annotations

import argparse

from django.core.management.base import CommandError

from market.models import BarSize, Symbol

BAR_SIZES = tuple(BarSize.values)  # 1min 5min 15min 30min 1h 4h 1d 1w


def bar_size_arg(value: str) -> str:
    """For `type=` of a --bar-size option: argparse reports the error against the option."""
    if value not in BAR_SIZES:
        raise argparse.ArgumentTypeError(f"unknown bar size {value!r}: use one of {' '.join(BAR_SIZES)}")
    return value


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


def resolve_strategy(arg: str):
    """A strategy by id or by exact name. An unknown one, or a name several strategies share, is a CommandError
    (the latter listing the candidates with their ids and owners)."""
    from trading.models import Strategy

    arg = str(arg).strip()
    if arg.isdigit():
        by_id = Strategy.objects.filter(pk=int(arg)).select_related("owner").first()
        if by_id is not None:
            return by_id
    matches = list(Strategy.objects.filter(name=arg).select_related("owner").order_by("pk"))
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise CommandError(f"no strategy with id or name {arg!r}")
    candidates = "; ".join(f"id {s.pk} (owner {s.owner.get_username()})" for s in matches)
    raise CommandError(f"{len(matches)} strategies are named {arg!r}: {candidates}. Name one by its id.")


def resolve_symbol(arg: str) -> Symbol:
    """A stored symbol by ticker (case-insensitive); several exchanges listing it is an error naming them."""
    matches = list(Symbol.objects.by_ticker(arg))
    if not matches:
        raise CommandError(f"unknown symbol {arg!r}: import its bars first (manage.py import_bars PATH --symbol {arg})")
    if len(matches) > 1:
        raise CommandError(f"symbol {arg!r} is listed on several exchanges: {', '.join(map(str, matches))}")
    return matches[0]
