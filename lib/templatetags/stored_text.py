"""{{ row.message|stored_text }}: a message the worker or a service stored, in the reader's language."""

from django import template

from lib import stored_text as stored

register = template.Library()


@register.filter(name="stored_text")
def stored_text(value):
    return stored.read(value) if value else value
