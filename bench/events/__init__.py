"""Speed of the events pipeline: the real stack in events mode beside bare hops, end to end, and
the consumer runtime alone.

    .venv/bin/python -m bench.events [--quick]

Six measurements, one run, each with its own private redis-server:

1. Bare hops: a grpc.aio gateway process -> an order process whose handler does one XADD of a
   small payload (redis.asyncio) and answers. What the transport alone costs.
1b. Durable hops: the same two processes, the order one making the real order hop's commit, with
   lean consumers making the real consumers' commits behind it (bench.events.bare): the same five
   fsynced commits and one GET per order as the real stack, done the cheapest way.
2. The real stack (shopctl.stack.Stack, FLOW_MODE_EVENTS through the gateway), driven by the same
   client: PlaceOrder latency at 1 and 64 in flight, accepted orders/s at 64 in flight.
3. End to end on that stack: time from PlaceOrder to the receipt notification (read from the
   notification-events stream, compared with the client's start time on the same clock) under an
   open-loop load at a fixed rate (and, for comparison, at a light one); receipts per second
   under the saturating 64-in-flight load.
4. The consumer runtime alone: order-events filled with N OrderPlaced envelopes in one MULTI/EXEC
   while only the payment and notification services run; drain speed and CPU per event of each
   (the notification service is SIGSTOPped while the payment service drains, then resumed on a
   backlog of N OrderPlaced + N payment outcomes).
4b. The same drains by the durable lean consumers (bench.events.lean): the same commits per
   entry, reads overlapping them, nothing else.

Prints bare, durable and real side by side with both ratios, and a table against the aims (issue
24's against the durable twins, the older absolute ones); asserts nothing. Also printed: CPU per order
of every process, and how much CPU other processes of this (shared) machine took meanwhile. A
consumer that stops making progress ends the wait after STALL_S and is reported, not waited for.
Services take STREAM_* and LOG_* settings from this environment (e.g. STREAM_MAINTENANCE_S=600
keeps stream maintenance out of the measured minute).

Where: __main__.py runs the phases; sizes.py says how big; bare.py is measurements 1 and 1b (with
bench.common, and lean.py); stack.py is 2 and 3, helped by open_loop.py, receipts.py and groups.py (waiting
for the consumer groups); consumers.py is 4 and 4b; report.py prints, with notes.py (what went wrong).
"""
