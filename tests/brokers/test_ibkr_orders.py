"""The order conversation with IBKR through the order service: questions, prompts, duplicates, lost replies and
failures, against the strict fake gateway."""

from decimal import Decimal

import pytest

from brokers.models import DEFAULT_QUESTION_IDS
from orders.models import Order
from orders.services import order_reconcile
from orders.statuses import OrderStatus
from portfolio.services import manual_order_place
from tests.brokers.conftest import MARKET_OPEN_AT
from tests.brokers.gateway import AAPL
from tests.factories import PositionFactory


@pytest.fixture
def place(ibkr, ibkr_connection, owner, aapl, clock):
    def _place(**overrides):
        fields = {
            "owner": owner,
            "broker_connection": ibkr_connection,
            "symbol": aapl,
            "side": "BUY",
            "quantity": Decimal("10"),
            "order_type": "LMT",
            "limit_price": Decimal("99.50"),
            "clock": clock,
            "broker": ibkr,
        }
        fields.update(overrides)
        return manual_order_place(**fields)  # a trader's own order: a SELL closes their holding

    return _place


def replies(gateway):
    return gateway.count("POST", r"/iserver/reply/.+")


def test_order_body_is_an_orders_object_with_a_numeric_conid_and_our_client_order_id(place, gateway):
    order = place()

    assert order.status == OrderStatus.SUBMITTED
    sent = gateway.by_ref(order.client_order_id)
    assert sent["conid"] == AAPL
    assert order.broker_order_id == str(sent["orderId"])
    assert order.payload["entry"]["client_order_id"] == order.client_order_id


def test_a_chain_of_allowed_questions_is_answered_yes_until_accepted(place, gateway):
    gateway.questions.append(["o163", "o383"])

    order = place()

    assert order.status == OrderStatus.SUBMITTED
    assert replies(gateway) == 2
    assert gateway.order_posts() == 1
    assert "o163" in order.status_changes.last().reason and "o383" in order.status_changes.last().reason


def test_a_question_not_on_the_allowed_list_is_declined_and_the_order_rejected_with_its_text(place, gateway):
    gateway.questions.append(["o354"])

    order = place()

    assert order.status == OrderStatus.REJECTED
    assert "o354" in order.status_reason
    assert "without market data" in order.status_reason
    assert replies(gateway) == 1  # answered, with confirmed: false
    assert gateway.orders == {}


def test_a_p12_prompt_is_not_answered_and_the_order_is_recorded_rejected_with_its_text(place, gateway):
    gateway.prompt_next = True

    order = place()

    assert order.status == OrderStatus.REJECTED
    assert "Price Management Algo" in order.status_reason
    assert replies(gateway) == 0


def test_an_order_the_broker_kept_after_a_prompt_is_found_by_client_order_id_and_cancelled(place, gateway):
    gateway.prompt_next = True
    gateway.prompt_holds_order = True

    order = place()

    assert order.status == OrderStatus.REJECTED
    assert gateway.by_ref(order.client_order_id)["status"] == "Cancelled"
    assert "cancelled" in order.status_reason


def test_already_registered_client_order_id_means_the_first_post_landed_and_is_reconciled(place, gateway):
    landed = gateway._accept([{"conid": AAPL, "side": "BUY", "orderType": "LMT", "price": 99.5, "quantity": 10,
                               "cOID": "manual-0001"}])  # fmt: skip

    order = place(client_order_id="manual-0001")

    assert order.status == OrderStatus.SUBMITTED
    assert order.broker_order_id == landed[0]["order_id"]
    assert gateway.order_posts() == 1
    assert list(order.status_changes.values_list("to_status", flat=True)) == ["SUBMITTING", "UNKNOWN", "SUBMITTED"]


def test_an_already_registered_id_on_a_different_order_is_not_taken_for_ours(place, gateway):
    gateway._accept([{"conid": AAPL, "side": "SELL", "orderType": "LMT", "price": 101, "quantity": 3,
                      "cOID": "manual-0003"}])  # fmt: skip

    order = place(client_order_id="manual-0003")

    assert order.status == OrderStatus.REJECTED
    assert "different order (side SELL)" in order.status_reason
    assert order.broker_order_id == ""


def test_a_timeout_on_the_order_post_is_unknown_then_found_by_order_ref_with_exactly_one_post(place, gateway, ibkr):
    gateway.stall_next_order = True

    order = place()
    assert order.status == OrderStatus.UNKNOWN
    assert "reply lost" in order.status_reason

    order = order_reconcile(order=order, broker=ibkr)

    assert order.status == OrderStatus.SUBMITTED
    assert order.broker_order_id == str(gateway.by_ref(order.client_order_id)["orderId"])
    assert gateway.order_posts() == 1


def test_calling_again_after_a_timeout_reconciles_instead_of_posting_again(place, gateway):
    gateway.stall_next_order = True
    first = place(client_order_id="manual-0002")

    again = place(client_order_id="manual-0002")

    assert again.pk == first.pk
    assert again.status == OrderStatus.SUBMITTED
    assert gateway.order_posts() == 1


def test_a_timeout_on_a_question_reply_is_unknown_and_never_resent(place, gateway, ibkr):
    gateway.questions.append(["o163"])
    gateway.stall_next_order = True  # the reply that would accept the order stalls

    order = place()

    assert order.status == OrderStatus.UNKNOWN
    assert replies(gateway) == 1
    assert order_reconcile(order=order, broker=ibkr).status == OrderStatus.SUBMITTED


def test_an_order_never_received_is_rejected_on_reconcile(place, gateway, ibkr):
    gateway.fail_next.append((r"/iserver/account/.+/orders", 503, {"error": "Service Unavailable"}))

    order = place()
    assert order.status == OrderStatus.UNKNOWN

    order = order_reconcile(order=order, broker=ibkr)

    assert order.status == OrderStatus.REJECTED
    assert "never landed" in order.status_reason


def test_not_authenticated_mid_run_rejects_the_order_without_posting(place, gateway):
    assert place(client_order_id="before-logout").status == OrderStatus.SUBMITTED
    gateway.authenticated = False

    order = place(client_order_id="after-logout")

    assert order.status == OrderStatus.REJECTED
    assert "log in" in order.status_reason
    assert gateway.order_posts() == 1


def test_no_bridge_rejects_the_order_as_not_sent(place, gateway):
    gateway.bridge = False

    order = place()

    assert order.status == OrderStatus.REJECTED
    assert "no brokerage session" in order.status_reason
    assert gateway.order_posts() == 0


def test_429_on_the_order_post_rejects_it_as_not_sent(place, gateway):
    gateway.fail_next.append((r"/iserver/account/.+/orders", 429, {"error": "Too many requests"}))

    order = place()

    assert order.status == OrderStatus.REJECTED
    assert "rate limit" in order.status_reason


def test_please_query_accounts_first_reprimes_and_sends_the_order_once(place, gateway):
    gateway.reset_accounts_next = True  # the nightly reset: the gateway forgot /iserver/accounts

    order = place()

    assert order.status == OrderStatus.SUBMITTED
    assert gateway.count("GET", r"/iserver/accounts") >= 2
    assert len([o for o in gateway.orders.values() if o["order_ref"] == order.client_order_id]) == 1


# --- each allowed question is allowed because the guard checks the same thing -------------------------------------

GUARD_CASES = {
    # id: (an order the guard refuses, the refusal, an order inside the guard that IBKR still asks about)
    "o163": ({"limit_price": Decimal("110.00")}, "ORDER_PRICE_BAND", {"limit_price": Decimal("99.00")}),
    "o383": ({"quantity": Decimal("5001")}, "ORDER_MAX_QUANTITY", {"quantity": Decimal("50")}),
    "o451": ({"quantity": Decimal("1200")}, "ORDER_MAX_NOTIONAL", {"quantity": Decimal("90")}),
    "o10331": (
        {"side": "SELL", "order_type": "STP", "limit_price": None, "stop_price": Decimal("101.00")},
        "trigger at once",
        {"side": "SELL", "order_type": "STP", "limit_price": None, "stop_price": Decimal("98.00")},
    ),
}


def test_the_default_allowed_questions_are_exactly_the_guarded_ones():
    assert sorted(DEFAULT_QUESTION_IDS) == sorted(GUARD_CASES)


@pytest.mark.parametrize("question_id", sorted(GUARD_CASES), ids=lambda q: f"{q}-refused-by-guard")
def test_guard_refuses_what_the_question_warns_about_before_anything_is_sent(
    place, gateway, question_id, settings, owner, aapl
):
    settings.ORDER_MAX_NOTIONAL = 100_000
    refused, reason, _ = GUARD_CASES[question_id]
    PositionFactory(strategy=None, owner=owner, symbol=aapl, quantity=Decimal("10"))  # a SELL closes a holding

    order = place(**refused)

    assert order.status == OrderStatus.REJECTED
    assert reason in order.status_reason
    assert gateway.order_posts() == 0


@pytest.mark.parametrize("question_id", sorted(GUARD_CASES), ids=lambda q: f"{q}-answered-yes-inside-guard")
def test_question_about_an_order_inside_the_guard_is_answered_yes(place, gateway, question_id, owner, aapl):
    _, _, allowed = GUARD_CASES[question_id]
    PositionFactory(strategy=None, owner=owner, symbol=aapl, quantity=Decimal("10"))  # a SELL closes a holding
    gateway.positions[aapl.conid] = {"qty": Decimal("10"), "avg": Decimal("99")}  # which the account holds
    gateway.questions.append([question_id])

    order = place(**allowed)

    assert order.status == OrderStatus.SUBMITTED
    assert replies(gateway) == 1


def test_guard_refuses_when_the_market_is_closed_for_an_ioc_order(place, gateway, clock):
    clock.at = MARKET_OPEN_AT.replace(hour=23)  # 18:00 in New York

    order = place(tif="IOC")

    assert order.status == OrderStatus.REJECTED
    assert "market is closed" in order.status_reason
    assert gateway.order_posts() == 0


def test_a_day_order_after_the_close_is_allowed_for_the_next_session(place, clock):
    clock.at = MARKET_OPEN_AT.replace(hour=23)

    assert place(tif="DAY").status == OrderStatus.SUBMITTED


def test_bad_input_raises_and_records_nothing(place):
    from orders.services import OrderInputError

    with pytest.raises(OrderInputError, match="limit price"):
        place(limit_price=None)
    assert Order.objects.count() == 0
