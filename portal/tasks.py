"""The portal's background work: writing a large usage export to a file, on the Huey worker."""

import csv
import logging
import os
import time
from importlib import import_module
from zoneinfo import ZoneInfo

from django.conf import settings
from django.utils import timezone
from huey.contrib.djhuey import db_task

from derouter.client import AuthFailed, DerouterError, get_client_usage_logs
from exports.models import Export
from lib.csv_export import safe_cell
from portal.sessions import SESSION_KEY
from portal.usage_csv import CSV_HEADER, USAGE_PAGE_SIZE, usage_csv_row

logger = logging.getLogger(__name__)

# Progress is saved at most this often: a row update per upstream page would double the work.
PROGRESS_INTERVAL_SECONDS = 0.5


def _get_client_key(session_key):
    """The Client Key of a portal session, read where the session keeps it; None once it has ended.

    The key itself never goes into the queue: the task carries only the export's id.
    """
    session = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    return session.get(SESSION_KEY)


def _fail(export, message):
    Export.objects.filter(pk=export.pk).update(status=Export.Status.FAILED, error=message,
                                               finished_at=timezone.now(), updated_at=timezone.now())


@db_task()
def write_usage_export(export_id):
    """Write every usage log of the export's session to its file, saving progress as it goes."""
    export = Export.objects.get(pk=export_id)
    client_key = _get_client_key(export.session_key)
    if not client_key:
        _fail(export, "You signed out before the file was ready.")
        return
    zone = ZoneInfo(export.time_zone)
    partial = export.path.with_suffix(".part")
    Export.objects.filter(pk=export.pk).update(status=Export.Status.RUNNING, updated_at=timezone.now())
    rows_done = 0
    try:
        os.makedirs(export.path.parent, exist_ok=True)
        with open(partial, "w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow(CSV_HEADER)
            page = 1
            saved_at = time.monotonic()
            while True:
                usage_page = get_client_usage_logs(client_key, page=page, limit=USAGE_PAGE_SIZE)
                writer.writerows([safe_cell(cell) for cell in usage_csv_row(log, zone)] for log in usage_page.logs)
                rows_done += len(usage_page.logs)
                if time.monotonic() - saved_at >= PROGRESS_INTERVAL_SECONDS:
                    Export.objects.filter(pk=export.pk).update(rows_done=rows_done, rows_total=usage_page.total,
                                                               updated_at=timezone.now())
                    saved_at = time.monotonic()
                if page >= usage_page.pages or not usage_page.logs:
                    break
                page += 1
        os.replace(partial, export.path)
    except AuthFailed:
        partial.unlink(missing_ok=True)
        _fail(export, "Your key is no longer accepted by derouter.")
        return
    except DerouterError as error:
        partial.unlink(missing_ok=True)
        logger.warning("usage export %s failed after %d rows: %s", export.pk, rows_done, type(error).__name__)
        _fail(export, "derouter stopped answering while the file was being written. Try again in a moment.")
        return
    except OSError as error:
        partial.unlink(missing_ok=True)
        logger.error("usage export %s could not be written: %s", export.pk, type(error).__name__)
        _fail(export, "The file could not be written on our side. Try again later.")
        return
    Export.objects.filter(pk=export.pk).update(status=Export.Status.DONE, rows_done=rows_done, rows_total=rows_done,
                                               finished_at=timezone.now(), updated_at=timezone.now())
