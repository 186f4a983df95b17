"""Fetching the next page of a long walk while the caller works on the current one.

Storing or writing a page and fetching the next wait on different things (our database
or file, the upstream), so doing them at once makes a long walk run at about the speed
of the upstream's paging. Only background work (the Huey worker, management commands)
asks ahead: one helper thread that does nothing but call ``fetch``, never a database
query. A web request fetches in line.
"""

from concurrent.futures import ThreadPoolExecutor


class PagesAhead:
    """``get(page)`` returns ``fetch(page)``; ``ask_for(page)`` starts fetching a page needed later.

    Pages asked for are fetched one after the other, in the order asked, by one helper
    thread; a walk that knows it needs several (a first sync) asks for a few ahead, so
    they arrive while it writes a batch. Use as a context manager so the thread ends with
    the walk. With ``enabled`` off it fetches in line and ``ask_for`` does nothing.
    """

    def __init__(self, fetch, enabled=True):
        self._fetch = fetch
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="page-ahead") if enabled else None
        self._ahead = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)

    def get(self, page):
        ahead = self._ahead.pop(page, None)
        if ahead is not None:
            return ahead.result()
        return self._fetch(page)

    def ask_for(self, *pages):
        if self._executor is None:
            return
        for page in pages:
            if page not in self._ahead:
                self._ahead[page] = self._executor.submit(self._fetch, page)
