"""Cutting text to a column's length without breaking what a reader sees as one character."""

import unicodedata

# Joiners and selectors that belong to the character before them (emoji sequences, variation forms).
_JOINING = {"\u200d", "\ufe0e", "\ufe0f"}


def _belongs_to_previous(character):
    return unicodedata.combining(character) or character in _JOINING or 0x1F3FB <= ord(character) <= 0x1F3FF


def cut(text, limit):
    """``text`` at most ``limit`` characters long, ending before a mark, joiner or modifier cut off from its character.

    Python slices by code point, so a cut never splits a surrogate pair; it could still leave an
    accent without its letter's sequence complete or half an emoji sequence (👩‍💻): the cut moves back
    to the start of that sequence.
    """
    if len(text) <= limit:
        return text
    end = limit
    while end > 0 and (_belongs_to_previous(text[end]) or text[end - 1] == "\u200d"):
        end -= 1
    return text[:end]
