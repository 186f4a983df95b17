"""Writing an export's CSV file on the worker: page by page, progress saved as it goes, all or nothing."""

import csv
import os
import time

from django.utils import timezone

from exports.models import Export
from lib.csv_export import safe_cell

# Progress is saved at most this often: a database write per page would slow the export down.
PROGRESS_INTERVAL_SECONDS = 0.5


def write_csv_file(export, header, pages):
    """Write the header and every page of rows to the export's file, then mark it done.

    ``pages`` yields (rows, rows_total) pairs. The file is written under a temporary name
    and renamed when complete, so a download never gets a short file; if anything fails,
    the partial file is removed and the exception goes to the caller, which calls fail().
    """
    partial = export.path.with_suffix(".part")
    Export.objects.filter(pk=export.pk).update(status=Export.Status.RUNNING, updated_at=timezone.now())
    rows_done = 0
    try:
        os.makedirs(export.path.parent, exist_ok=True)
        with open(partial, "w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow(header)
            saved_at = time.monotonic()
            for rows, rows_total in pages:
                writer.writerows([safe_cell(cell) for cell in row] for row in rows)
                rows_done += len(rows)
                if time.monotonic() - saved_at >= PROGRESS_INTERVAL_SECONDS:
                    Export.objects.filter(pk=export.pk).update(rows_done=rows_done, rows_total=rows_total,
                                                               updated_at=timezone.now())
                    saved_at = time.monotonic()
        os.replace(partial, export.path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    now = timezone.now()
    Export.objects.filter(pk=export.pk).update(status=Export.Status.DONE, rows_done=rows_done, rows_total=rows_done,
                                               finished_at=now, updated_at=now)
    return rows_done


def fail(export, message):
    """Mark the export failed with a message for its owner."""
    now = timezone.now()
    Export.objects.filter(pk=export.pk).update(status=Export.Status.FAILED, error=message, finished_at=now,
                                               updated_at=now)
