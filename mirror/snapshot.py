"""The mirror's key snapshot: derouter's list of Client Keys, refreshed by the worker and after every write we make.

A key's answer to a write goes straight into the snapshot; a write whose answer did not
describe the key (or whose outcome is unknown) asks the worker for a refresh instead.
"""

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_noop
from huey.contrib.djhuey import db_task

from derouter import client
from lib.queue import enqueue_or_warn
from lib.stored_text import lines, note, read_in_english
from mirror import key_store
from mirror.models import KeySnapshot
from work import leases
from work.runs import Recorded

SNAPSHOT_LEASE = "mirror-snapshot"
SNAPSHOT_FIELDS = (
    "label", "key_id_short", "secret_sha256", "budget", "spent", "remaining", "rpm_limit",
    "concurrent_limit", "display_multiplier", "created_at", "deleted_at",
)
REFRESH_TASK_NAME = "refresh_keys"
# A failed refresh or sync is retried after 10 s, 20 s, 40 s, 80 s, 160 s, then left to the next period.
RETRIES = 5
RETRY_DELAY_SECONDS = 10
RETRY_BACKOFF = 2


@dataclass
class SnapshotResult:
    """What one refresh of the key snapshot did."""

    active: int = 0
    changed: int = 0
    deleted: int = 0
    skipped: int = 0  # keys of an unexpected shape in derouter's list, left as they were

    def describe(self):
        """In English, for the command line and the logs."""
        return read_in_english(self.as_note())

    def as_note(self):
        """What a TaskRun stores, read in each reader's language."""
        return lines(
            note(gettext_noop("%(active)s keys, %(changed)s new or changed, %(deleted)s gone upstream"),
                 active=self.active, changed=self.changed, deleted=self.deleted),
            self.skipped and note(gettext_noop("%(count)s of unexpected shape skipped (see the log)"), count=self.skipped),
        )


def _fields_of(sub_key, asked_at):
    """A listed key's snapshot fields; the list gives createdAt (else the key is dated when we asked)."""
    fields = key_store.snapshot_fields(sub_key, None)
    fields.pop("refreshed_at")
    fields["created_at"] = sub_key.created_at or asked_at
    return fields


def refresh_snapshot(sub_keys=None, asked_at=None, wait_seconds=0):
    """Write derouter's key list into the snapshot; keys gone upstream are marked deleted.

    ``sub_keys`` is the list a caller just read (the automation pass reads it once for
    everything), asked for at ``asked_at``; without it the list is read now. Only new or
    changed keys are written, so a refresh of thousands of unchanged keys is one read and
    two updates. A key refreshed by a write's answer after the list was asked for is left
    as the write described it. Raises leases.LeaseHeld (mirror.sync.ScopeBusy) when another refresh holds the snapshot
    past ``wait_seconds``, DerouterError when derouter fails.
    """
    with leases.held(SNAPSHOT_LEASE, wait_seconds=wait_seconds):
        if sub_keys is None:
            asked_at = timezone.now()
            sub_keys = client.list_sub_keys()
        skipped_ids = {skipped.id for skipped in getattr(sub_keys, "skipped", ()) if skipped.id}
        result = SnapshotResult(active=len(sub_keys), skipped=len(getattr(sub_keys, "skipped", ())))
        held = {
            row[0]: row[1:]
            for row in KeySnapshot.objects.values_list(
                "sub_key_id", *SNAPSHOT_FIELDS, "secret_encrypted", "refreshed_at"
            )
        }
        writes = []
        for sub_key in sub_keys:
            fields = _fields_of(sub_key, asked_at)
            known = held.get(sub_key.id)
            if known is not None:
                if known[-1] > asked_at:
                    continue
                # The encrypted secret differs at every encryption: it is compared by its digest.
                is_secret_held = bool(known[-2]) or not fields["secret_sha256"]
                if known[:-2] == tuple(fields[name] for name in SNAPSHOT_FIELDS) and is_secret_held:
                    continue
            fields["secret_encrypted"] = key_store.encrypt_secret(sub_key.secret.reveal())
            writes.append(KeySnapshot(sub_key_id=sub_key.id, refreshed_at=asked_at, **fields))
        # A key skipped for its shape is still at derouter: not gone.
        seen = {sub_key.id for sub_key in sub_keys} | skipped_ids
        gone = [sub_key_id for sub_key_id, known in held.items() if sub_key_id not in seen and known[-3] is None]
        with transaction.atomic():
            KeySnapshot.objects.bulk_create(
                writes,
                batch_size=500,
                update_conflicts=True,
                unique_fields=["sub_key_id"],
                update_fields=[*SNAPSHOT_FIELDS, "secret_encrypted", "refreshed_at"],
            )
            for start in range(0, len(gone), 500):
                KeySnapshot.objects.filter(
                    sub_key_id__in=gone[start:start + 500], deleted_at__isnull=True, refreshed_at__lte=asked_at
                ).update(deleted_at=asked_at)
            # Every key derouter just reported is as fresh as this answer.
            KeySnapshot.objects.filter(deleted_at__isnull=True, refreshed_at__lt=asked_at).update(
                refreshed_at=asked_at
            )
            if writes or gone:
                key_store.summarize_snapshot()
        result.changed, result.deleted = len(writes), len(gone)
        return result


def refresh_balance():
    """Read the account's balance and keep it for the pages that show it without waiting (raises DerouterError)."""
    asked_at = timezone.now()
    key_store.record_balance(client.get_balance(), read_at=asked_at)


def record_balance(balance):
    """Keep a balance a page or a money step just read from derouter (a derouter.client.Balance)."""
    key_store.record_balance(balance)


def record_key(sub_key):
    """Record a key as derouter just described it (a derouter.client.SubKey)."""
    return key_store.upsert_key(sub_key)


def record_write_answer(answer):
    """After a write we made: the snapshot takes the key from its answer, or asks the worker to refresh.

    ``answer`` is what derouter.client.update_sub_key returned (None when the answer did not
    describe the key); after a write whose outcome is unknown, pass None too.
    """
    if answer is not None:
        return record_key(answer)
    enqueue_or_warn(refresh_keys)
    return None


def record_created_key(created):
    """Record a key we just created (a derouter.client.CreatedSubKey): nothing spent yet."""
    return key_store.insert_created_key(created)


def record_deleted_key(sub_key_id):
    """A key we deleted stays in the snapshot, marked, with its final spend."""
    key_store.mark_deleted(sub_key_id)


@db_task(retries=RETRIES, retry_delay=RETRY_DELAY_SECONDS, retry_backoff=RETRY_BACKOFF)
def refresh_keys():
    """Refresh only the key snapshot: after a write whose answer did not describe the key, or on a first page view."""
    refresh_snapshot_recorded()


def refresh_snapshot_recorded():
    """Refresh the key snapshot under a TaskRun row; False when another consumer is already refreshing it."""
    recorded = Recorded(REFRESH_TASK_NAME)
    try:
        result = refresh_snapshot()
    except leases.LeaseHeld:
        recorded.skipped()
        return False
    except client.DerouterError as error:
        recorded.failed(error.message)
        raise
    recorded.ok(result.as_note())
    return True
