"""Command arguments that name market data: bar sizes and stored symbols (the grammar: core.cli)."""

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


def resolve_symbol(arg: str) -> Symbol:
    """A stored symbol by ticker (case-insensitive); several exchanges listing it is an error naming them."""
    matches = list(Symbol.objects.by_ticker(arg))
    if not matches:
        raise CommandError(f"unknown symbol {arg!r}: import its bars first (manage.py import_bars PATH --symbol {arg})")
    if len(matches) > 1:
        raise CommandError(f"symbol {arg!r} is listed on several exchanges: {', '.join(map(str, matches))}")
    return matches[0]
