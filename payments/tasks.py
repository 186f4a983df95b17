"""Money-in background work, run by the Huey consumer."""

from huey import crontab
from huey.contrib.djhuey import db_periodic_task

from work.runs import tracked
from payments import codes


@db_periodic_task(crontab(minute="*"))
def settle_held_codes():
    """Every minute: finish codes held while their top-up was unknown (their ledger rows are settled by the console's task).

    Idempotent: each step is a conditional UPDATE from the state it expects, so two consumers
    running it at once settle each code once.
    """
    if not codes.has_held_codes():
        return
    with tracked("payments.settle_held_codes") as run:
        settled = codes.settle_held_codes()
        run.detail = f"{len(settled)} settled" if settled else "Nothing could be settled yet."
