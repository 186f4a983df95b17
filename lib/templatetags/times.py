"""``{% load times %}``: ``row_date``, Django's ``date`` filter made quicker for table rows (lib/times.py)."""

from django import template

from lib import times

register = template.Library()
register.filter("row_date", times.row_date, expects_localtime=True, is_safe=False)
