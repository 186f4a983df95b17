"""Console helpers over the derouter client: the key list and finding one key."""

import re

from django.conf import settings
from django.http import Http404

from derouter import client

# Upstream ids are UUIDs; anything else is a 404 without asking the upstream.
SUB_KEY_ID_PATTERN = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def get_sub_keys():
    """Every Client Key, from one upstream call."""
    return client.list_sub_keys()


def get_sub_key_or_404(sub_key_id):
    """The Client Key with this upstream id, or Http404 (no upstream call for a malformed id)."""
    sub_key_id = str(sub_key_id)
    if not SUB_KEY_ID_PATTERN.match(sub_key_id):
        raise Http404("No such key.")
    for sub_key in get_sub_keys():
        if sub_key.id == sub_key_id:
            return sub_key
    raise Http404("No such key.")


def is_running_low(sub_key):
    """True when less than LOW_BUDGET_THRESHOLD of the key's budget is left."""
    return sub_key.remaining < settings.LOW_BUDGET_THRESHOLD * sub_key.budget
