"""Credit a key with money a customer brought in, through the one money service (dashboard.topups).

Codes and card payments both land here: the key and the account's available balance are
read from derouter, then ``topups.top_up`` records the ledger row before it asks derouter
and settles from derouter's answer. The token is derived from what is being credited
(a code's attempt, an order), so every process that tries the same credit meets the same
ledger row and money moves once.
"""

import uuid

from django.utils.translation import gettext_noop

from automation.actors import WorkerActor
from dashboard import topups
from dashboard.upstream import get_sub_key_now
from derouter import client
from derouter.client import DerouterError
from ledger.models import Outcome, TopUp
from lib import stored_text

TOKEN_NAMESPACE = uuid.UUID("6a3e1c58-2f7d-4c1b-9a0e-4d8b7f2e6c31")


def token_for(kind, object_id, attempt):
    """The top-up token of one credit attempt: the same in every process that tries it."""
    return uuid.uuid5(TOKEN_NAMESPACE, f"{kind}:{object_id}:{attempt}")


class KeyGone(Exception):
    """derouter no longer has the key: nothing was written."""


def read_key(sub_key_id):
    """The key as derouter has it now; raises KeyGone, or DerouterError when derouter cannot say."""
    sub_key = get_sub_key_now(sub_key_id)
    if sub_key is None:
        raise KeyGone(sub_key_id)
    return sub_key


def landed_earlier(kind, object_id, attempt):
    """A confirmed ledger row of an earlier attempt of this credit (one settled late), or None."""
    earlier = [token_for(kind, object_id, number) for number in range(attempt)]
    return TopUp.objects.filter(token__in=earlier, outcome=Outcome.OK).first() if earlier else None


def credit(sub_key, amount, note, kind, object_id, attempt, actor_name):
    """Top the key up by ``amount`` USD once for this attempt; return the ledger row (ok, refused, pending or unknown).

    Under the key's lock the money service asks whether an earlier attempt landed after all
    (settled late): then this one is refused unsent, and the caller finds the earlier row.
    A derouter error before the ledger row exists (reading the balance) is raised: nothing was
    written. After it, the row records the outcome and is returned, whatever the error.
    """
    token = token_for(kind, object_id, attempt)

    def earlier_attempt_landed(current_key):
        landed = landed_earlier(kind, object_id, attempt)
        return stored_text.note(gettext_noop("an earlier attempt (%(note)s) was confirmed after all."), note=landed.note) if landed else ""

    balance = client.get_balance()
    try:
        attempt_made = topups.top_up(
            WorkerActor(actor_name), sub_key, amount, note, token, balance.available, check=earlier_attempt_landed
        )
    except DerouterError:
        # Recorded on the row before it was raised again (access or rate-limit errors).
        return TopUp.objects.get(token=token)
    return attempt_made.topup
