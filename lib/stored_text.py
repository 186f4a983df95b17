"""Messages stored now and read later (alerts, task runs, worker notes, delivery errors), in the reader's language.

The worker writes in no one's language, so a message is stored as its English msgid (marked with
``gettext_noop`` where it is written) and its values, and each page translates it as it shows it.
Text stored before this, and words quoted from elsewhere (derouter's or a receiver's answer), are
plain text: they read as they were recorded.
"""

import json

from django.utils import translation
from django.utils.functional import Promise
from django.utils.translation import gettext

from lib.text import cut

# Every stored message starts so; plain text never does.
_START = '{"msgid": '
# Longest kept value: a row's message column stays well inside its size with room for the msgid.
_VALUE_CHARS = 300


def note(msgid, **values):
    """The text to store for ``msgid`` with its ``%(name)s`` values.

    A value that is a note itself is kept as one, and so is a lazy translation (as its msgid): it
    reads in the reader's language, not in the one active while it was written.
    """
    return json.dumps({"msgid": str(msgid), "values": {name: _kept(value) for name, value in values.items()}}, ensure_ascii=False)


def lines(*notes):
    """Several notes (or plain texts) stored as one text, read one per line; "" when there are none."""
    kept = [_kept(part) for part in notes if part]
    return json.dumps(kept, ensure_ascii=False) if kept else ""


def _kept(value):
    if isinstance(value, Promise):
        value = note_of_label(value)
    parsed = _parse(value)
    if parsed is not None:
        return parsed
    return value if isinstance(value, int) else cut(str(value), _VALUE_CHARS)


def _parse(stored):
    if not isinstance(stored, str) or not stored.startswith((_START, '[{"msgid"', '["')):
        return None
    try:
        return json.loads(stored)
    except ValueError:
        return None


def _render(part):
    if isinstance(part, list):
        return "\n".join(_render(line) for line in part)
    if not isinstance(part, dict) or not isinstance(part.get("msgid"), str):
        return str(part)
    values = {name: _render(value) if isinstance(value, (dict, list)) else value for name, value in (part.get("values") or {}).items()}
    text = gettext(part["msgid"])
    if not values:
        return text
    try:
        return text % values
    except (KeyError, TypeError, ValueError):
        # A translation whose placeholders do not fit falls back to the English it was made from.
        return part["msgid"] % values


def read(stored):
    """A stored message in the active language; plain text as it is."""
    parsed = _parse(stored)
    return stored if parsed is None else _render(parsed)


def read_in_english(stored):
    """For readers that are programs (webhook payloads, logs): the English words."""
    with translation.override("en"):
        return read(stored)


def note_of_label(label):
    """A lazy label (a model choice's) as a note: its English msgid, whatever language is active while it is written."""
    with translation.override("en"):
        return note(str(label))
