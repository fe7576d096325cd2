"""How big each scenario runs: the full sizes of `make chaos`, the reduced ones of `make test`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sizes:
    name: str
    storm_orders: int  # 1. consumer kill storm
    storm_kills: int
    crash_orders: int  # 2. crash between effect and ack
    crash_rate: float  # chance per commit that the armed payment worker exits after its effect
    crashes: int  # the worker is re-armed until it has crashed this often
    publish_orders: int  # 3. crash inside the publish step
    publish_rate: float
    publish_crashes: int
    publish_kills: int  # plus SIGKILLs of the order service at random points
    poison_good: int  # 4. poison events
    poison_bad: int
    redis_orders: int  # 5. Redis killed and restarted
    redis_kills: int
    redis_down_s: float
    pause_orders: int  # 6. paused consumer
    pause_s: float  # SIGSTOP this long: past the claim idle time, short of the stopped read's timeout
    retry_orders: int  # 7. retried PlaceOrder through a proxy that drops responses
    drop_rate: float
    sync_orders: int  # 8. payment down in sync mode
    sync_down_s: float
    backlog_orders: int  # 9. slow consumer and backlog
    bad_examples: int  # 10. hypothesis-generated PlaceOrderRequests
    bad_raw: int  # raw random payloads per method
    envelope_good: int  # 11. poison inside a valid envelope
    envelope_bad: int
    refuse_orders: int  # 12. the store refuses writes
    refuse_s: float  # maxmemory 1 this long: past claim idle x max deliveries of the chaos timings (3 s)
    grouplost_orders: int  # 13. a group lost while others trim
    redrive_orders: int  # 14. lost events re-driven
    redrive_deleted: int  # orders whose OrderPlaced is deleted while payment is stopped


FULL = Sizes("full", storm_orders=5000, storm_kills=6, crash_orders=2000, crash_rate=0.01, crashes=5,
             publish_orders=2000, publish_rate=0.005, publish_crashes=3, publish_kills=2,
             poison_good=2000, poison_bad=120, redis_orders=2000, redis_kills=3, redis_down_s=1.5,
             pause_orders=1500, pause_s=1.6, retry_orders=1000, drop_rate=0.15, sync_orders=600, sync_down_s=3.0,
             backlog_orders=3000, bad_examples=300, bad_raw=40, envelope_good=2000, envelope_bad=100,
             refuse_orders=2000, refuse_s=6.0, grouplost_orders=2000, redrive_orders=1000, redrive_deleted=100)
# The same scenarios, small: every fault still fires, in about a tenth of the orders.
QUICK = Sizes("quick", storm_orders=500, storm_kills=3, crash_orders=300, crash_rate=0.03, crashes=2,
              publish_orders=300, publish_rate=0.02, publish_crashes=1, publish_kills=1,
              poison_good=300, poison_bad=28, redis_orders=300, redis_kills=2, redis_down_s=1.0,
              pause_orders=300, pause_s=1.6, retry_orders=200, drop_rate=0.2, sync_orders=150, sync_down_s=2.0,
              backlog_orders=400, bad_examples=80, bad_raw=12, envelope_good=300, envelope_bad=20,
              refuse_orders=300, refuse_s=4.0, grouplost_orders=300, redrive_orders=200, redrive_deleted=20)
# Control runs only have to show the checker catching the loss their switch causes: smaller still,
# with crash rates high enough that the crash points surely fire (0.95^200: 1 run in 30,000 without).
CONTROL = Sizes("control", storm_orders=300, storm_kills=2, crash_orders=200, crash_rate=0.05, crashes=2,
                publish_orders=200, publish_rate=0.05, publish_crashes=1, publish_kills=0,
                poison_good=150, poison_bad=14, redis_orders=200, redis_kills=1, redis_down_s=1.0,
                pause_orders=200, pause_s=1.6, retry_orders=100, drop_rate=0.2, sync_orders=100, sync_down_s=1.5,
                backlog_orders=200, bad_examples=40, bad_raw=4, envelope_good=150, envelope_bad=10,
                refuse_orders=150, refuse_s=4.0, grouplost_orders=300, redrive_orders=150, redrive_deleted=10)
