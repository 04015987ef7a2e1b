"""The broker interface: one set of typed calls, two implementations (IBKR's Client Portal gateway and the
simulated broker), chosen per BrokerConnection by `brokers.services.broker_for`.

Prices and money are Decimal, datetimes aware UTC. Errors say whether a retry can help (`.retryable`); an order
POST is never retried by this layer whatever the error says, because only the order service knows whether the
first attempt landed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from market.models import Symbol

# --- Errors --------------------------------------------------------------------------------------------------------


class BrokerError(Exception):
    retryable = False

    def __init__(self, message: str = "", *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code


class NotAuthenticated(BrokerError):
    """No (brokerage) session at the gateway: a person must log in on the gateway's own page."""

    retryable = False


class RateLimited(BrokerError):
    """The gateway said 429, or we are still backing off from one."""

    retryable = True

    def __init__(self, message: str = "", *, retry_after: float = 60.0, status_code: int | None = 429) -> None:
        super().__init__(message, status_code=status_code)
        self.retry_after = retry_after


class Rejected(BrokerError):
    """The broker refused the request; sending the same thing again gets the same answer."""

    retryable = False

    def __init__(self, reason: str, *, status_code: int | None = None) -> None:
        super().__init__(reason, status_code=status_code)
        self.reason = reason


class Transient(BrokerError):
    """A timeout, a 5xx or a gateway restart on a read: the same call later may work."""

    retryable = True


class OutcomeUnknown(BrokerError):
    """The order request may or may not have reached the broker (timeout, lost reply, 5xx on the POST).
    Not retryable: the order is found by its client order id instead."""

    retryable = False


class PromptNotAnswered(Rejected):
    """The broker asked for a decision we never make for a user (IBKR's p12 price-management prompt). The order is
    recorded rejected with the prompt's text, then looked up by its client order id in case the broker holds it."""


class DuplicateClientOrderId(BrokerError):
    """The broker already holds an order with this client order id: the first POST landed."""

    retryable = False


# --- Typed data ----------------------------------------------------------------------------------------------------

# The statuses a broker reports, already mapped to our OrderStatus values.
BROKER_WORKING = "SUBMITTED"
BROKER_PARTIAL = "PARTIALLY_FILLED"
BROKER_FILLED = "FILLED"
BROKER_CANCELLED = "CANCELLED"
BROKER_REJECTED = "REJECTED"
BROKER_EXPIRED = "EXPIRED"
BROKER_CANCEL_REQUESTED = "CANCEL_REQUESTED"


@dataclass(frozen=True)
class AccountSummary:
    account_id: str
    currency: str
    cash: Decimal
    net_liquidation: Decimal
    buying_power: Decimal


@dataclass(frozen=True)
class BrokerPosition:
    conid: int | None
    symbol: str
    quantity: Decimal
    average_cost: Decimal
    market_price: Decimal | None = None
    market_value: Decimal | None = None
    unrealized_pnl: Decimal | None = None
    realized_pnl: Decimal | None = None
    currency: str = "USD"


@dataclass(frozen=True)
class Contract:
    conid: int | None  # None: an offline symbol with no IBKR contract
    symbol: str
    name: str = ""
    exchange: str = ""
    currency: str = "USD"
    asset_type: str = "STK"


@dataclass(frozen=True)
class OrderRequest:
    """One order as the broker sees it. `client_order_id` is sent as IBKR's cOID (never on bracket children)."""

    client_order_id: str
    conid: int | None
    symbol: str
    side: str  # BUY | SELL
    quantity: Decimal
    order_type: str  # LMT | MKT | STP | STOP_LIMIT (our OrderType values)
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    tif: str = "DAY"
    outside_rth: bool = False
    symbol_id: int | None = None  # our market.Symbol row, for the simulated broker


@dataclass(frozen=True)
class BracketRequest:
    """Entry plus a protective stop and a profit target, the two exits one OCA group."""

    entry: OrderRequest
    stop: OrderRequest
    target: OrderRequest


@dataclass(frozen=True)
class Placement:
    """What the broker said to an order POST once every question was answered.

    `broker_order_ids` holds one id per order sent (entry, then stop and target for a bracket)."""

    broker_order_ids: list[str]
    broker_status: str = BROKER_WORKING
    messages: list[str] = field(default_factory=list)  # questions answered yes on the way


@dataclass(frozen=True)
class BrokerOrder:
    """An order as the broker reports it now."""

    broker_order_id: str
    order_ref: str  # our client order id; empty on bracket children
    status: str  # one of the BROKER_* values (our OrderStatus names)
    side: str = ""
    conid: int | None = None
    symbol: str = ""
    order_type: str = ""
    quantity: Decimal = Decimal(0)
    filled_quantity: Decimal = Decimal(0)
    average_price: Decimal | None = None
    parent_broker_order_id: str = ""
    reason: str = ""


@dataclass(frozen=True)
class Execution:
    execution_id: str
    broker_order_id: str
    order_ref: str
    conid: int | None
    symbol: str
    side: str  # BUY | SELL
    quantity: Decimal
    price: Decimal
    commission: Decimal
    executed_at: dt.datetime


@dataclass(frozen=True)
class SessionState:
    authenticated: bool
    connected: bool
    competing: bool
    message: str = ""
    server: str = ""

    @property
    def can_trade(self) -> bool:
        return self.authenticated and self.connected and not self.competing


# --- The interface -------------------------------------------------------------------------------------------------


class Broker:
    """Every call may raise NotAuthenticated, RateLimited, Rejected or Transient; `place`/`place_bracket` may also
    raise OutcomeUnknown or DuplicateClientOrderId. Implementations never retry an order POST."""

    #: identifies the account for the per-account order lock: `broker:{account_key}`
    account_key: str = ""
    #: seconds an order conversation (POST plus every question) may take; the account lock lives this long
    conversation_seconds: float = 60.0

    def session(self) -> SessionState:
        raise NotImplementedError

    def account_summary(self) -> AccountSummary:
        raise NotImplementedError

    def positions(self) -> list[BrokerPosition]:
        raise NotImplementedError

    def search(self, query: str) -> list[Contract]:
        raise NotImplementedError

    def contract(self, conid: int) -> Contract:
        raise NotImplementedError

    def last_price(self, symbol: Symbol) -> Decimal:
        """The last traded price of a market.models.Symbol."""
        raise NotImplementedError

    def place(self, order: OrderRequest) -> Placement:
        raise NotImplementedError

    def place_bracket(self, bracket: BracketRequest) -> Placement:
        raise NotImplementedError

    def order_status(self, broker_order_id: str) -> BrokerOrder:
        raise NotImplementedError

    def open_orders(self) -> list[BrokerOrder]:
        """Working orders plus those filled or cancelled recently (IBKR: this brokerage session)."""
        raise NotImplementedError

    def find_order(self, client_order_id: str) -> BrokerOrder | None:
        """The order whose order_ref is `client_order_id`, or None when the broker has no such order."""
        return next((o for o in self.open_orders() if o.order_ref == client_order_id), None)

    def cancel(self, broker_order_id: str) -> None:
        raise NotImplementedError

    def modify(self, broker_order_id: str, order: OrderRequest) -> Placement:
        raise NotImplementedError

    def executions(self, *, days: int = 1) -> list[Execution]:
        raise NotImplementedError


__all__ = [
    "AccountSummary",
    "Broker",
    "BrokerError",
    "BrokerOrder",
    "BrokerPosition",
    "BracketRequest",
    "Contract",
    "DuplicateClientOrderId",
    "Execution",
    "NotAuthenticated",
    "OrderRequest",
    "OutcomeUnknown",
    "Placement",
    "PromptNotAnswered",
    "RateLimited",
    "Rejected",
    "SessionState",
    "Transient",
]
