"""The one IBKR client: the Client Portal Web API through a gateway (IBKR's own or IBeam), on `requests`.

Reference: shared/reference/ibkr-web-api.md. What this module guarantees:
- every call has a timeout and goes through the shared rate limits (10 req/s per gateway; 1 per 5 s on open orders,
  executions and portfolio accounts; 5 concurrent history requests); a 429 starts a back-off every process sees;
- `/iserver/accounts` is primed before order, status and snapshot calls, and again after "Please query /accounts
  first";
- an order POST (or a question reply) is sent once: a timeout or 5xx on it raises OutcomeUnknown, never a retry;
- questions are answered `confirmed: true` only for the connection's allowed ids (the order guard checks the same
  thing); any other question is answered `false` and the order is Rejected with its text; a prompt (p12) is not
  answered at all.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlparse

import requests
from celery import current_app
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from brokers.interface import (
    BROKER_CANCEL_REQUESTED,
    BROKER_CANCELLED,
    BROKER_FILLED,
    BROKER_PARTIAL,
    BROKER_REJECTED,
    BROKER_WORKING,
    AccountSummary,
    BracketRequest,
    Broker,
    BrokerOrder,
    BrokerPosition,
    Contract,
    DuplicateClientOrderId,
    Execution,
    NotAuthenticated,
    OrderRequest,
    OutcomeUnknown,
    Placement,
    PromptNotAnswered,
    RateLimited,
    Rejected,
    SessionState,
    Transient,
)
from brokers.models import BrokerConnection, default_question_ids
from core.coordination import ThrottleTimeout, throttle
from market.models import AssetType, Symbol
from notifications.models import NotificationKind
from notifications.services import notify

logger = logging.getLogger(__name__)

CONTRACT_CACHE_SECONDS = 3600
MAX_QUESTION_ROUNDS = 10
POSITIONS_PAGE_SIZE = 100
ALREADY_REGISTERED = "is already registered"
TRANSIENT_READ_ERRORS = ("no data", "chart data is not available")

# IBKR status -> ours. Inactive is how IBKR shows most rejections.
STATUS_MAP = {
    "inactive": BROKER_REJECTED,
    "pendingsubmit": BROKER_WORKING,
    "presubmitted": BROKER_WORKING,
    "submitted": BROKER_WORKING,
    "warnstate": BROKER_WORKING,
    "filled": BROKER_FILLED,
    "pendingcancel": BROKER_CANCEL_REQUESTED,
    "cancelled": BROKER_CANCELLED,
}
ORDER_TYPE_TO_IBKR = {"LMT": "LMT", "MKT": "MKT", "STP": "STP", "STOP_LIMIT": "STOP_LIMIT"}
ORDER_TYPE_FROM_IBKR = {
    "limit": "LMT",
    "lmt": "LMT",
    "market": "MKT",
    "mkt": "MKT",
    "stop": "STP",
    "stp": "STP",
    "stop_limit": "STOP_LIMIT",
    "stp_limit": "STOP_LIMIT",
    "stop limit": "STOP_LIMIT",
}


class _AccountsFirst(Exception):
    """IBKR wants /iserver/accounts called before this request (after a login or the nightly reset)."""


def _decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value).replace(",", ""))
    except InvalidOperation:
        return None


def _number(value: Decimal | None) -> int | float:
    """A JSON number for IBKR: integral quantities as int, prices as the float of their exact decimal text."""
    assert value is not None  # the order service gives a limit order its limit price and a stop order its stop
    return int(value) if value == value.to_integral_value() else float(str(value))


def _side(value: str) -> str:
    value = (value or "").upper()
    return {"B": "BUY", "S": "SELL"}.get(value, value)


def _error_text(body: Any) -> str:
    if isinstance(body, dict):
        return str(body.get("error") or "")
    return ""


def parse_verify(value: str | bool) -> bool | str:
    if isinstance(value, bool):
        return value
    lowered = (value or "true").strip().lower()
    if lowered in {"true", "1", "yes", "on"}:
        return True
    if lowered in {"false", "0", "no", "off"}:
        return False
    return value.strip()  # a CA bundle path


class IbkrClient:
    """HTTP to one gateway. Knows IBKR's error shapes and rate limits; knows nothing of our models."""

    def __init__(
        self,
        base_url: str,
        *,
        account_id: str = "",
        verify: bool | str = True,
        timeout: float = 15.0,
        slow_endpoint_interval: float = 5.0,
        backoff_seconds: float = 60.0,
        snapshot_wait: float = 0.5,
        http: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.gateway = urlparse(self.base_url).netloc or self.base_url
        self.account_id = account_id
        self.verify = verify
        self.timeout = timeout
        self.slow_endpoint_interval = slow_endpoint_interval
        self.backoff_seconds = backoff_seconds
        self.snapshot_wait = snapshot_wait
        self.http = http or requests.Session()
        self._accounts_primed = False
        self._portfolio_primed = False

    # --- transport -------------------------------------------------------------------------------------------------

    @property
    def _backoff_key(self) -> str:
        return f"ibkr:backoff:{self.gateway}"

    def _check_backoff(self) -> None:
        until = cache.get(self._backoff_key)
        if until and until > time.time():
            raise RateLimited(
                f"backing off after a 429 from the gateway {self.gateway}", retry_after=until - time.time()
            )

    def _start_backoff(self, path: str) -> None:
        cache.set(self._backoff_key, time.time() + self.backoff_seconds, timeout=int(self.backoff_seconds) + 1)
        logger.warning("IBKR gateway %s answered 429 on %s: backing off %ss", self.gateway, path, self.backoff_seconds)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: Any = None,
        slow_key: str | None = None,
        needs_accounts: bool = False,
        order_post: bool = False,
    ) -> Any:
        """One call, primed and throttled; re-primes and repeats once on "Please query /accounts first" (IBKR
        refused to look at the request, so even an order POST cannot have landed)."""
        if needs_accounts:
            self.prime_accounts()
        try:
            return self._send(method, path, params=params, body=body, slow_key=slow_key, order_post=order_post)
        except _AccountsFirst:
            self._accounts_primed = False
            self.prime_accounts()
            try:
                return self._send(method, path, params=params, body=body, slow_key=slow_key, order_post=order_post)
            except _AccountsFirst as exc:
                raise Transient("the gateway still wants /iserver/accounts first", status_code=500) from exc

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None,
        body: Any,
        slow_key: str | None,
        order_post: bool,
    ) -> Any:
        self._check_backoff()
        try:
            throttle(f"ibkr:{self.gateway}", interval=0.1)
            if slow_key:
                # A margin over IBKR's window: it measures arrivals, we space departures, and the two jitter apart.
                spacing = self.slow_endpoint_interval * 1.05 + 0.05
                throttle(f"ibkr:{self.gateway}:{slow_key}", interval=spacing, max_wait=30)
        except ThrottleTimeout as exc:
            raise RateLimited(
                f"too many callers queued for the gateway {self.gateway}: {exc}", status_code=None
            ) from exc
        url = f"{self.base_url}{path}"
        try:
            response = self.http.request(
                method, url, params=params, json=body, timeout=self.timeout, verify=self.verify
            )
        except (requests.ConnectTimeout, requests.exceptions.SSLError) as exc:
            raise Transient(f"cannot reach the IBKR gateway at {self.gateway}: {exc.__class__.__name__}") from exc
        except requests.ConnectionError as exc:
            if order_post and not _never_connected(exc):
                raise OutcomeUnknown(f"connection lost during {method} {path}: the order may have landed") from exc
            raise Transient(f"cannot reach the IBKR gateway at {self.gateway}: {exc.__class__.__name__}") from exc
        except requests.Timeout as exc:
            if order_post:
                raise OutcomeUnknown(f"no reply within {self.timeout}s to {method} {path}") from exc
            raise Transient(f"no reply within {self.timeout}s to {method} {path}") from exc
        return self._parse(response, path, order_post=order_post)

    def _parse(self, response: requests.Response, path: str, *, order_post: bool) -> Any:
        try:
            body = response.json() if response.content else None
        except ValueError:
            body = None
        status = response.status_code
        text = _error_text(body) or (response.text or "")[:200]
        if "please query /accounts first" in text.lower():
            raise _AccountsFirst(text)
        if status == 401:
            raise NotAuthenticated(
                f"the gateway has no authenticated session ({text or 'not authenticated'}): log in on its page",
                status_code=401,
            )
        if status == 429:
            self._start_backoff(path)
            raise RateLimited(f"IBKR rate limit on {path}", retry_after=self.backoff_seconds)
        if status == 400 and "no bridge" in text.lower():
            raise NotAuthenticated(
                "no brokerage session at the gateway (no bridge): it needs /iserver/auth/ssodh/init or a login",
                status_code=400,
            )
        if status >= 500 or status in (408, 502, 504):
            if order_post:
                raise OutcomeUnknown(f"HTTP {status} on {path}: {text}", status_code=status)
            raise Transient(f"HTTP {status} on {path}: {text}", status_code=status)
        if status >= 400:
            raise Rejected(text or f"HTTP {status} on {path}", status_code=status)
        return body

    # --- session ---------------------------------------------------------------------------------------------------

    def auth_status(self) -> SessionState:
        return _session_state(self.request("POST", "/iserver/auth/status") or {})

    def tickle(self) -> SessionState:
        throttle(f"ibkr:{self.gateway}:tickle", interval=1.0)
        body = self.request("POST", "/tickle") or {}
        return _session_state(((body.get("iserver") or {}).get("authStatus")) or {})

    def init_brokerage_session(self) -> SessionState:
        # compete=false: another login holding the session is reported, never kicked out.
        return _session_state(
            self.request("POST", "/iserver/auth/ssodh/init", body={"publish": True, "compete": False}) or {}
        )

    def suppress_questions(self, message_ids: list[str]) -> None:
        if message_ids:
            self.request("POST", "/iserver/questions/suppress", body={"messageIds": list(message_ids)})

    def prime_accounts(self) -> dict[str, Any]:
        if self._accounts_primed:
            return {}
        body = self.request("GET", "/iserver/accounts") or {}
        self._accounts_primed = True
        if not self.account_id:
            self.account_id = body.get("selectedAccount") or next(iter(body.get("accounts") or []), "")
        return body

    def accounts(self) -> dict[str, Any]:
        self._accounts_primed = False
        return self.prime_accounts()

    def require_account(self) -> str:
        if not self.account_id:
            self.prime_accounts()
        if not self.account_id:
            raise Rejected("no IBKR account id: set it on the connection or IBKR_ACCOUNT_ID")
        return self.account_id

    # --- contracts and market data ---------------------------------------------------------------------------------

    def secdef_search(self, symbol: str, *, sec_type: str = "STK") -> list[dict[str, Any]]:
        return self.request("GET", "/iserver/secdef/search", params={"symbol": symbol, "secType": sec_type}) or []

    def stocks(self, symbols: list[str]) -> dict[str, Any]:
        return self.request("GET", "/trsrv/stocks", params={"symbols": ",".join(symbols)}) or {}

    def contract_info(self, conid: int) -> dict[str, Any]:
        return self.request("GET", f"/iserver/contract/{int(conid)}/info") or {}

    def snapshot(self, conids: list[int], fields: list[str]) -> list[dict[str, Any]]:
        params = {"conids": ",".join(str(int(c)) for c in conids), "fields": ",".join(fields)}
        return self.request("GET", "/iserver/marketdata/snapshot", params=params, needs_accounts=True) or []

    def history(self, conid: int, *, period: str, bar: str, start_time: dt.datetime | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"conid": int(conid), "period": period, "bar": bar, "outsideRth": "false"}
        if start_time is not None:
            params["startTime"] = start_time.astimezone(dt.UTC).strftime("%Y%m%d-%H:%M:%S")
        body = self.request("GET", "/iserver/marketdata/history", params=params) or {}
        error = _error_text(body)
        if error:
            if error.lower().strip(" .") in TRANSIENT_READ_ERRORS:
                raise Transient(f"history for {conid}: {error}")
            raise Rejected(f"history for {conid}: {error}")
        return body

    # --- orders ----------------------------------------------------------------------------------------------------

    def post_orders(self, orders: list[dict[str, Any]]) -> Any:
        account = self.require_account()
        return self.request(
            "POST", f"/iserver/account/{account}/orders", body={"orders": orders}, needs_accounts=True, order_post=True
        )

    def reply(self, reply_id: str, *, confirmed: bool) -> Any:
        return self.request("POST", f"/iserver/reply/{reply_id}", body={"confirmed": confirmed}, order_post=True)

    def live_orders(self, *, force: bool = False) -> list[dict[str, Any]]:
        params = {"force": "true"} if force else None
        body = self.request("GET", "/iserver/account/orders", params=params, slow_key="orders", needs_accounts=True)
        return list((body or {}).get("orders") or []) if isinstance(body, dict) else list(body or [])

    def order_status(self, order_id: str) -> dict[str, Any]:
        return self.request("GET", f"/iserver/account/order/status/{order_id}", needs_accounts=True) or {}

    def cancel_order(self, order_id: str) -> dict[str, Any]:
        account = self.require_account()
        body = self.request("DELETE", f"/iserver/account/{account}/order/{order_id}", needs_accounts=True) or {}
        if _error_text(body):
            raise Rejected(_error_text(body))
        return body

    def modify_order(self, order_id: str, order: dict[str, Any]) -> Any:
        account = self.require_account()
        return self.request(
            "POST", f"/iserver/account/{account}/order/{order_id}", body=order, needs_accounts=True, order_post=True
        )

    def trades(self, *, days: int = 1) -> list[dict[str, Any]]:
        params = {"days": max(1, min(int(days), 7))}
        return (
            self.request("GET", "/iserver/account/trades", params=params, slow_key="trades", needs_accounts=True) or []
        )

    # --- portfolio -------------------------------------------------------------------------------------------------

    def portfolio_accounts(self) -> list[dict[str, Any]]:
        body = self.request("GET", "/portfolio/accounts", slow_key="portfolio-accounts") or []
        self._portfolio_primed = True
        return body

    def _prime_portfolio(self) -> None:
        if not self._portfolio_primed:
            self.portfolio_accounts()

    def positions(self) -> list[dict[str, Any]]:
        self._prime_portfolio()
        account = self.require_account()
        rows: list[dict[str, Any]] = []
        page = 0
        while True:
            batch = self.request("GET", f"/portfolio/{account}/positions/{page}") or []
            rows.extend(batch)
            if len(batch) < POSITIONS_PAGE_SIZE:
                return rows
            page += 1

    def summary(self) -> dict[str, Any]:
        self._prime_portfolio()
        return self.request("GET", f"/portfolio/{self.require_account()}/summary") or {}

    def ledger(self) -> dict[str, Any]:
        self._prime_portfolio()
        return self.request("GET", f"/portfolio/{self.require_account()}/ledger") or {}


def _never_connected(exc: requests.ConnectionError) -> bool:
    text = repr(exc)
    return "NewConnectionError" in text or "Connection refused" in text


def _session_state(body: dict[str, Any]) -> SessionState:
    server = (body.get("serverInfo") or {}).get("serverName", "")
    message = str(body.get("message") or body.get("fail") or "")
    if body.get("competing"):
        message = message or "another IBKR login (TWS, Mobile or the Client Portal) holds the brokerage session"
    return SessionState(
        authenticated=bool(body.get("authenticated")),
        connected=bool(body.get("connected")),
        competing=bool(body.get("competing")),
        message=message,
        server=server,
    )


# --- the Broker on top of the client -------------------------------------------------------------------------------


EXAMPLE_GATEWAY_URL = "https://localhost:5000/v1/api"


class IbkrBroker(Broker):
    def __init__(self, client: IbkrClient, *, allowed_question_ids: list[str] | None = None) -> None:
        self.client = client
        self.allowed_question_ids = set(allowed_question_ids or [])

    @classmethod
    def for_connection(cls, connection: BrokerConnection | None) -> IbkrBroker:
        if connection is None:
            if not settings.IBKR_GATEWAY_URL:
                raise NotAuthenticated(
                    f"no broker connection given and IBKR_GATEWAY_URL is not set (e.g. {EXAMPLE_GATEWAY_URL})"
                )
            url, account, verify = settings.IBKR_GATEWAY_URL, settings.IBKR_ACCOUNT_ID, settings.IBKR_VERIFY_TLS
            allowed = default_question_ids()
        else:
            url = connection.gateway_url or settings.IBKR_GATEWAY_URL
            account = connection.account_id or settings.IBKR_ACCOUNT_ID
            verify = connection.verify_tls
            allowed = list(connection.allowed_question_ids or [])
        parts = urlparse(url)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise NotAuthenticated(f"the IBKR gateway URL {url!r} is not an http(s) URL (e.g. {EXAMPLE_GATEWAY_URL})")
        client = IbkrClient(
            url, account_id=account, verify=parse_verify(verify), timeout=float(settings.IBKR_TIMEOUT_SECONDS)
        )
        return cls(client, allowed_question_ids=allowed)

    @property
    def account_key(self) -> str:  # type: ignore[override]
        return f"ibkr:{self.client.gateway}:{self.client.account_id or 'default'}"

    @property
    def conversation_seconds(self) -> float:  # type: ignore[override]
        # the POST plus a few question replies, each bounded by the timeout
        return self.client.timeout * 4 + 5

    # --- session and account ---------------------------------------------------------------------------------------

    def session(self) -> SessionState:
        return self.client.auth_status()

    def account_summary(self) -> AccountSummary:
        body = self.client.summary()

        def amount(key: str) -> Decimal:
            return _decimal((body.get(key) or {}).get("amount")) or Decimal(0)

        currency = (body.get("netliquidation") or {}).get("currency") or "USD"
        return AccountSummary(
            account_id=self.client.account_id,
            currency=currency,
            cash=amount("totalcashvalue"),
            net_liquidation=amount("netliquidation"),
            buying_power=amount("buyingpower"),
        )

    def positions(self) -> list[BrokerPosition]:
        return [
            BrokerPosition(
                conid=int(row["conid"]) if row.get("conid") is not None else None,
                symbol=row.get("ticker") or row.get("contractDesc") or "",
                quantity=_decimal(row.get("position")) or Decimal(0),
                average_cost=_decimal(row.get("avgCost")) or Decimal(0),
                market_price=_decimal(row.get("mktPrice")),
                market_value=_decimal(row.get("mktValue")),
                unrealized_pnl=_decimal(row.get("unrealizedPnl")),
                realized_pnl=_decimal(row.get("realizedPnl")),
                currency=row.get("currency") or "USD",
            )
            for row in self.client.positions()
            if _decimal(row.get("position"))
        ]

    # --- contracts -------------------------------------------------------------------------------------------------

    def search(self, query: str) -> list[Contract]:
        key = f"ibkr:search:{self.client.gateway}:{query.strip().upper()}"
        contracts: list[Contract] | None = cache.get(key)
        if contracts is None:
            contracts = [
                Contract(
                    conid=int(row["conid"]),  # arrives as a string
                    symbol=row.get("symbol") or query.upper(),
                    name=row.get("companyName") or "",
                    exchange=row.get("description") or "",
                )
                for row in self.client.secdef_search(query.strip().upper())
                if str(row.get("conid") or "").isdigit()
            ]
            cache.set(key, contracts, CONTRACT_CACHE_SECONDS)
        for contract in contracts:
            symbol_from_contract(contract)
        return contracts

    def stock_conid(self, ticker: str) -> Contract:
        """The US listing of a stock (`/trsrv/stocks`, `isUS`), the plain way from a ticker to a conid."""
        ticker = ticker.strip().upper()
        for entry in self.client.stocks([ticker]).get(ticker, []):
            if entry.get("name", "").upper().startswith(("LS ", "SHORT ", "LONG ")):
                continue
            for contract in entry.get("contracts") or []:
                if contract.get("isUS"):
                    found = Contract(
                        conid=int(contract["conid"]),
                        symbol=ticker,
                        name=entry.get("name") or "",
                        exchange=contract.get("exchange") or "",
                        asset_type=entry.get("assetClass") or "STK",
                    )
                    symbol_from_contract(found)
                    return found
        raise Rejected(f"no US stock listing for {ticker}")

    def contract(self, conid: int) -> Contract:
        key = f"ibkr:contract:{self.client.gateway}:{int(conid)}"
        contract: Contract | None = cache.get(key)
        if contract is None:
            info = self.client.contract_info(conid)
            if _error_text(info):
                raise Rejected(_error_text(info))
            contract = Contract(
                conid=int(info.get("con_id") or conid),
                symbol=info.get("symbol") or "",
                name=info.get("company_name") or "",
                exchange=info.get("exchange") or "",
                currency=info.get("currency") or "USD",
                asset_type=info.get("instrument_type") or "STK",
            )
            cache.set(key, contract, CONTRACT_CACHE_SECONDS)
        symbol_from_contract(contract)
        return contract

    def _us_conid(self, ticker: str) -> int:
        conid = self.stock_conid(ticker).conid
        assert conid is not None  # stock_conid builds its Contract from the listing's conid
        return conid

    def conid_of(self, symbol: Symbol) -> int:
        if symbol.conid:
            return int(symbol.conid)
        return self._us_conid(symbol.symbol)

    def last_price(self, symbol: Symbol) -> Decimal:
        conid = self.conid_of(symbol)
        # The first snapshot of a conid only starts the stream (pre-flight); the values come on a later call.
        for attempt in range(4):
            rows = self.client.snapshot([conid], ["31", "84", "86"])
            row = next((r for r in rows if int(r.get("conid") or 0) == conid), {})
            price = _decimal(str(row.get("31") or "").lstrip("CH"))
            if price:
                return price
            if attempt < 3:
                time.sleep(self.client.snapshot_wait)
        raise Transient(f"no last price for conid {conid} yet (no market data subscription?)")

    # --- orders ----------------------------------------------------------------------------------------------------

    def _order_json(self, order: OrderRequest, *, parent_coid: str = "") -> dict[str, Any]:
        conid = order.conid if order.conid is not None else self._us_conid(order.symbol)
        body: dict[str, Any] = {
            "acctId": self.client.account_id,
            "conid": int(conid),  # a number: IBKR refuses the string /secdef/search hands out
            "orderType": ORDER_TYPE_TO_IBKR[order.order_type],
            "side": order.side,
            "quantity": _number(order.quantity),
            "tif": order.tif,
            "outsideRTH": order.outside_rth,
        }
        if order.order_type == "LMT":
            body["price"] = _number(order.limit_price)
        elif order.order_type == "STP":
            body["price"] = _number(order.stop_price)  # IBKR's own bracket example puts the stop in `price`
        elif order.order_type == "STOP_LIMIT":
            body["price"] = _number(order.limit_price)
            body["auxPrice"] = _number(order.stop_price)
        if parent_coid:
            body["parentId"] = parent_coid  # children carry no cOID: IBKR forbids it
        else:
            body["cOID"] = order.client_order_id
        return body

    def place(self, order: OrderRequest) -> Placement:
        self.client.require_account()
        return self._converse(self.client.post_orders([self._order_json(order)]), expected=1)

    def place_bracket(self, bracket: BracketRequest) -> Placement:
        self.client.require_account()
        parent = bracket.entry.client_order_id
        orders = [
            self._order_json(bracket.entry),
            self._order_json(bracket.stop, parent_coid=parent),
            self._order_json(bracket.target, parent_coid=parent),
        ]
        return self._converse(self.client.post_orders(orders), expected=3)

    def modify(self, broker_order_id: str, order: OrderRequest) -> Placement:
        body = self._order_json(order)
        return self._converse(self.client.modify_order(broker_order_id, body), expected=1)

    def _converse(self, reply: Any, *, expected: int) -> Placement:
        """Follow IBKR's reply union until the order is accepted or refused. Each question is answered at once
        (a late answer gets "reply id not found")."""
        answered: list[str] = []
        for _ in range(MAX_QUESTION_ROUNDS):
            items = reply if isinstance(reply, list) else [reply]
            first = items[0] if items and isinstance(items[0], dict) else {}
            if isinstance(reply, dict) and reply.get("prompt"):
                raise PromptNotAnswered(
                    f"IBKR prompt {reply.get('messageId') or ''} not answered: {reply.get('text') or ''}".strip()
                )
            if _error_text(first) and "order_id" not in first:
                error = _error_text(first)
                if ALREADY_REGISTERED in error:
                    raise DuplicateClientOrderId(error)
                raise Rejected(error)
            if first.get("order_id") is not None:
                ids = [str(item["order_id"]) for item in items if isinstance(item, dict) and "order_id" in item]
                status = STATUS_MAP.get(str(first.get("order_status") or "").lower(), BROKER_WORKING)
                if status == BROKER_REJECTED:
                    raise Rejected(f"IBKR shows the order {first.get('order_status')}")
                return Placement(broker_order_ids=ids, broker_status=status, messages=answered)
            if first.get("id") and first.get("message") is not None:
                message_ids = [str(m) for m in first.get("messageIds") or []]
                text = " ".join(str(m) for m in first.get("message") or []).strip()
                if message_ids and all(m in self.allowed_question_ids for m in message_ids):
                    answered.append(f"{','.join(message_ids)}: {text}")
                    reply = self.client.reply(str(first["id"]), confirmed=True)
                    continue
                try:
                    self.client.reply(str(first["id"]), confirmed=False)
                except (Rejected, Transient, OutcomeUnknown, NotAuthenticated, RateLimited) as exc:
                    logger.warning("declining IBKR question %s failed: %s", message_ids, exc)
                raise Rejected(f"IBKR asked {','.join(message_ids) or 'a question'} (not allowed): {text}")
            raise OutcomeUnknown(f"IBKR answered the order with an unexpected body: {str(reply)[:200]}")
        raise Rejected(f"IBKR kept asking questions ({MAX_QUESTION_ROUNDS} rounds); declined")

    def _broker_order(self, row: dict[str, Any]) -> BrokerOrder:
        total = _decimal(row.get("totalSize") if "totalSize" in row else row.get("total_size")) or Decimal(0)
        filled = _decimal(row.get("filledQuantity") if "filledQuantity" in row else row.get("cum_fill")) or Decimal(0)
        raw_status = str(row.get("status") or row.get("order_status") or "")
        status = STATUS_MAP.get(raw_status.lower(), BROKER_WORKING)
        if status == BROKER_WORKING and filled > 0:
            status = BROKER_PARTIAL
        raw_type = str(row.get("origOrderType") or row.get("order_type") or row.get("orderType") or "").lower()
        average = _decimal(row.get("avgPrice") if "avgPrice" in row else row.get("average_price"))
        return BrokerOrder(
            broker_order_id=str(row.get("orderId") or row.get("order_id") or ""),
            order_ref=str(row.get("order_ref") or ""),
            status=status,
            side=_side(str(row.get("side") or "")),
            conid=int(row["conid"]) if row.get("conid") else None,
            symbol=str(row.get("ticker") or row.get("symbol") or ""),
            order_type=ORDER_TYPE_FROM_IBKR.get(raw_type, raw_type.upper()),
            quantity=total,
            filled_quantity=filled,
            average_price=average if average else None,
            parent_broker_order_id=str(row.get("parentId") or ""),
            reason=str(row.get("order_status_description") or ""),
        )

    def open_orders(self) -> list[BrokerOrder]:
        # force=true empties IBKR's cache and answers with nothing; the second read (5 s later, by the
        # shared throttle) is the real list.
        self.client.live_orders(force=True)
        return [self._broker_order(row) for row in self.client.live_orders()]

    def order_status(self, broker_order_id: str) -> BrokerOrder:
        body = self.client.order_status(broker_order_id)
        if _error_text(body):
            raise Rejected(_error_text(body))
        return self._broker_order(body)

    def cancel(self, broker_order_id: str) -> None:
        self.client.cancel_order(broker_order_id)

    def executions(self, *, days: int = 1) -> list[Execution]:
        result = []
        for row in self.client.trades(days=days):
            executed_ms = row.get("trade_time_r")
            if executed_ms:
                executed_at = dt.datetime.fromtimestamp(int(executed_ms) / 1000, tz=dt.UTC)
            else:
                executed_at = dt.datetime.strptime(row["trade_time"], "%Y%m%d-%H:%M:%S").replace(tzinfo=dt.UTC)
            result.append(
                Execution(
                    execution_id=str(row["execution_id"]),
                    broker_order_id=str(row.get("order_id") or ""),
                    order_ref=str(row.get("order_ref") or ""),
                    conid=int(row["conid"]) if row.get("conid") else None,
                    symbol=str(row.get("symbol") or ""),
                    side=_side(str(row.get("side") or "")),
                    quantity=_decimal(row.get("size")) or Decimal(0),
                    price=_decimal(row.get("price")) or Decimal(0),  # prices arrive as strings
                    commission=_decimal(row.get("commission")) or Decimal(0),
                    executed_at=executed_at,
                )
            )
        return result


# --- contracts cached in the Symbol table ----------------------------------------------------------------------------


def symbol_from_contract(contract: Contract) -> Symbol:
    """The Symbol row for an IBKR contract: found by conid, or an offline row of the same ticker and exchange that
    gets the conid, or a new row. Conids never change, so the row is the long-lived cache."""
    asset_type = contract.asset_type if contract.asset_type in AssetType.values else AssetType.STOCK
    existing = Symbol.objects.filter(conid=contract.conid).first()
    if existing:
        return existing
    offline = Symbol.objects.filter(
        symbol__iexact=contract.symbol, exchange__iexact=contract.exchange, conid__isnull=True
    ).first()
    if offline:
        Symbol.objects.filter(pk=offline.pk, conid__isnull=True).update(conid=contract.conid)
        offline.refresh_from_db()
        return offline
    symbol, _ = Symbol.objects.get_or_create(
        conid=contract.conid,
        defaults={
            "symbol": contract.symbol,
            "name": contract.name[:200],
            "exchange": contract.exchange[:32],
            "currency": contract.currency or "USD",
            "asset_type": asset_type,
        },
    )
    return symbol


# --- the keep-alive --------------------------------------------------------------------------------------------------


ENVIRONMENT_SESSION_KEY = "ibkr:environment-gateway:authenticated"


def session_keepalive(*, connection: BrokerConnection | None) -> SessionState:
    """Tickle the gateway, re-open the brokerage session when it is connected but not authenticated (never
    against a competing login), send the question suppression list after a login, and store the state.

    `connection` None is the gateway of IBKR_GATEWAY_URL alone (strategies with no broker connection use it): its
    state has no row to live on, so it is logged, and the cache remembers whether it was logged in."""
    was_authenticated = bool(cache.get(ENVIRONMENT_SESSION_KEY)) if connection is None else connection.authenticated
    try:
        broker = IbkrBroker.for_connection(connection)  # a bad gateway URL is stored as the state
        state = broker.client.tickle()
        if state.connected and not state.authenticated and not state.competing:
            state = broker.client.init_brokerage_session()
        if state.can_trade and not was_authenticated:
            broker.client.suppress_questions(sorted(broker.allowed_question_ids))
    except NotAuthenticated as exc:
        state = SessionState(authenticated=False, connected=False, competing=False, message=exc.message)
    except (Transient, RateLimited, Rejected) as exc:
        state = SessionState(authenticated=False, connected=False, competing=False, message=exc.message)
    if connection is None:
        cache.set(ENVIRONMENT_SESSION_KEY, state.authenticated, timeout=None)
        log = logger.info if state.can_trade else logger.warning
        log("IBKR gateway of IBKR_GATEWAY_URL: %s", state.message or ("ready" if state.can_trade else "not ready"))
        return state
    if state.competing:
        logger.warning("IBKR connection %s: %s", connection.pk, state.message)
    was = _session_health(connection) if connection.last_keepalive_at else None
    BrokerConnection.objects.filter(pk=connection.pk).update(
        authenticated=state.authenticated,
        connected=state.connected,
        competing=state.competing,
        auth_message=state.message[:500],
        last_keepalive_at=timezone.now(),
    )
    connection.refresh_from_db()
    _session_change_notify(connection, was=was, state=state)
    return state


def _session_health(connection: BrokerConnection) -> str:
    if connection.authenticated and connection.connected and not connection.competing:
        return "ready"
    return "login_needed" if connection.connected else "down"


SESSION_NEWS = {
    "down": (NotificationKind.SESSION_DOWN, "IBKR session down"),
    "login_needed": (NotificationKind.SESSION_LOGIN_NEEDED, "IBKR login needed"),
    "ready": (NotificationKind.SESSION_RESTORED, "IBKR session restored"),
}


def _session_change_notify(connection: BrokerConnection, *, was: str | None, state: SessionState) -> None:
    """Tell the owner when the session changes between ready, needing a login and down. A connection's first
    keep-alive tells only of trouble (there was no session to restore)."""
    now = _session_health(connection)
    if now == was or (was is None and now == "ready"):
        return
    if now == "ready":
        # compared with the broker again once the session is back: fills may have happened while it was away
        connection_id = connection.pk
        transaction.on_commit(lambda: current_app.send_task("trading.reconcile_connection", args=[connection_id]))
    kind, headline = SESSION_NEWS[now]
    advice = {
        "down": "The gateway does not answer: orders and runs that need it wait. Check that it is running.",
        "login_needed": "The gateway is up but not logged in (or another session took over): log in to it again.",
        "ready": "Trading through this account can go on.",
    }[now]
    notify(
        owner=connection.owner,
        kind=kind,
        subject=f"{headline}: {connection.name}",
        body=f"{advice}\nThe gateway said: {state.message or 'nothing more'}.",
        path=reverse("ibkr"),
        data={
            "broker_connection_id": connection.pk,
            "authenticated": state.authenticated,
            "connected": state.connected,
        },
    )
