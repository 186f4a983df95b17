"""The console's background work, run by the Huey consumer (`manage.py run_huey`), never by a web process."""

import itertools
import logging

from django.db import DatabaseError
from huey import crontab
from huey.contrib.djhuey import db_periodic_task, db_task

from dashboard import keywrites
from dashboard.ledger_csv import CSV_COLUMNS, filtered_topups, ledger_csv_row
from derouter.client import DerouterError
from exports.models import Export
from exports.writer import fail, write_csv_file

logger = logging.getLogger(__name__)

LEDGER_CHUNK_ROWS = 500


@db_periodic_task(crontab(minute="*"))
def settle_unsettled_writes():
    """Every minute: settle pending and unknown key writes and top-ups from derouter's key list.

    With nothing unsettled it asks derouter nothing; when derouter cannot answer,
    the next minute's run tries again.
    """
    try:
        settled = keywrites.resolve_unsettled_writes()
    except DerouterError as error:
        logger.warning("settling unsettled writes: derouter unavailable (%s)", type(error).__name__)
        return
    if settled:
        logger.info("settled %d unsettled writes", len(settled))


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
