"""The top-up ledger as CSV rows: one format for the streamed and the worker-written download."""

import datetime

from dashboard.models import TopUp

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
)


def filtered_topups(sub_key_id=None, outcome=None):
    """The ledger's top-ups, newest first, of one key and one outcome when given."""
    topups = TopUp.objects.all()
    if sub_key_id:
        topups = topups.filter(sub_key_id=str(sub_key_id))
    if outcome:
        topups = topups.filter(outcome=outcome)
    return topups


def ledger_csv_row(topup):
    return (
        topup.created_at.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S"),
        topup.actor_name,
        topup.key_label,
        topup.key_id_short,
        topup.sub_key_id,
        topup.amount,
        topup.note,
        topup.outcome,
        topup.message,
        topup.budget_before,
    )
