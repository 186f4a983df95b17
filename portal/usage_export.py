"""The portal's usage export: a large download written to a file by its task, on the Huey worker."""

import logging
from contextlib import ExitStack
from importlib import import_module
from itertools import islice
from zoneinfo import ZoneInfo

from django.conf import settings
from django.utils.translation import gettext_lazy as _
from huey.contrib.djhuey import db_task

from accounts.portal_sessions import get_session_client_key
from derouter.client import AuthFailed, DerouterError, get_client_usage_logs
from exports.models import Export
from exports.writer import fail, write_csv_file
from lib.ahead import PagesAhead
from mirror import reads, sync
from portal.usage_csv import CSV_HEADER, USAGE_PAGE_SIZE, mirrored_usage_csv_rows, usage_csv_row

logger = logging.getLogger(__name__)

# How long an export waits for a sync of its key already running before it pages derouter instead.
MIRROR_WAIT_SECONDS = 2
# Rows the mirror hands the writer at a time: fewer, larger steps than derouter's pages.
MIRROR_PAGE_ROWS = 2000


def _get_client_key(session_key):
    """The Client Key of a portal session, read where the session keeps it; None once it has ended.

    The key itself never goes into the queue: the task carries only the export's id.
    """
    return get_session_client_key(import_module(settings.SESSION_ENGINE).SessionStore(session_key))


def _generate_pages(client_key, zone):
    """The client's logs a page at a time, as CSV rows: from the mirror when it can vouch for them, else derouter's."""
    key = reads.get_active_key_by_secret(client_key)
    if key is not None and reads.is_usage_in_upstream_order(key):
        with ExitStack() as held:
            pages = _get_mirrored_pages(client_key, key, zone, held)
            if pages is not None:
                yield from pages
                return
    yield from _generate_upstream_pages(client_key, zone)


def _get_mirrored_pages(client_key, key, zone, held):
    """The key's caught-up rows as pages of CSV rows, or None when they are not exactly derouter's.

    The key's lease, entered on ``held``, keeps every sync off its rows while they are read.
    derouter's own first page for the client is the check: its total must be the number of
    rows mirrored, and its rows, as written, the mirror's first ones (which also shows the
    snapshot's multiplier is derouter's). Once a page is handed over there is no going back.
    """
    try:
        lease = held.enter_context(sync.usage_kept_in_sync(key.sub_key_id, wait_seconds=MIRROR_WAIT_SECONDS))
    except (sync.ScopeBusy, DerouterError) as error:
        logger.info("usage export of key %s pages derouter: its catch-up failed (%s)", key.sub_key_id,
                    type(error).__name__)
        return None
    first_page = get_client_usage_logs(client_key, page=1, limit=USAGE_PAGE_SIZE)
    if not reads.is_usage_in_upstream_order(key) or reads.count_key_usage(key) != first_page.total:
        logger.info("usage export of key %s pages derouter: the mirror holds other rows", key.sub_key_id)
        return None
    rows = mirrored_usage_csv_rows(reads.iter_key_usage_in_upstream_order(key), zone, key.display_multiplier)
    head = list(islice(rows, len(first_page.logs)))
    if head != [usage_csv_row(log, zone) for log in first_page.logs]:
        rows.close()
        logger.info("usage export of key %s pages derouter: its first page differs from the mirror's",
                    key.sub_key_id)
        return None
    return _paged(head, rows, first_page.total, lease)


def _paged(head, rows, total, lease):
    yield head, total
    while page := list(islice(rows, MIRROR_PAGE_ROWS)):
        lease.keep()
        yield page, total


def _generate_upstream_pages(client_key, zone):
    """The client's logs from derouter a page at a time, as CSV rows; the next page is fetched while one is written."""

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
        fail(export, _("You signed out before the file was ready."))
        return
    try:
        write_csv_file(export, CSV_HEADER, _generate_pages(client_key, ZoneInfo(export.time_zone)))
    except AuthFailed:
        fail(export, _("Your key is no longer accepted by derouter."))
    except DerouterError as error:
        logger.warning("usage export %s failed: %s", export.pk, type(error).__name__)
        fail(export, "derouter stopped answering while the file was being written. Try again in a moment.")
    except sync.ScopeBusy:
        # The key's lease, kept up as the mirror is read, was taken over: the rows may have moved.
        logger.warning("usage export %s lost its key's lease while it was written", export.pk)
        fail(export, _("The file could not be written on our side. Try again later."))
    except OSError as error:
        logger.error("usage export %s could not be written: %s", export.pk, type(error).__name__)
        fail(export, _("The file could not be written on our side. Try again later."))
