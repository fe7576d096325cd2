"""Batched random ids: the forms uuid4 gave, never repeated, and not shared with a forked child."""

from __future__ import annotations

import os
import re
import uuid

from shoplib.rules import ids

MANY = ids.ID_BATCH * 3 + 1  # crosses batch refills


def test_event_ids_are_version_4_uuids_in_text_form_never_repeated() -> None:
    made = [ids.uuid4_text() for _ in range(MANY)]
    assert len(set(made)) == MANY
    for text in made:
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_hex_ids_are_24_lowercase_hex_characters_never_repeated() -> None:
    made = [ids.hex_id() for _ in range(MANY)]
    assert len(set(made)) == MANY
    assert all(re.fullmatch(r"[0-9a-f]{24}", text) for text in made)


def test_a_forked_child_makes_ids_other_than_its_parents() -> None:
    ids.uuid4_text()  # the parent holds a batch the child inherits
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover (the child)
        os.write(write, ids.uuid4_text().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    from_child = os.read(read, 64).decode()
    os.close(read)
    assert from_child and from_child not in {ids.uuid4_text() for _ in range(ids.ID_BATCH)}
