"""Template filters for money, counts and durations; the policy is in lib/money.py."""

from django import template

from lib import money

register = template.Library()
register.filter("usd", money.usd)
register.filter("exact_usd", money.exact_usd)
register.filter("usd_cost", money.usd_cost)
register.filter("money", money.money)
register.filter("multiplier", money.multiplier)
register.filter("count", money.count)
register.filter("duration", money.duration)
register.filter("in_unit", money.in_unit)
register.filter("money_in_unit", money.money_in_unit)
register.filter("cost_in_unit", money.cost_in_unit)
register.filter("exact_in_unit", money.exact_in_unit)
register.filter("model_cell", money.model_cell)
