"""7. Retried PlaceOrder: a proxy drops answers after the server acted; callers retry with the same key."""

from __future__ import annotations

import grpc
from shop.v1 import gateway_service_pb2_grpc as gw_grpc

from shopctl.chaos.harness import Outcome
from shopctl.chaos.proxy import Proxy
from shopctl.chaos.recorder import Workload
from shopctl.chaos.scenarios.base import Env, Scenario


async def retried_place_order(sc: Scenario, env: Env, control: bool) -> Outcome:
    """Control: the order service ignores the idempotency key (skip_once), as if it had none."""
    faults = {"FAULTS": "skip_once"} if control else {}
    async with env.run(per_service={"order": faults}) as run, \
            Proxy(run.stack.address("gateway"), run.rng, env.sizes.drop_rate) as proxy:
        async with grpc.aio.insecure_channel(proxy.address) as channel:
            load = run.recorder(Workload(env.sizes.retry_orders), gw_grpc.GatewayServiceStub(channel))
            await load.run()
        judgement, _ = await run.judge()
        answered = {r.key: r.order_id for r in load.records if r.code == "OK"}
        dropped = proxy.servicer.dropped
        same = [k for k, hidden in dropped.items() if k in answered and set(hidden) == {answered[k]}]
        differ = [k for k, hidden in dropped.items() if k in answered and set(hidden) != {answered[k]}]
        if differ:
            run.fail("retry", f"{len(differ)} retries got another order than the one whose answer was lost, "
                              f"e.g. {differ[:3]}")
        run.fault("drop", sum(len(v) for v in dropped.values()))
        if dropped:
            run.prove(f"{run.faults['drop']} answers dropped after the gateway acted; {len(same)} keys retried "
                      f"into the same order")
        run.notes.update(dropped_keys=len(dropped), retried_same_order=len(same))
        return sc.outcome(run, judgement, control)
