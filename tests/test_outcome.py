"""One type for a destination's counters, shared by engine results and job records."""

from __future__ import annotations

from ecr_ocir_sync.jobs.model import DestinationRecord, destinations_from_text, destinations_to_text
from ecr_ocir_sync.outcome import BlobOutcome, DestinationStatus, TransferCounts


def test_counts_add_field_by_field():
    total = TransferCounts(10, 1, 2, 3, 4) + TransferCounts(5, 1, 1, 1, 1)

    assert total == TransferCounts(15, 2, 3, 4, 5)


def test_each_blob_outcome_counts_in_its_own_field():
    counts = TransferCounts().blob(BlobOutcome.COPIED).blob(BlobOutcome.MOUNTED)
    counts = counts.blob(BlobOutcome.SKIPPED).blob(BlobOutcome.SKIPPED).sent(7).pushed()

    assert counts == TransferCounts(
        bytes_sent=7, blobs_copied=1, blobs_skipped=2, blobs_mounted=1, manifests_pushed=1
    )


def test_a_job_record_keeps_its_status_through_counting():
    record = DestinationRecord(status=DestinationStatus.RUNNING, detail="x")

    counted = record.sent(3).blob(BlobOutcome.COPIED) + TransferCounts(manifests_pushed=2)

    assert counted == DestinationRecord(
        bytes_sent=3,
        blobs_copied=1,
        manifests_pushed=2,
        status=DestinationStatus.RUNNING,
        detail="x",
    )


def test_records_stored_as_text_come_back_equal_with_their_status_an_enum():
    records = {"mel": DestinationRecord(status=DestinationStatus.FAILED, error="quota").sent(9)}

    again = destinations_from_text(destinations_to_text(records))

    assert again == records
    assert again["mel"].status is DestinationStatus.FAILED


def test_records_stored_before_manifests_were_counted_still_load():
    old = '{"syd": {"status": "succeeded", "error": null, "retryable": false, "bytes_sent": 5,'
    old += ' "blobs_copied": 1, "blobs_skipped": 0, "blobs_mounted": 0, "seconds": 1.5,'
    old += ' "detail": null}}'

    (record,) = destinations_from_text(old).values()

    assert record == DestinationRecord(
        bytes_sent=5, blobs_copied=1, status=DestinationStatus.SUCCEEDED, seconds=1.5
    )
