"""An entry's failure record (shoplib.streams.failures.Record): what counts against the entry,
and what its dead letter says."""

from __future__ import annotations

from shoplib.streams.failures import Record, _decoded


def test_an_entry_is_at_fault_only_by_its_failed_and_unfinished_deliveries() -> None:
    assert not Record().at_fault(3)
    assert not Record(failed=1, unfinished=1).at_fault(3)
    assert Record(failed=2, unfinished=1).at_fault(3)
    assert Record(failed=0, unfinished=3).at_fault(3)


def test_the_reason_names_every_count_and_the_last_error() -> None:
    assert Record(3, 0, "RuntimeError: boom").reason() == "3 failed; last error: RuntimeError: boom"
    assert Record(0, 2).reason() == "2 ended without an outcome (its consumer stopped or crashed holding it)"
    assert Record(1, 2, "TimeoutError: x").reason() == (
        "1 failed; 2 ended without an outcome (its consumer stopped or crashed holding it); "
        "last error: TimeoutError: x")


def test_a_record_survives_its_encoding_spaces_in_the_error_included() -> None:
    record = Record(2, 1, "ValueError: a b  c")
    assert _decoded(record.encoded().encode()) == record


def test_a_record_written_before_the_counts_were_kept_reads_as_one_failure_with_its_error() -> None:
    old = "RuntimeError: the card processor refuses"
    assert _decoded(old.encode()) == Record(1, 0, old)
