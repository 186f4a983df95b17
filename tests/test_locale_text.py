"""Text on Chinese pages: rows built in Python speak the page's language, cuts keep whole characters, CJK faces."""

import datetime
import re
from decimal import Decimal

import pytest
from django.template import Context, Template
from django.test import Client
from django.utils import translation
from django.utils.translation import gettext

from dashboard.log_rows import render_rows
from lib.text import cut
from tests.helpers import ROOT
from tests.untranslated import find_untranslated


def _log(**key):
    row = dict(
        created_at=datetime.datetime(2026, 11, 3, 10, 0, tzinfo=datetime.UTC), model="claude-sonnet-4-6", input_tokens=12_345,
        output_tokens=980, cache_read_tokens=0, cache_write_tokens=0, cost=Decimal("1234.5"), billed=Decimal("2469"),
        multiplier=Decimal(2), duration_ms=2100, request_id="req_1", key=None, key__sub_key_id=None, key__label=None,
        key__key_id_short=None, key__deleted_at=None,
    )
    row.update(key)
    return row


def test_log_rows_name_the_account_key_and_a_deleted_key_in_the_pages_language():
    rows = [_log(), _log(key=7, key__sub_key_id="k7", key__label="", key__key_id_short="sk-ant-…abcd",
                         key__deleted_at=datetime.datetime(2026, 11, 4, tzinfo=datetime.UTC))]
    with translation.override("zh-hans"):
        html = render_rows(rows, show_margins=True)
    assert '<span class="muted">主密钥</span>' in html and '<span class="badge">已删除</span>' in html
    assert find_untranslated(f"<body><table>{html}</table></body>") == []
    # Money with thousands separators and the figures' own units, as in English.
    assert "$1,234.500000" in html and "12,345" in html


def test_a_cut_keeps_whole_characters():
    assert cut("预算不足", 2) == "预算"
    assert cut("cafe\u0301 ok", 4) == "caf"  # the accent is not left behind without its letter
    assert cut("x👩\u200d💻", 3) == "x"  # nor half of an emoji sequence
    assert cut("👍🏽", 1) == ""
    assert cut("short", 200) == "short"


def test_chinese_pages_name_cjk_faces_for_each_script():
    css = (ROOT / "static" / "css" / "app.css").read_text()
    simplified = re.search(r'body:lang\(zh-Hans\)[^{]*\{([^}]*)\}', css)
    traditional = re.search(r'body:lang\(zh-Hant\)[^{]*\{([^}]*)\}', css)
    assert simplified and "PingFang SC" in simplified.group(1) and "Microsoft YaHei" in simplified.group(1)
    assert traditional and "PingFang TC" in traditional.group(1) and "Microsoft JhengHei" in traditional.group(1)



def test_chinese_pages_group_counts_by_thousands_as_they_group_money():
    counts = Template("{% load humanize %}{{ tokens|intcomma }}")
    for language in ("zh-hans", "zh-hant", "en"):
        with translation.override(language):
            assert counts.render(Context({"tokens": 37265904})) == "37,265,904"


@pytest.mark.django_db
def test_the_portals_usage_table_names_its_columns_on_a_phone_in_the_customers_language(make_key, sync_mirror):
    created = make_key("1", label="Phone customer")
    sync_mirror()
    customer = Client()
    customer.post("/portal/login/", {"client_key": created.secret.reveal()})
    page = customer.get("/portal/", HTTP_ACCEPT_LANGUAGE="zh-CN").content.decode()
    with translation.override("zh-hans"):
        labels = [gettext(name) for name in ("Requests", "Input tokens", "Output tokens", "Total tokens", "Cost")]
    for label in labels:
        assert f'data-label="{label}"' in page
    assert 'data-label="Requests"' not in page
