"""The portal's background work: writing a large usage export to a file, on the Huey worker."""

import logging
from importlib import import_module
from zoneinfo import ZoneInfo

from django.conf import settings
from huey.contrib.djhuey import db_task

from derouter.client import AuthFailed, DerouterError, get_client_usage_logs
from exports.models import Export
from exports.writer import fail, write_csv_file
from lib.ahead import PagesAhead
from portal.sessions import get_session_client_key
from portal.usage_csv import CSV_HEADER, USAGE_PAGE_SIZE, usage_csv_row

logger = logging.getLogger(__name__)


def _get_client_key(session_key):
    """The Client Key of a portal session, read where the session keeps it; None once it has ended.

    The key itself never goes into the queue: the task carries only the export's id.
    """
    return get_session_client_key(import_module(settings.SESSION_ENGINE).SessionStore(session_key))


def _generate_pages(client_key, zone):
    """The client's logs a page at a time, as CSV rows; the next page is fetched while one is written."""

    def fetch(page):
        return get_client_usage_logs(client_key, page=page, limit=USAGE_PAGE_SIZE)

    with PagesAhead(fetch) as pages:
        page = 1
        while True:
            usage_page = pages.get(page)
            last = page >= usage_page.pages or not usage_page.logs
            if not last:
                pages.ask_for(page + 1)
            yield [usage_csv_row(log, zone) for log in usage_page.logs], usage_page.total
            if last:
                return
            page += 1


@db_task()
def write_usage_export(export_id):
    """Write every usage log of the export's portal session to its file."""
    export = Export.objects.get(pk=export_id)
    client_key = _get_client_key(export.session_key)
    if not client_key:
        fail(export, "You signed out before the file was ready.")
        return
    try:
        write_csv_file(export, CSV_HEADER, _generate_pages(client_key, ZoneInfo(export.time_zone)))
    except AuthFailed:
        fail(export, "Your key is no longer accepted by derouter.")
    except DerouterError as error:
        logger.warning("usage export %s failed: %s", export.pk, type(error).__name__)
        fail(export, "derouter stopped answering while the file was being written. Try again in a moment.")
    except OSError as error:
        logger.error("usage export %s could not be written: %s", export.pk, type(error).__name__)
        fail(export, "The file could not be written on our side. Try again later.")
