"""The console's background work, run by the Huey consumer (`manage.py run_huey`), never by a web process."""

import itertools
import logging

from django.db import DatabaseError
from huey import crontab
from huey.contrib.djhuey import db_periodic_task, db_task

from derouter.client import DerouterError

from dashboard import keywrites, reconcile
from dashboard.models import ReconcileRun
from dashboard.ledger_csv import CSV_COLUMNS, filtered_topups, ledger_csv_row
from exports.models import Export
from exports.writer import fail, write_csv_file
from mirror.runs import tracked

logger = logging.getLogger(__name__)

LEDGER_CHUNK_ROWS = 500


@db_periodic_task(crontab(minute="*"))
def settle_unsettled_writes():
    """Every minute: settle pending and unknown key writes and top-ups from derouter's key list.

    With nothing unsettled it asks derouter nothing and records nothing. Otherwise the run
    is recorded (the Sync page lists it); when derouter cannot answer it is recorded as
    failed, and the next minute's run tries again.
    """
    if not keywrites.has_unsettled_writes():
        return
    with tracked("dashboard.settle_unsettled_writes") as run:
        settled = keywrites.resolve_unsettled_writes()
        run.detail = f"{len(settled)} settled" if settled else "Nothing could be settled yet."


def _generate_ledger_pages(topups):
    total = topups.count()
    rows = (ledger_csv_row(topup) for topup in topups.iterator(chunk_size=LEDGER_CHUNK_ROWS))
    while chunk := list(itertools.islice(rows, LEDGER_CHUNK_ROWS)):
        yield chunk, total


@db_task()
def write_ledger_export(export_id):
    """Write the ledger, filtered as the export was asked for, to its file."""
    export = Export.objects.get(pk=export_id)
    topups = filtered_topups(export.params.get("sub_key_id"), export.params.get("outcome"))
    try:
        write_csv_file(export, CSV_COLUMNS, _generate_ledger_pages(topups))
    except (DatabaseError, OSError) as error:
        logger.error("ledger export %s failed: %s", export.pk, type(error).__name__)
        fail(export, "The file could not be written. Try again later.")


@db_task(retries=2, retry_delay=60)
def run_reconciliation(run_id):
    """Run the reconciliation a person asked for (its ReconcileRun row was written "running" already)."""
    record = ReconcileRun.objects.filter(pk=run_id, status=ReconcileRun.Status.RUNNING).first()
    if record is None:
        return
    try:
        reconcile.run(record)
    except reconcile.RunBusy:
        pass
    except DerouterError:
        # Recorded as failed on the run; the next hourly run (or a person) tries again.
        pass


@db_periodic_task(crontab(minute="17"))
def reconcile_hourly():
    """Every hour: reconcile, so the console's page shows a recent run without anyone asking."""
    try:
        reconcile.run(requested_by="hourly")
    except (reconcile.RunBusy, DerouterError):
        pass
