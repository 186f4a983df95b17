"""The top-up ledger as CSV rows: one format for the streamed and the worker-written download."""

import datetime
import itertools
import logging

from django.db import DatabaseError
from django.utils.translation import gettext_lazy as _
from huey.contrib.djhuey import db_task

from analytics.permissions import can_see_margins
from exports.models import Export
from exports.writer import fail, write_csv_file
from ledger.models import TopUp
from lib import stored_text

logger = logging.getLogger(__name__)

LEDGER_CHUNK_ROWS = 500

CSV_COLUMNS = (
    "created_at_utc",
    "actor",
    "key_label",
    "key_id",
    "sub_key_id",
    "amount_usd",
    "note",
    "outcome",
    "message",
    "budget_before_usd",
    "kind",
)
# The same move as the customer saw it (amount times the key's multiplier): beside the real amount it
# gives the markup away, so only whoever may see margins gets it. It goes before "kind", which stays last.
MARGIN_CSV_COLUMNS = (*CSV_COLUMNS[:-1], "customer_amount", CSV_COLUMNS[-1])


def csv_columns(show_margins):
    return MARGIN_CSV_COLUMNS if show_margins else CSV_COLUMNS


def filtered_topups(sub_key_id=None, outcome=None):
    """The ledger's top-ups, newest first, of one key and one outcome when given."""
    topups = TopUp.objects.all()
    if sub_key_id:
        topups = topups.filter(sub_key_id=str(sub_key_id))
    if outcome:
        topups = topups.filter(outcome=outcome)
    return topups


def ledger_csv_row(topup, show_margins=False):
    row = (
        topup.created_at.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S"),
        topup.actor_name,
        topup.key_label,
        topup.key_id_short,
        topup.sub_key_id,
        topup.amount,
        stored_text.read_in_english(topup.note),
        topup.outcome,
        stored_text.read_in_english(topup.message),
        topup.budget_before,
        topup.kind,
    )
    return (*row[:-1], topup.customer_amount, row[-1]) if show_margins else row


def _generate_ledger_pages(topups, show_margins):
    total = topups.count()
    rows = (ledger_csv_row(topup, show_margins) for topup in topups.iterator(chunk_size=LEDGER_CHUNK_ROWS))
    while chunk := list(itertools.islice(rows, LEDGER_CHUNK_ROWS)):
        yield chunk, total


@db_task()
def write_ledger_export(export_id):
    """Write the ledger, filtered as the export was asked for, to its file."""
    export = Export.objects.get(pk=export_id)
    topups = filtered_topups(export.params.get("sub_key_id"), export.params.get("outcome"))
    show_margins = export.user is not None and can_see_margins(export.user)
    try:
        write_csv_file(export, csv_columns(show_margins), _generate_ledger_pages(topups, show_margins))
    except (DatabaseError, OSError) as error:
        logger.error("ledger export %s failed: %s", export.pk, type(error).__name__)
        fail(export, _("The file could not be written. Try again later."))
