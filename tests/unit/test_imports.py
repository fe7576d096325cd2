"""The README's promise: importing a service's handlers loads neither a Redis client nor gRPC, so
the decisions can be read and tested without either. Each module is imported in a fresh
interpreter (this process has both loaded already)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HANDLERS = ["gateway.handlers", "order_svc.handlers", "payment_svc.handlers", "notification_svc.handlers"]
FORBIDDEN = ("redis", "grpc")
IMPORT_TIMEOUT_S = 60  # measured ~0.3 s on an idle host; a busy 2-core host may take many times that

PROBE = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


@pytest.mark.parametrize("module", HANDLERS)
def test_importing_a_handlers_module_loads_neither_redis_nor_grpc(module: str) -> None:
    done = subprocess.run([sys.executable, "-c", PROBE, module], capture_output=True, text=True,
                          timeout=IMPORT_TIMEOUT_S, check=True)
    loaded = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert module.split(".")[0] in loaded  # the probe did import it
    assert not loaded & set(FORBIDDEN), f"{module} loads {sorted(loaded & set(FORBIDDEN))}"
