"""The translation catalogs are complete: every string of the code is in them, translated, nothing fuzzy."""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import translation

ROOT = Path(__file__).resolve().parent.parent
CATALOG_LANGUAGES = [translation.to_locale(code) for code, _name in settings.LANGUAGES if code != "en"]
DOMAINS = ("django", "djangojs")
# What makemessages reads: everything but third-party code, the tests and the benchmarks (bin/make-messages).
NOT_SOURCE = (".venv", ".git", "node_modules", "bench", "tests", "staticfiles", "locale", "__pycache__")


def _unquote(line):
    return ast.literal_eval(line[line.index('"'):])


def read_catalog(path):
    """{(context, msgid): (translations, is_fuzzy)} of a .po file; the header entry left out."""
    entries = {}
    entry, field, fuzzy = {}, None, False

    def finish():
        if "msgid" in entry and entry["msgid"]:
            translations = [value for key, value in entry.items() if key.startswith("msgstr")]
            entries[(entry.get("msgctxt"), entry["msgid"])] = (translations, fuzzy)

    for raw in path.read_text(encoding="utf-8").splitlines() + [""]:
        line = raw.strip()
        if not line:
            finish()
            entry, field, fuzzy = {}, None, False
        elif line.startswith("#,"):
            fuzzy = fuzzy or "fuzzy" in line
        elif line.startswith("#"):
            continue
        elif line.startswith('"'):
            entry[field] += _unquote(line)
        else:
            field = line.split(" ", 1)[0]
            entry[field] = _unquote(line)
    return entries


@pytest.mark.parametrize("language", CATALOG_LANGUAGES)
@pytest.mark.parametrize("domain", DOMAINS)
def test_every_entry_of_the_catalog_is_translated_and_none_is_fuzzy(language, domain):
    catalog = read_catalog(ROOT / "locale" / language / "LC_MESSAGES" / f"{domain}.po")
    assert catalog, "the catalog is empty"
    untranslated = [msgid for (_context, msgid), (translations, _fuzzy) in catalog.items() if not all(translations)]
    fuzzy = [msgid for (_context, msgid), (_translations, is_fuzzy) in catalog.items() if is_fuzzy]
    assert untranslated == [], f"{len(untranslated)} untranslated in {language}/{domain}.po"
    assert fuzzy == [], f"{len(fuzzy)} fuzzy in {language}/{domain}.po"


def test_the_catalogs_hold_every_string_of_the_code(tmp_path):
    """makemessages on the code finds nothing the committed catalogs lack (run bin/make-messages, then translate)."""
    copy = tmp_path / "project"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(*NOT_SOURCE), symlinks=True)
    for domain in DOMAINS:
        subprocess.run(
            [sys.executable, "manage.py", "makemessages", "-d", domain, "--no-obsolete", "-i", "static/vendor",
             *[argument for language in CATALOG_LANGUAGES for argument in ("-l", language)]],
            cwd=copy, env={"PATH": "/usr/bin:/bin", "DEBUG": "true"}, check=True, capture_output=True,
        )
    for language in CATALOG_LANGUAGES:
        for domain in DOMAINS:
            fresh = read_catalog(copy / "locale" / language / "LC_MESSAGES" / f"{domain}.po")
            committed = read_catalog(ROOT / "locale" / language / "LC_MESSAGES" / f"{domain}.po")
            missing = sorted(msgid for _context, msgid in fresh.keys() - committed.keys())
            assert missing == [], f"{language}/{domain}.po lacks {len(missing)} strings, e.g. {missing[:5]}"


def test_the_catalog_reader_sees_untranslated_plural_and_fuzzy_entries(tmp_path):
    po = tmp_path / "django.po"
    po.write_text(
        'msgid ""\nmsgstr "Plural-Forms: nplurals=1;"\n\n'
        'msgid "Budget"\nmsgstr "预算"\n\n'
        '#, fuzzy\nmsgid "Spent"\nmsgstr "已用"\n\n'
        'msgid "%(count)s key"\nmsgid_plural "%(count)s keys"\nmsgstr[0] ""\n\n'
        'msgctxt "verb"\nmsgid "Top "\n"up"\nmsgstr "充值"\n',
        encoding="utf-8",
    )
    catalog = read_catalog(po)
    assert catalog[(None, "Budget")] == (["预算"], False)
    assert catalog[(None, "Spent")] == (["已用"], True)
    assert catalog[(None, "%(count)s key")] == ([""], False)
    assert catalog[("verb", "Top up")] == (["充值"], False)
