"""Find English a person would read on a page that should be in Chinese.

What is not translated on purpose is left out: code, key ids and other machine text
(``<code>``, ``<pre>``, ``.mono``, ``translate="no"``), names (models, products, the
reseller's customers in the tests' seed data) and the technical words every Chinese panel
keeps in Latin letters (Token, API, Webhook, CSV...).
"""

import re
from html.parser import HTMLParser

from django.utils import translation
from django.utils.translation import gettext

# Words that stay in Latin letters in our Chinese text (see docs/translation-glossary.md).
KEPT_WORDS = {
    "derouter", "openai", "anthropic", "sdk", "api", "csv", "pdf", "utc", "usd", "token", "tokens", "webhook",
    "webhooks", "python", "shell", "curl", "claude", "code", "codex", "cli", "http", "https", "json", "huey",
    "stripe", "logo", "url", "id", "base", "cloudflare", "png", "jpeg", "webp", "svg", "google", "authenticator",
    "aegis", "password", "django", "qr", "rpm", "min", "ai", "acme", "sk", "ant", "pts", "rgb", "html", "javascript",
    "sonnet", "opus", "haiku", "gpt", "image", "put", "post", "get", "delete", "run_huey", "manage", "py",
    "check_upstream", "reconcile", "olivia", "sam", "tara", "credits", "payment", "element", "card", "visa",
}
# Text of the tests' seed data (key labels, notes, addresses), shown as the user typed it.
SEED_TEXT = (
    "Survey Customer Ltd", "Former Customer", "Nearly Empty Co", "Launch week", "Billing", "Survey shop",
    "Survey second key", "INV-A11Y", "INV-1", "derouter did not answer the delete", "Starter",
)
SKIPPED_TAGS = {"script", "style", "code", "pre", "kbd", "samp", "textarea", "template"}
# data-label: a phone shows it as the cell's column name.
READ_ATTRIBUTES = ("aria-label", "title", "placeholder", "alt", "data-label")
ENGLISH_RUN = re.compile(r"[A-Za-z][A-Za-z'’-]+(?:[ ,;:]+[A-Za-z][A-Za-z'’-]+)+")


class _Reader(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.skipping = []  # the tags whose text is skipped, innermost last
        self.texts = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        classes = (attributes.get("class") or "").split()
        if tag in {"br", "img", "input", "meta", "link", "hr", "source", "wbr"}:
            self._read_attributes(attributes)
            return
        skip = tag in SKIPPED_TAGS or "mono" in classes or attributes.get("translate") == "no"
        self.skipping.append(skip)
        if not any(self.skipping):
            self._read_attributes(attributes)

    def handle_endtag(self, tag):
        if tag in {"br", "img", "input", "meta", "link", "hr", "source", "wbr"}:
            return
        if self.skipping:
            self.skipping.pop()

    def handle_data(self, data):
        if not any(self.skipping) and data.strip():
            self.texts.append(data.strip())

    def _read_attributes(self, attributes):
        for name in READ_ATTRIBUTES:
            if attributes.get(name):
                self.texts.append(attributes[name])


def _english_runs(text, names=()):
    for seed in (*SEED_TEXT, *names):
        text = text.replace(seed, " ")
    text = re.sub(r"https?://\S+|\S+@\S+|\b[\w.-]+\.(?:com|ai|cloud|example)\S*", " ", text)
    for run in ENGLISH_RUN.findall(text):
        words = [word.lower().strip("'’-") for word in re.split(r"[ ,;:]+", run) if word]
        if len([word for word in words if word not in KEPT_WORDS and len(word) > 1]) >= 2:
            yield run


# A language's own name in the language menu ("English" on a Chinese page) is meant.
LANGUAGE_NAMES = {"English"}


def _is_untranslated_msgid(text, language, names=()):
    """A whole text that is one of our English msgids, which the page's language translates: one word is enough."""
    if text in SEED_TEXT or text in LANGUAGE_NAMES or text in names:
        return False
    with translation.override(language):
        return gettext(text) != text


def find_untranslated(html, language="zh-hans", names=()):
    """The texts of the page (and the labels of its controls) that still read as English.

    Runs of two English words or more; and any whole text, a single word too ("Edit", a phone's
    column name), that is a msgid the page's language (its <html lang>, else ``language``) translates.
    ``names``: more text people typed (the labels of keys other tests made in a shared simulator).
    """
    lang = re.search(r'<html lang="([^"]+)"', html)
    language = lang.group(1).lower() if lang else language
    body = html[html.find("<body"):] if "<body" in html else html
    reader = _Reader()
    reader.feed(body)
    found = []
    for text in reader.texts:
        found.extend(_english_runs(text, names))
        if language != "en" and _is_untranslated_msgid(" ".join(text.split()), language, names):
            found.append(text)
    return sorted(set(found))

