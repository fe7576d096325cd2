"""A Publisher twin that records what a unit of work handed it, for assertions."""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf.message import Message

from shoplib.tx import Writes


class RecordingPublisher:
    def __init__(self) -> None:
        self.staged: list[Message] = []
        self.published: list[Message] = []
        self.resent: list[Message] = []

    def stage(self, emitted: Sequence[Message], writes: Writes) -> None:
        self.staged += emitted

    async def after_commit(self, emitted: Sequence[Message]) -> None:
        self.published += emitted

    async def resend(self, emitted: Sequence[Message]) -> None:
        self.resent += emitted
