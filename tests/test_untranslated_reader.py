"""The scan for English left on Chinese pages (tests/untranslated.py) sees what a person reads, not code or data."""

from tests.untranslated import find_untranslated



def test_the_reader_finds_english_and_leaves_kept_words_code_and_data():
    html = (
        '<body><p>已用 <strong>Top up</strong> 余额</p><code>python manage.py run_huey</code>'
        '<span class="mono">sk-ant-abc</span><p>Token 数 API</p><p>Survey Customer Ltd</p>'
        '<button aria-label="Close the dialog">×</button><p translate="no">Keep this English</p></body>'
    )
    assert find_untranslated(html) == ["Close the dialog", "Top up"]


def test_the_reader_finds_a_single_word_that_our_catalog_translates():
    html = '<html lang="zh-Hans"><body><table><tr><td data-label="Requests">3</td><td>Edit</td><td>deepseek-v3</td></tr></table></body></html>'
    assert find_untranslated(html) == ["Edit", "Requests"]
