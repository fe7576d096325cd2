"""Where a service's CPU goes, from py-spy's collapsed stacks (`--format raw`): each sample is
charged to one bucket, found by walking its frames from the leaf towards the root and taking the
first frame that a rule claims. A leaf in the standard library or in CPython's own C code (no
rule claims it) is charged to whoever called it: `uuid4` called by our envelope code is ours,
`memcpy` called by gRPC's core is gRPC.

A collapsed line is `root;...;leaf COUNT`, each frame `function (file:line)` for Python and
`symbol (library)` for native code.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

OTHER = "other"
# (bucket, fragments of a frame that put it there), most specific first: a frame is claimed by
# the first rule with a fragment in it.
RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("logging", ("structlog/", "orjson", "shoplib/log.py", "logging/")),
    ("metrics", ("prometheus_client/", "shoplib/observability/metrics.py")),
    ("protobuf", ("google/protobuf/", "_pb2.py", "_pb2_grpc.py", "upb", "_message.", "google/_upb")),
    ("commit (redis client)", ("redis/", "hiredis", "shoplib/commit/", "shoplib/store/", "shoplib/streams/reads.py")),
    ("interceptors", ("shoplib/calls/",)),
    ("gRPC", ("grpc/", "cygrpc", "grpc_", "grpc::", "absl", "libgrpc")),
    ("our handlers", ("order_svc/", "payment_svc/", "notification_svc/", "gateway/", "shoplib/")),
    ("event loop", ("uvloop", "asyncio/", "selectors.py", "epoll")),
)
# Frames charged to their caller although a rule would claim them: asyncio's streams are the
# Redis client's socket writes and reads (redis-py's asyncio connection), not event-loop work.
TRANSPARENT = ("asyncio/streams.py",)
BUCKETS = (*(name for name, _ in RULES), OTHER)
# Leaf frames of a thread blocked in a system call: the event loop's epoll, a lock, a sleep.
IDLE_CALLS = ("epoll_wait", "epoll_pwait", "poll (libc", "select (libc", "futex", "pthread_cond_", "nanosleep",
              "sem_wait", "sem_timedwait", "sem_clockwait")
LINE_NUMBER = re.compile(r":\d+\)$")
OURS = ("shoplib/", "order_svc/", "payment_svc/", "notification_svc/", "gateway/")  # our packages


def bucket_of(frame: str) -> str | None:
    """The bucket that claims this one frame, or None (charged to its caller)."""
    if any(fragment in frame for fragment in TRANSPARENT):
        return None
    for name, fragments in RULES:
        if any(fragment in frame for fragment in fragments):
            return name
    return None


def charge(frames: list[str]) -> str:
    """The bucket of one sample: the first claimed frame from the leaf up, else OTHER."""
    for frame in reversed(frames):
        if (found := bucket_of(frame)) is not None:
            return found
    return OTHER


def idle(frames: list[str]) -> bool:
    """A sample of a thread asleep in the kernel (waiting for I/O, a lock or a timer): no CPU."""
    return any(call in frames[-1] for call in IDLE_CALLS)


def parse(lines: Iterable[str], busy_only: bool = True) -> Iterable[tuple[list[str], int]]:
    """(frames root first, sample count) of each collapsed line; blank lines skipped, and
    (busy_only) samples of sleeping threads, which py-spy's --native mode keeps."""
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        frames = stack.split(";")
        if stack and count.isdigit() and not (busy_only and idle(frames)):
            yield frames, int(count)


def shares(lines: Iterable[str]) -> tuple[dict[str, float], int]:
    """({bucket: share of samples, 0..1}, samples): every bucket present, shares summing to 1."""
    counts: Counter[str] = Counter()
    for frames, count in parse(lines):
        counts[charge(frames)] += count
    total = sum(counts.values())
    return {name: counts[name] / total if total else 0.0 for name in BUCKETS}, total


def function_of(frame: str) -> str:
    """`function (file)`: a Python frame without its line number, so a function counts once."""
    return LINE_NUMBER.sub(")", frame)


def charged_frame(frames: list[str]) -> str:
    """The frame a sample is charged to: the first claimed from the leaf up, else the leaf."""
    return next((frame for frame in reversed(frames) if bucket_of(frame) is not None), frames[-1])


def hottest(lines: Iterable[str], top: int, ours_only: bool = False) -> list[tuple[str, float]]:
    """The `top` frames with their share of samples: by the frame each sample is charged to, or
    (ours_only) inclusively over the frames of our own packages, each counted once per sample.
    The rows of the text summary that say which function to look at."""
    counts: Counter[str] = Counter()
    total = 0
    for frames, count in parse(lines):
        total += count
        picked = ({function_of(f) for f in frames if any(p in f for p in OURS)} if ours_only
                  else {function_of(charged_frame(frames))})
        for frame in picked:
            counts[frame] += count
    return [(frame, n / total) for frame, n in counts.most_common(top)] if total else []
