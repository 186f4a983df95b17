"""The console's background work: writing a large ledger export to a file, on the Huey worker."""

import itertools
import logging

from django.db import DatabaseError
from huey.contrib.djhuey import db_task

from dashboard.ledger_csv import CSV_COLUMNS, filtered_topups, ledger_csv_row
from exports.models import Export
from exports.writer import fail, write_csv_file

logger = logging.getLogger(__name__)

CHUNK_ROWS = 500


def _generate_pages(topups):
    total = topups.count()
    rows = (ledger_csv_row(topup) for topup in topups.iterator(chunk_size=CHUNK_ROWS))
    while chunk := list(itertools.islice(rows, CHUNK_ROWS)):
        yield chunk, total


@db_task()
def write_ledger_export(export_id):
    """Write the ledger, filtered as the export was asked for, to its file."""
    export = Export.objects.get(pk=export_id)
    topups = filtered_topups(export.params.get("sub_key_id"), export.params.get("outcome"))
    try:
        write_csv_file(export, CSV_COLUMNS, _generate_pages(topups))
    except (DatabaseError, OSError) as error:
        logger.error("ledger export %s failed: %s", export.pk, type(error).__name__)
        fail(export, "The file could not be written. Try again later.")
