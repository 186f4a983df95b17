"""Console helpers over the derouter client: one key as derouter reports it now, the key list, the balance.

Money steps read a key at one upstream call whatever the number of keys: the key's own
/sub-key/balance, with its secret as the mirror keeps it (encrypted), converted to real
money with the key's multiplier. derouter's own figures are trusted only when they agree
with the mirror's budget and multiplier; otherwise (a key changed elsewhere, a convention
the conversion does not fit, a key not mirrored yet) the key list decides, whatever it costs.
"""

import functools
from dataclasses import dataclass, replace
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.http import Http404
from django.utils.translation import gettext_lazy as _

from derouter import client
from derouter.client import AuthFailed, DerouterError, NotFound, Secret
from lib import money
from mirror import key_store
from mirror import snapshot as mirror_snapshot
from mirror.models import KeySnapshot
from mirror.reads import as_sub_key

# The precision real figures are kept to (derouter accepts at most six decimals).
REAL_PLACES = Decimal("0.000001")
# A key's own budget agrees with the mirror's when it differs by less than derouter's coarsest
# rounding of money (four decimals): budgets move by cents, never by less.
BUDGET_AGREEMENT = Decimal("0.00005")


def _from_own_view(snapshot, secret, own):
    """The key in real money from its own view (display units), or None when that disagrees with the mirror."""
    multiplier = snapshot.display_multiplier
    if multiplier <= 0 or abs(own.budget - snapshot.budget * multiplier) > BUDGET_AGREEMENT:
        return None
    spent = money.plain((own.spent / multiplier).quantize(REAL_PLACES, rounding=ROUND_HALF_UP))
    sub_key = as_sub_key(snapshot)
    return replace(
        sub_key,
        label=own.label,
        secret=Secret(secret),
        spent=spent,
        remaining=sub_key.budget - spent,
        rpm_limit=own.rpm_limit,
        concurrent_limit=own.concurrent_limit,
    )


def get_sub_key_now(sub_key_id):
    """The key as derouter reports it now (a client.SubKey in real money), or None when derouter has no such key.

    One upstream call at any number of keys when the mirror holds the key's secret and
    derouter's answer agrees with the mirror; the key list otherwise. Raises DerouterError.
    """
    snapshot = KeySnapshot.objects.active().filter(sub_key_id=str(sub_key_id)).first()
    secret = key_store.decrypt_secret(snapshot) if snapshot else None
    if secret:
        try:
            sub_key = _from_own_view(snapshot, secret, client.get_client_balance(secret))
        except (AuthFailed, NotFound):
            sub_key = None  # the secret no longer signs in: deleted, or changed elsewhere; the list says which
        if sub_key is not None:
            return sub_key
    sub_key = client.get_sub_key(sub_key_id)
    if sub_key is not None:
        mirror_snapshot.record_key(sub_key)
    return sub_key


def get_sub_key_or_404(sub_key_id):
    """The Client Key with this upstream id as derouter reports it now (see get_sub_key_now), or Http404.

    The URL's ``subkey`` converter has already refused anything that is not an upstream id.
    """
    sub_key = get_sub_key_now(sub_key_id)
    if sub_key is None:
        raise Http404(_("No such key."))
    return sub_key


def get_live_balance():
    """The account's balance from derouter now, also kept in the mirror for pages that do not wait for it."""
    balance = client.get_balance()
    mirror_snapshot.record_balance(balance)
    return balance


@dataclass(frozen=True)
class KeyState:
    """A key as derouter reports it right now: ``reachable`` is False when derouter could not say."""

    reachable: bool
    key: client.SubKey | None = None
    sub_keys: tuple = ()


def get_key_state(sub_key_id=None):
    """Ask derouter for its keys now (after a write whose outcome is unknown); never raises.

    Only for showing what is true after a write: whatever goes wrong, the page
    still reports the write's outcome and says derouter could not tell us more.
    """
    try:
        sub_keys = client.list_sub_keys()
    except DerouterError:
        return KeyState(reachable=False)
    key = next((sub_key for sub_key in sub_keys if sub_key.id == str(sub_key_id)), None)
    return KeyState(reachable=True, key=key, sub_keys=tuple(sub_keys))


def is_running_low(sub_key):
    """True when less than LOW_BUDGET_THRESHOLD of the key's budget is left."""
    return money.is_running_low(sub_key.remaining, sub_key.budget)


def upstream_write_deadline(view):
    """Give a POST to this view one deadline for all its upstream calls (see ``client.write_deadline``)."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        if request.method != "POST":
            return view(request, *args, **kwargs)
        with client.write_deadline(settings.DEROUTER_WRITE_DEADLINE):
            return view(request, *args, **kwargs)

    return wrapper
