"""The scenarios of issues 5 (1-10), 8 (11-14) and 23 (18), each with the control run that shows its
checker can fail."""

from __future__ import annotations

from shopctl.chaos.scenarios.backlog import backlog
from shopctl.chaos.scenarios.bad_requests import bad_requests
from shopctl.chaos.scenarios.base import Env, Scenario
from shopctl.chaos.scenarios.clock_step import clock_steps
from shopctl.chaos.scenarios.envelope import poison_in_envelope
from shopctl.chaos.scenarios.grouplost import group_lost_while_trimming
from shopctl.chaos.scenarios.partitioned import order_partitioned
from shopctl.chaos.scenarios.poison import poison_events
from shopctl.chaos.scenarios.publish import publish_crash
from shopctl.chaos.scenarios.redis_down import redis_restarts
from shopctl.chaos.scenarios.redrive import lost_events_redriven
from shopctl.chaos.scenarios.refused import store_refuses_writes
from shopctl.chaos.scenarios.retry import retried_place_order
from shopctl.chaos.scenarios.sync_down import sync_dependency_down
from shopctl.chaos.scenarios.workers import crash_after_effect, kill_storm, paused_consumer

SCENARIOS = (
    Scenario(1, "kill-storm", "consumer kill storm", "no reclaim (no_reclaim)", "stuck", kill_storm),
    Scenario(2, "crash-after-effect", "crash between effect and ack", "no once key (skip_once)", "duplicated",
             crash_after_effect),
    Scenario(3, "publish-crash", "crash inside the publish step", "publish apart (nonatomic_publish)", "stuck",
             publish_crash),
    Scenario(4, "poison", "poison events", "drop instead of dead-letter (drop_dead_letters)", "dead_letters",
             poison_events),
    Scenario(5, "redis-restart", "Redis killed and restarted", "Redis without AOF", "lost", redis_restarts),
    Scenario(6, "paused-consumer", "paused consumer", "no once key (skip_once)", "duplicated", paused_consumer),
    Scenario(7, "retried-place-order", "retried PlaceOrder", "key ignored (skip_once)", "duplicated",
             retried_place_order),
    Scenario(8, "sync-dependency-down", "payment down in sync mode", "no resume, no retry (no_resume)", "stuck",
             sync_dependency_down),
    Scenario(9, "backlog", "slow consumer and backlog", "trim pending entries (trim_pending)", "lost", backlog),
    Scenario(10, "bad-requests", "bad requests", "no validation (skip_validation)", "invalid_stored", bad_requests),
    Scenario(11, "poison-in-envelope", "poison in a valid envelope", "unguarded decode (unguarded_entries)", "pending",
             poison_in_envelope),
    Scenario(12, "store-refuses-writes", "Redis refuses writes", "outage as failure (outage_as_failure)",
             "deliveries_spent", store_refuses_writes),
    Scenario(13, "group-lost-while-trimming", "group lost while others trim",
             "trim ignores topology (trim_ignores_topology)", "stuck", group_lost_while_trimming),
    Scenario(14, "lost-events-redriven", "lost events re-driven", "no re-drive (no_redrive)", "stuck",
             lost_events_redriven),
    Scenario(18, "order-partitioned", "order cut from Redis",
             "thin answer reserve (thin_answer_reserve)", "codes", order_partitioned),
)

# Run by `make chaos` after the cluster scenarios, and by `--only 17`; not by the reduced `--quick`
# run of `make test` (a minute of stops and due times each), whose check is tests/events/test_clock_steps.py.
FULL_ONLY_SCENARIOS = (
    Scenario(17, "clock-step", "wall clocks stepped 1 h", "wall-clock due times (process_clock)",
             "stuck", clock_steps),
)

__all__ = ["FULL_ONLY_SCENARIOS", "SCENARIOS", "Env", "Scenario"]
