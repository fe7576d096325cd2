"""Random identifiers from the OS's secure source (os.urandom, as uuid4 and secrets use), drawn
ID_BATCH at a time: uuid4 makes one system call and one UUID object per id (about 5 µs; a batch
costs about 1 µs an id). The ids are as unpredictable as uuid4's.

Thread-safe without a lock: ids are handed out by deque.popleft, which is atomic; two threads
finding the deque empty each add a batch of their own. A forked child drops what it inherited,
so it never hands out an id its parent hands out too.
"""

from __future__ import annotations

import os
from collections import deque

# Ids made per os.urandom call: one 4 KiB read for 256 UUIDs.
ID_BATCH = 256
UUID_BYTES = 16
# The RFC 4122 variant (binary 10xx) as the hex digit of a random one's two low bits.
_VARIANT = dict(zip("0123456789abcdef", "89ab" * 4, strict=True))
# A short hex id (pay_<24 hex>, ntf_<24 hex>): 96 random bits.
HEX_ID_CHARS = 24

_uuids: deque[str] = deque()
_hex_ids: deque[str] = deque()


def uuid4_text() -> str:
    """A random UUID (version 4) in its text form, like str(uuid.uuid4())."""
    while True:
        try:
            return _uuids.popleft()
        except IndexError:
            _uuids.extend(_uuid_batch())


def hex_id() -> str:
    """HEX_ID_CHARS random lowercase hex characters, like uuid.uuid4().hex[:24] (but all random)."""
    while True:
        try:
            return _hex_ids.popleft()
        except IndexError:
            raw = os.urandom(HEX_ID_CHARS // 2 * ID_BATCH).hex()
            _hex_ids.extend(raw[at:at + HEX_ID_CHARS] for at in range(0, len(raw), HEX_ID_CHARS))


def _uuid_batch() -> list[str]:
    """ID_BATCH UUIDs: 32 random hex digits each, the 13th replaced by the version (4) and the
    17th by the variant digit its two low bits choose (8, 9, a, b): 122 random bits, as uuid4."""
    h = os.urandom(UUID_BYTES * ID_BATCH).hex()
    return [f"{h[at:at + 8]}-{h[at + 8:at + 12]}-4{h[at + 13:at + 16]}-{_VARIANT[h[at + 16]]}{h[at + 17:at + 20]}-"
            f"{h[at + 20:at + 32]}" for at in range(0, len(h), 2 * UUID_BYTES)]


def _forget_inherited() -> None:
    _uuids.clear()
    _hex_ids.clear()


os.register_at_fork(after_in_child=_forget_inherited)
