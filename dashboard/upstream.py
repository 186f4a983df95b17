"""Console helpers over the derouter client: the key list, finding one key, judging its budget."""

import functools
from dataclasses import dataclass

from django.conf import settings
from django.http import Http404

from derouter import client
from derouter.client import DerouterError
from lib import money


def get_sub_keys():
    """Every Client Key, from one upstream call."""
    return client.list_sub_keys()


def find_sub_key(sub_keys, sub_key_id):
    """The key with this upstream id among ``sub_keys``, or None."""
    return next((sub_key for sub_key in sub_keys if sub_key.id == str(sub_key_id)), None)


def get_sub_key_or_404(sub_key_id):
    """The Client Key with this upstream id, or Http404.

    The URL's ``subkey`` converter has already refused anything that is not an upstream id.
    """
    sub_key = find_sub_key(get_sub_keys(), sub_key_id)
    if sub_key is None:
        raise Http404("No such key.")
    return sub_key


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
        sub_keys = get_sub_keys()
    except DerouterError:
        return KeyState(reachable=False)
    return KeyState(reachable=True, key=find_sub_key(sub_keys, sub_key_id), sub_keys=tuple(sub_keys))


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
