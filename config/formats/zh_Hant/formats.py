"""Django's zh_Hant formats, but numbers grouped by thousands with a comma, as Chinese consoles and bills show them.

Django's own zh formats group none (37265904), while every amount here is grouped ($1,292.00).
"""

from django.conf.locale.zh_Hant.formats import *  # noqa: F403

THOUSAND_SEPARATOR = ","
NUMBER_GROUPING = 3
