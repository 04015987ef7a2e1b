"""A strict stand-in for IBKR's Client Portal gateway, answering with the shapes in shared/reference/ibkr-samples.md.

One implementation, two transports: `install_responses` (the `responses` library, in-process) and
`LoopbackGateway` (a threaded HTTP server on 127.0.0.1, for subprocesses and the `ibkr` command).

Strict where IBKR is, and stricter where our own rules are: a string conid, a bare-array order body, an order
without a cOID (or a child with one), a second open-orders/trades/portfolio-accounts call within the window, an
/iserver call before /iserver/accounts or a /portfolio call before /portfolio/accounts are answered with IBKR's
error and written to `violations`, which the fixtures assert empty.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time
import uuid
from collections import deque
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import requests

ACCOUNT = "DU123456"
AAPL = 265598
SPY = 756733
API = "/v1/api"

AUTH_OK = {
    "authenticated": True,
    "competing": False,
    "connected": True,
    "established": True,
    "fail": "",
    "message": "",
    "MAC": "12:B:B3:23:BF:A0",
    "hardware_info": "21026956|06:8E:04:45:DA:8F",
    "serverInfo": {"serverName": "JifN19053", "serverVersion": "Build 10.25.0p, Dec 5, 2023 5:48:12 PM"},
}

QUESTION_TEXT = {
    "o163": 'The following order "{desc}" price exceeds \nthe Percentage constraint of 3%.\n'
    "Are you sure you want to submit this order?",
    "o383": 'The following order "{desc}" size exceeds the Size Limit of 500.\n'
    "Are you sure you want to submit this order?",
    "o451": 'The following order "{desc}" value estimate of 100,000.00 USD exceeds \nthe Total Value Limit of '
    "50,000 USD.\nAre you sure you want to submit this order?",
    "o10331": "You are about to submit a stop order. Please be aware of the various stop order types available "
    "and the risks associated with each one.\nAre you sure you want to submit this order?",
    "o354": "You are submitting an order without market data. We strongly recommend against this as it may "
    "result in erroneous and unexpected trades.\nAre you sure you want to submit this order?",
}

P12 = {
    "dismissable": [],
    "messageId": "p12",
    "options": ["Use on this order", "Always use", "Do not use"],
    "orderId": 123456789,
    "prompt": True,
    "reqId": "22170",
    "text": "If your order is not immediately executable, our systems may, depending on market conditions, reject "
    "your order if its limit price is more that the allowed amount away from the reference price at that time. "
    "If this happens, you will not receive a fill.\nUse the Price Management Algo?",
    "type": "M",
}


class Stall(Exception):
    """The transport should not answer: the client's read times out (the request did arrive)."""


class FakeGateway:
    def __init__(self, *, slow_interval: float = 5.0, cash: Decimal = Decimal("10000")) -> None:
        self.lock = threading.RLock()
        self.slow_interval = slow_interval
        self.authenticated = True
        self.connected = True
        self.competing = False
        self.bridge = True
        self.accounts_primed = False
        self.portfolio_primed = False
        self.cash = cash
        self.prices: dict[int, Decimal] = {AAPL: Decimal("100.00"), SPY: Decimal("457.00")}
        self.snapshot_started: set[int] = set()
        self.history: dict[int, list[dict]] = {}
        self.orders: dict[str, dict] = {}
        self.executions: list[dict] = []
        self.positions: dict[int, dict] = {}
        self.next_order_id = 1370093239
        self.calls: list[tuple[str, str]] = []
        self.violations: list[str] = []
        self.last_slow_call: dict[str, float] = {}
        self.suppressed: list[str] = []
        self.init_calls: list[dict] = []
        # scripts for what comes next
        self.questions: deque[list[str]] = deque()  # chains of messageIds asked after the next order POST
        self.prompt_next = False
        self.prompt_holds_order = False
        self.stall_next_order = False
        self.fail_next: deque[tuple[str, int, dict]] = deque()  # (path regex, status, body)
        self.reset_accounts_next = False
        self.pending_replies: dict[str, dict] = {}
        self.stalled = threading.Event()  # set when a stalled request arrived
        self.release = threading.Event()

    # --- helpers for tests -----------------------------------------------------------------------------------------

    def order_posts(self) -> int:
        return sum(
            1
            for method, path in self.calls
            if method == "POST" and re.fullmatch(r"/iserver/account/[^/]+/orders", path)
        )

    def count(self, method: str, pattern: str) -> int:
        return sum(1 for m, p in self.calls if m == method and re.fullmatch(pattern, p))

    def by_ref(self, order_ref: str) -> dict:
        return next(o for o in self.orders.values() if o["order_ref"] == order_ref)

    def fill(self, order_id: str, price: Decimal, quantity: Decimal | None = None) -> dict:
        """The market traded through the order: an execution, the position, and OCA for bracket exits."""
        with self.lock:
            order = self.orders[str(order_id)]
            quantity = quantity or Decimal(str(order["totalSize"])) - Decimal(str(order["filledQuantity"]))
            execution_id = f"0000e0d5.{uuid.uuid4().hex[:8]}.01.01"
            now_ms = int(time.time() * 1000)
            commission = max(quantity * Decimal("0.005"), Decimal("1.00"))
            self.executions.append(
                {
                    "execution_id": execution_id,
                    "symbol": order["ticker"],
                    "side": "B" if order["side"] == "BUY" else "S",
                    "order_description": f"{order['side']} {quantity} @ {price}",
                    "trade_time": time.strftime("%Y%m%d-%H:%M:%S", time.gmtime(now_ms / 1000)),
                    "trade_time_r": now_ms,
                    "size": float(quantity),
                    "price": str(price),
                    "order_ref": order["order_ref"],
                    "submitter": "user1234",
                    "exchange": "ISLAND",
                    "commission": f"{commission:.2f}",
                    "net_amount": float(price * quantity),
                    "account": ACCOUNT,
                    "accountCode": ACCOUNT,
                    "company_name": "APPLE INC",
                    "contract_description_1": order["ticker"],
                    "sec_type": "STK",
                    "conid": order["conid"],
                    "conidex": str(order["conid"]),
                    "position": "0",
                    "clearing_id": "IB",
                    "clearing_name": "IB",
                    "liquidation_trade": "0",
                    "order_id": int(order_id),
                }
            )
            filled = Decimal(str(order["filledQuantity"])) + quantity
            order["filledQuantity"] = float(filled)
            order["remainingQuantity"] = float(Decimal(str(order["totalSize"])) - filled)
            order["avgPrice"] = str(price)
            order["lastExecutionTime_r"] = now_ms
            if filled >= Decimal(str(order["totalSize"])):
                order["status"] = order["order_ccp_status"] = "Filled"
            position = self.positions.setdefault(order["conid"], {"qty": Decimal(0), "avg": Decimal(0)})
            if order["side"] == "BUY":
                total = position["qty"] + quantity
                position["avg"] = (position["avg"] * position["qty"] + price * quantity) / total
                position["qty"] = total
                self.cash -= price * quantity + commission
            else:
                position["qty"] -= quantity
                self.cash += price * quantity - commission
            parent = order.get("parentId")
            if parent:
                for other in self.orders.values():
                    if other.get("parentId") == parent and other is not order and other["status"] != "Filled":
                        other["status"] = other["order_ccp_status"] = "Cancelled"
            return order

    # --- dispatch --------------------------------------------------------------------------------------------------

    def handle(self, method: str, path: str, query: dict, body) -> tuple[int, object]:
        with self.lock:
            if path.startswith(API):
                path = path[len(API) :]
            self.calls.append((method, path))
            for index, (pattern, status, payload) in enumerate(self.fail_next):
                if re.fullmatch(pattern, path):
                    del self.fail_next[index]
                    if status == 0:
                        raise Stall()
                    return status, payload
            if path.startswith(("/iserver", "/portfolio", "/trsrv")) and not self.authenticated:
                return 401, {"error": "not authenticated", "statusCode": 401}
            if path.startswith("/iserver") and not path.startswith("/iserver/auth") and not self.bridge:
                return 400, {"error": "Bad Request: no bridge", "statusCode": 400}
            for pattern, handler in self.routes():
                match = re.fullmatch(pattern[1], path)
                if match and method == pattern[0]:
                    return handler(query, body, *match.groups())
            return 404, {"error": f"no route {method} {path}"}

    def routes(self):
        return [
            (("POST", r"/iserver/auth/status"), self.auth_status),
            (("POST", r"/tickle"), self.tickle),
            (("POST", r"/iserver/auth/ssodh/init"), self.ssodh_init),
            (("POST", r"/iserver/questions/suppress"), self.suppress),
            (("GET", r"/iserver/accounts"), self.iserver_accounts),
            (("GET", r"/iserver/secdef/search"), self.secdef_search),
            (("GET", r"/trsrv/stocks"), self.trsrv_stocks),
            (("GET", r"/iserver/contract/(\d+)/info"), self.contract_info),
            (("GET", r"/iserver/marketdata/snapshot"), self.snapshot),
            (("GET", r"/iserver/marketdata/history"), self.history_bars),
            (("POST", r"/iserver/account/([^/]+)/orders"), self.place_orders),
            (("POST", r"/iserver/reply/([^/]+)"), self.reply),
            (("GET", r"/iserver/account/orders"), self.live_orders),
            (("GET", r"/iserver/account/order/status/(\d+)"), self.order_status),
            (("DELETE", r"/iserver/account/([^/]+)/order/(\d+)"), self.cancel),
            (("POST", r"/iserver/account/([^/]+)/order/(\d+)"), self.modify),
            (("GET", r"/iserver/account/trades"), self.trades),
            (("GET", r"/portfolio/accounts"), self.portfolio_accounts),
            (("GET", r"/portfolio/([^/]+)/positions/(\d+)"), self.portfolio_positions),
            (("GET", r"/portfolio/([^/]+)/summary"), self.portfolio_summary),
            (("GET", r"/portfolio/([^/]+)/ledger"), self.portfolio_ledger),
        ]

    def _violation(self, text: str) -> None:
        self.violations.append(text)

    def _slow(self, key: str) -> tuple[int, object] | None:
        now = time.monotonic()
        last = self.last_slow_call.get(key)
        self.last_slow_call[key] = now
        if last is not None and now - last < self.slow_interval:
            self._violation(f"second {key} call within {self.slow_interval}s")
            return 429, {"error": "Too many requests"}
        return None

    def _needs_accounts(self) -> tuple[int, object] | None:
        if self.reset_accounts_next:
            self.reset_accounts_next = False
            self.accounts_primed = False
        if not self.accounts_primed:
            return 500, {"error": "Please query /accounts first"}
        return None

    def _auth_body(self) -> dict:
        body = copy.deepcopy(AUTH_OK)
        body.update(
            authenticated=self.authenticated and self.bridge, connected=self.connected, competing=self.competing
        )
        return body

    # --- session ---------------------------------------------------------------------------------------------------

    def auth_status(self, query, body):
        return 200, self._auth_body()

    def tickle(self, query, body):
        return 200, {
            "collission": False,
            "hmds": {"error": "no bridge"},
            "iserver": {"authStatus": self._auth_body()},
            "session": "ce109cbeb462a76dc3f6f4182c830cc1",
            "ssoExpires": 585695,
            "userId": 99996016,
        }

    def ssodh_init(self, query, body):
        self.init_calls.append(body)
        if body.get("compete"):
            self._violation("ssodh/init with compete=true kicks the user's other sessions")
        if not self.competing:
            self.bridge = True
            self.authenticated = True
        return 200, self._auth_body()

    def suppress(self, query, body):
        self.suppressed = list(body.get("messageIds") or [])
        return 200, {"status": "submitted"}

    def iserver_accounts(self, query, body):
        self.accounts_primed = True
        return 200, {
            "accounts": [ACCOUNT],
            "acctProps": {ACCOUNT: {"hasChildAccounts": False, "supportsCashQty": True, "supportsFractions": True}},
            "aliases": {"All": "All", ACCOUNT: ACCOUNT},
            "isPaper": True,
            "selectedAccount": ACCOUNT,
            "sessionId": "65ee8a41.0000001e",
        }

    # --- contracts and market data ---------------------------------------------------------------------------------

    def secdef_search(self, query, body):
        symbol = (query.get("symbol") or "").upper()
        if symbol != "AAPL":
            return 200, []
        return 200, [
            {
                "conid": "265598",
                "companyHeader": "APPLE INC - NASDAQ",
                "companyName": "APPLE INC",
                "symbol": "AAPL",
                "description": "NASDAQ",
                "restricted": None,
                "fop": None,
                "opt": "20241018;20241025;20241101",
                "war": "20241017;20241219",
                "sections": [{"secType": "STK"}, {"secType": "OPT", "months": "OCT24;NOV24", "exchange": "SMART"}],
            },
            {
                "conid": "38708077",
                "companyHeader": "APPLE INC - MEXI",
                "companyName": "APPLE INC",
                "symbol": "AAPL",
                "description": "MEXI",
                "restricted": None,
                "fop": None,
                "opt": None,
                "war": None,
                "sections": [{"secType": "STK"}],
            },
        ]

    def trsrv_stocks(self, query, body):
        out = {}
        for symbol in (query.get("symbols") or "").upper().split(","):
            if symbol == "AAPL":
                out["AAPL"] = [
                    {
                        "assetClass": "STK",
                        "chineseName": "&#x82F9;&#x679C;&#x516C;&#x53F8;",
                        "contracts": [
                            {"conid": 265598, "exchange": "NASDAQ", "isUS": True},
                            {"conid": 38708077, "exchange": "MEXI", "isUS": False},
                        ],
                        "name": "APPLE INC",
                    },
                    {
                        "assetClass": "STK",
                        "chineseName": None,
                        "contracts": [{"conid": 493546048, "exchange": "LSEETF", "isUS": False}],
                        "name": "LS 1X AAPL",
                    },
                ]
        return 200, out

    def contract_info(self, query, body, conid):
        if int(conid) != AAPL:
            return 200, {"error": f"conid {conid} not found"}
        return 200, {
            "con_id": AAPL,
            "symbol": "AAPL",
            "company_name": "APPLE INC",
            "instrument_type": "STK",
            "currency": "USD",
            "exchange": "NASDAQ",
            "valid_exchanges": "SMART,AMEX,NYSE,CBOE,ISLAND",
            "local_symbol": "AAPL",
            "trading_class": "NMS",
            "r_t_h": True,
            "multiplier": "",
            "industry": "Computers",
        }

    def snapshot(self, query, body):
        refused = self._needs_accounts()
        if refused:
            return refused
        rows = []
        for raw in (query.get("conids") or "").split(","):
            conid = int(raw)
            if conid not in self.snapshot_started:
                self.snapshot_started.add(conid)
                rows.append({"conid": conid, "conidEx": str(conid)})
                continue
            price = self.prices.get(conid, Decimal("0"))
            rows.append(
                {
                    "31": f"{price:.2f}",
                    "84": f"{price - Decimal('0.01'):.2f}",
                    "86": f"{price + Decimal('0.01'):.2f}",
                    "6509": "RpB",
                    "_updated": int(time.time() * 1000),
                    "conid": conid,
                    "conidEx": str(conid),
                    "server_id": "q1",
                }
            )
        return 200, rows

    def history_bars(self, query, body):
        conid = int(query["conid"])
        bars = sorted(self.history.get(conid, []), key=lambda b: b["t"])
        if "startTime" in query:
            end_ms = int(time.mktime(time.strptime(query["startTime"], "%Y%m%d-%H:%M:%S")) - time.timezone) * 1000
            bars = [b for b in bars if b["t"] < end_ms]
        match = re.fullmatch(r"(\d+)(min|h|d|w|m|y)", query["period"])
        if not match:
            return 400, {"error": f"bad period {query['period']}"}
        count = int(match.group(1))
        unit_ms = {"min": 60e3, "h": 3600e3, "d": 86400e3, "w": 7 * 86400e3, "m": 30 * 86400e3, "y": 365 * 86400e3}
        span = count * unit_ms[match.group(2)]
        if bars:
            last = bars[-1]["t"]
            bars = [b for b in bars if b["t"] > last - span]
        bars = bars[-1000:]
        if not bars:
            return 200, {"error": "No data."}
        return 200, {
            "serverId": "4155816",
            "symbol": "AAPL",
            "text": "APPLE INC",
            "priceFactor": 100,
            "startTime": "20250513-13:30:00",
            "high": "21394/266616.18/1440",
            "low": "20426/267569.89/8640",
            "timePeriod": query["period"],
            "barLength": 86400,
            "mdAvailability": "S",
            "mktDataDelay": 0,
            "outsideRth": False,
            "volumeFactor": 100,
            "priceDisplayRule": 1,
            "priceDisplayValue": "2",
            "negativeCapable": False,
            "messageVersion": 2,
            "points": len(bars) - 1,
            "direction": -1,
            "travelTime": 7,
            "data": bars,
        }

    # --- orders ----------------------------------------------------------------------------------------------------

    def place_orders(self, query, body, account):
        refused = self._needs_accounts()
        if refused:
            return refused
        if not isinstance(body, dict) or not isinstance(body.get("orders"), list):
            self._violation("order body is not {'orders': [...]}")
            return 400, {"error": "orders request body must be an object with an orders array"}
        orders = body["orders"]
        parent_coid = None
        for index, order in enumerate(orders):
            if not isinstance(order.get("conid"), int):
                self._violation(f"conid {order.get('conid')!r} is not a number")
                return 400, {"error": "orders request includes parameter with incorrect type"}
            if index == 0:
                if not order.get("cOID"):
                    self._violation("order without a cOID")
                    return 400, {"error": "missing cOID"}
                parent_coid = order["cOID"]
            else:
                if "cOID" in order:
                    self._violation("bracket child with a cOID")
                    return 400, {"error": "cOID is not allowed on child orders"}
                if order.get("parentId") != parent_coid:
                    self._violation("bracket child whose parentId is not the parent's cOID")
                    return 400, {"error": "parentId does not match"}
            if order.get("orderType") not in ("LMT", "MKT", "STP", "STOP_LIMIT"):
                return 500, {"error": f"bad orderType {order.get('orderType')}"}
        if any(o["order_ref"] == parent_coid for o in self.orders.values()):
            return 200, {"error": f"Order couldn't be submitted: Local order ID={parent_coid} is already registered."}
        first = orders[0]
        if first["side"] == "BUY" and first.get("orderType") == "LMT":
            value = Decimal(str(first["price"])) * Decimal(str(first["quantity"]))
            if value > self.cash:
                return 200, {"error": f"Order rejected: the order value {value} exceeds the available funds"}
        if self.prompt_next:
            self.prompt_next = False
            if self.prompt_holds_order:
                self._accept(orders)
            return 200, copy.deepcopy(P12)
        submission = {"orders": orders, "chain": list(self.questions.popleft()) if self.questions else []}
        return self._next_question_or_accept(submission)

    def _next_question_or_accept(self, submission):
        if submission["chain"]:
            message_id = submission["chain"].pop(0)
            reply_id = str(uuid.uuid4())
            self.pending_replies[reply_id] = submission
            first = submission["orders"][0]
            desc = f"{first['side']} {first['quantity']} AAPL NASDAQ.NMS @ {first.get('price', 'MKT')}"
            return 200, [
                {
                    "id": reply_id,
                    "message": [QUESTION_TEXT.get(message_id, "Unexpected condition {desc}").format(desc=desc)],
                    "isSuppressed": False,
                    "messageIds": [message_id],
                }
            ]
        accepted = self._accept(submission["orders"])
        if self.stall_next_order:  # the order landed; the answer saying so is lost
            self.stall_next_order = False
            raise Stall()
        return 200, accepted

    def _accept(self, orders):
        replies = []
        parent_id = None
        for index, order in enumerate(orders):
            order_id = str(self.next_order_id)
            self.next_order_id += 1
            status = "Submitted" if index == 0 else "PreSubmitted"
            self.orders[order_id] = {
                "acct": ACCOUNT,
                "account": ACCOUNT,
                "conid": order["conid"],
                "conidex": str(order["conid"]),
                "orderId": int(order_id),
                "cashCcy": "USD",
                "ticker": "AAPL" if order["conid"] == AAPL else "SPY",
                "description1": "AAPL",
                "secType": "STK",
                "listingExchange": "NASDAQ.NMS",
                "companyName": "APPLE INC",
                "side": order["side"],
                "orderType": {"LMT": "Limit", "MKT": "Market", "STP": "Stop"}.get(order["orderType"], "Stop Limit"),
                "origOrderType": {"LMT": "LIMIT", "MKT": "MARKET", "STP": "STOP"}.get(order["orderType"], "STOP_LIMIT"),
                "price": str(order.get("price", "")),
                "timeInForce": order.get("tif", "DAY"),
                "totalSize": float(order["quantity"]),
                "filledQuantity": 0.0,
                "remainingQuantity": float(order["quantity"]),
                "avgPrice": "",
                "status": status,
                "order_ccp_status": status,
                "order_ref": order.get("cOID", ""),
                "bgColor": "#FFFFFF",
                "fgColor": "#000000",
                "lastExecutionTime_r": int(time.time() * 1000),
            }
            if index == 0:
                parent_id = order_id
            else:
                self.orders[order_id]["parentId"] = int(parent_id)
            replies.append({"order_id": order_id, "order_status": status, "encrypt_message": "1"})
        return replies

    def reply(self, query, body, reply_id):
        submission = self.pending_replies.pop(reply_id, None)
        if submission is None:
            return 400, {"error": f"reply id not found: '{reply_id}'"}
        if not body.get("confirmed"):
            return 200, {"error": "Order not confirmed "}
        return self._next_question_or_accept(submission)

    def live_orders(self, query, body):
        refused = self._needs_accounts() or self._slow("orders")
        if refused:
            return refused
        if query.get("force") == "true":
            return 200, {"orders": [], "snapshot": True}
        return 200, {"orders": [copy.deepcopy(o) for o in self.orders.values()], "snapshot": True}

    def order_status(self, query, body, order_id):
        refused = self._needs_accounts()
        if refused:
            return refused
        order = self.orders.get(order_id)
        if order is None:
            return 503, {"error": "Service Unavailable"}
        return 200, {
            "account": ACCOUNT,
            "average_price": order["avgPrice"],
            "company_name": "APPLE INC",
            "conid": order["conid"],
            "conidex": str(order["conid"]),
            "contract_description_1": order["ticker"],
            "cum_fill": str(order["filledQuantity"]),
            "currency": "USD",
            "listing_exchange": "NASDAQ.NMS",
            "order_id": int(order_id),
            "order_status": order["status"],
            "order_status_description": f"Order {order['status']}",
            "order_type": order["origOrderType"],
            "side": "B" if order["side"] == "BUY" else "S",
            "size": str(order["remainingQuantity"]),
            "symbol": order["ticker"],
            "tif": order["timeInForce"],
            "total_size": str(order["totalSize"]),
            "sec_type": "STK",
        }

    def cancel(self, query, body, account, order_id):
        refused = self._needs_accounts()
        if refused:
            return refused
        order = self.orders.get(order_id)
        if order is None or order["status"] in ("Filled", "Cancelled"):
            return 200, {"error": f"OrderID {order_id} doesn't exist"}
        order["status"] = order["order_ccp_status"] = "Cancelled"
        for other in self.orders.values():
            same_group = order.get("parentId") and other.get("parentId") == order.get("parentId")
            if (other.get("parentId") == int(order_id) or same_group) and other["status"] != "Filled":
                other["status"] = other["order_ccp_status"] = "Cancelled"
        return 200, {
            "msg": "Request was submitted",
            "order_id": int(order_id),
            "conid": order["conid"],
            "account": account,
        }

    def modify(self, query, body, account, order_id):
        refused = self._needs_accounts()
        if refused:
            return refused
        if not isinstance(body, dict):
            self._violation("modify body is not a single object")
            return 400, {"error": "modify takes one order object"}
        order = self.orders[order_id]
        order["price"] = str(body.get("price", order["price"]))
        order["totalSize"] = float(body.get("quantity", order["totalSize"]))
        return 200, [{"order_id": order_id, "order_status": order["status"], "encrypt_message": "1"}]

    def trades(self, query, body):
        refused = self._needs_accounts() or self._slow("trades")
        if refused:
            return refused
        return 200, copy.deepcopy(self.executions)

    # --- portfolio -------------------------------------------------------------------------------------------------

    def portfolio_accounts(self, query, body):
        refused = self._slow("portfolio-accounts")
        if refused:
            return refused
        self.portfolio_primed = True
        return 200, [
            {
                "id": ACCOUNT,
                "accountId": ACCOUNT,
                "accountVan": ACCOUNT,
                "accountTitle": "Paper Trading",
                "displayName": ACCOUNT,
                "currency": "USD",
                "type": "DEMO",
                "tradingType": "STKNOPT",
                "brokerageAccess": True,
            }
        ]

    def _needs_portfolio(self):
        if not self.portfolio_primed:
            self._violation("/portfolio call before /portfolio/accounts")
            return 500, {"error": "call /portfolio/accounts first"}
        return None

    def portfolio_positions(self, query, body, account, page):
        refused = self._needs_portfolio()
        if refused:
            return refused
        rows = []
        for conid, position in self.positions.items():
            if position["qty"] == 0:
                continue
            price = self.prices.get(conid, position["avg"])
            rows.append(
                {
                    "acctId": ACCOUNT,
                    "conid": conid,
                    "contractDesc": "AAPL" if conid == AAPL else "SPY",
                    "ticker": "AAPL" if conid == AAPL else "SPY",
                    "assetClass": "STK",
                    "position": float(position["qty"]),
                    "mktPrice": float(price),
                    "mktValue": float(price * position["qty"]),
                    "avgCost": float(position["avg"]),
                    "avgPrice": float(position["avg"]),
                    "unrealizedPnl": float((price - position["avg"]) * position["qty"]),
                    "realizedPnl": 0.0,
                    "currency": "USD",
                    "listingExchange": "NASDAQ",
                    "pageSize": 100,
                }
            )
        start = int(page) * 100
        return 200, rows[start : start + 100]

    def _metric(self, amount, currency="USD", value=None):
        return {
            "amount": float(amount),
            "currency": currency,
            "isNull": False,
            "severity": 0,
            "timestamp": 1712156105000,
            "value": value,
        }

    def portfolio_summary(self, query, body, account):
        refused = self._needs_portfolio()
        if refused:
            return refused
        held = sum((p["qty"] * self.prices.get(c, p["avg"]) for c, p in self.positions.items()), Decimal(0))
        return 200, {
            "accountcode": self._metric(0, None, ACCOUNT),
            "netliquidation": self._metric(self.cash + held),
            "totalcashvalue": self._metric(self.cash),
            "buyingpower": self._metric(self.cash),
            "availablefunds": self._metric(self.cash),
            "grosspositionvalue": self._metric(held),
            "cushion": self._metric(0, None, "0.994598"),
        }

    def portfolio_ledger(self, query, body, account):
        refused = self._needs_portfolio()
        if refused:
            return refused
        return 200, {
            "USD": {"cashbalance": float(self.cash), "currency": "USD", "netliquidationvalue": float(self.cash)}
        }


# --- transports ------------------------------------------------------------------------------------------------


def _decode(raw: bytes | str | None):
    if not raw:
        return None
    return json.loads(raw)


def install_responses(rsps, gateway: FakeGateway, base_url: str) -> None:
    """Route every request under `base_url` to the gateway through `responses`."""

    def callback(request):
        parts = urlparse(request.url)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        try:
            status, payload = gateway.handle(request.method, parts.path, query, _decode(request.body))
        except Stall as exc:
            raise requests.ReadTimeout("the gateway did not answer in time (stub)") from exc
        return status, {"Content-Type": "application/json"}, json.dumps(payload)

    pattern = re.compile(re.escape(base_url.rstrip("/")) + r"/.*")
    for method in ("GET", "POST", "DELETE"):
        rsps.add_callback(method, pattern, callback=callback)


class LoopbackGateway:
    """The fake gateway over real HTTP on 127.0.0.1, in a thread. A stalled request holds its connection open
    until `gateway.release` is set (or 60 s pass)."""

    def __init__(self, gateway: FakeGateway) -> None:
        self.gateway = gateway
        fake = gateway

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _serve(self) -> None:
                parts = urlparse(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                length = int(self.headers.get("Content-Length") or 0)
                body = _decode(self.rfile.read(length)) if length else None
                try:
                    status, payload = fake.handle(self.command, parts.path, query, body)
                except Stall:
                    fake.stalled.set()
                    fake.release.wait(60)
                    return
                raw = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = do_DELETE = _serve

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}{API}"

    def __enter__(self) -> LoopbackGateway:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.gateway.release.set()
        self.server.shutdown()
        self.server.server_close()
