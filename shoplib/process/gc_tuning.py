"""The garbage collector's settings for a long-running service process (applied by
shoplib.process.service once the service has started).

Every call and every stream entry allocates a few hundred container objects (coroutines, futures,
protobuf wrappers, dicts), almost all freed by reference counting within the call. At CPython's
default threshold (700 net allocations) the youngest generation is collected every few calls, and
whatever is in flight at that moment (64 calls' state) is promoted, to be scanned again by the
older generations' collections, which also walk everything loaded at start-up.
"""

from __future__ import annotations

import gc

# Net container allocations between two collections of the youngest generation (CPython: 700).
# Bounds what cyclic garbage can wait: at most this many objects, a few MB at ~100-500 bytes each.
YOUNG_THRESHOLD = 10_000


def freeze_startup() -> None:
    """Collect once, then freeze what start-up made (modules, descriptors, the wired service: it
    lives as long as the process), so no later collection scans it; and collect the youngest
    generation every YOUNG_THRESHOLD allocations (the older generations' ratios stay CPython's)."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
