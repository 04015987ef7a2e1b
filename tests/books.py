"""The books invariant, checked after every test of the pipeline, replay and broker scenarios: each position's
quantity, average cost and realised P&L equal what its booked trades say (portfolio.services.positions_disagreeing).
"""

from __future__ import annotations

import pytest

from portfolio.services import positions_disagreeing


@pytest.fixture(autouse=True)
def books_agree_with_their_trades(request):
    marker = request.node.get_closest_marker("django_db")
    uses = [name for name in ("transactional_db", "db") if name in request.fixturenames]
    if marker is None and not uses:
        yield
        return
    # Set the database up first, so this check runs before its rollback.
    request.getfixturevalue(uses[0] if uses else ("transactional_db" if marker.kwargs.get("transaction") else "db"))
    yield
    assert positions_disagreeing() == []
