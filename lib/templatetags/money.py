"""Template filters for money: ``{% load money %}{{ amount|usd }}`` shows "$1,234.50"."""

from django import template

from lib import money

register = template.Library()
register.filter("usd", money.usd)
register.filter("exact_usd", money.exact_usd)
register.filter("multiplier", money.multiplier)
