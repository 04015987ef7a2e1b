"""What the order service reads of models from the layers above it: trading's Strategy and portfolio's Position.

The layers let orders import neither (not even for typing), so it knows them by these shapes; the models match them.
"""

from __future__ import annotations

from typing import Protocol


class StrategyLike(Protocol):
    """A trading.Strategy, as far as placing its orders goes."""

    @property
    def pk(self) -> int: ...

    @property
    def owner_id(self) -> int: ...

    @property
    def name(self) -> str: ...

    @property
    def bar_size(self) -> str: ...

    @property
    def kill_switch(self) -> bool: ...

    @property
    def is_replay(self) -> bool: ...


class PositionLike(Protocol):
    """A portfolio.Position, as far as an exit of it goes."""

    @property
    def pk(self) -> int: ...
