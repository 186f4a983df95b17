"""Fetching the next page of a long walk while the caller works on the current one.

Storing or writing a page and fetching the next wait on different things (our database
or file, the upstream), so doing them at once makes a long walk run at about the speed
of the upstream's paging. Only background work (the Huey worker, management commands)
asks ahead: one helper thread that does nothing but call ``fetch``, never a database
query. A web request fetches in line.
"""

import queue
import threading
from concurrent.futures import Future


class PagesAhead:
    """``get(page)`` returns ``fetch(page)``; ``ask_for(page)`` starts fetching a page needed later.

    Pages asked for are fetched one after the other, in the order asked, by one helper
    thread; a walk that knows it needs several (a first sync) asks for a few ahead, so
    they arrive while it writes a batch. The helper starts with the walk, before any page
    is fetched: started when the first pages are asked for, it waited for the interpreter
    lock behind the walk, a millisecond or more of a short sync. Use as a context manager
    so the thread ends with the walk. With ``enabled`` off it fetches in line and
    ``ask_for`` does nothing.
    """

    def __init__(self, fetch, enabled=True, lazy=False):
        self._fetch = fetch
        self._ahead = {}
        self._asked = queue.SimpleQueue()
        self._enabled = enabled
        self._helper = None
        if enabled and not lazy:
            self._start()

    def _start(self):
        self._helper = threading.Thread(target=self._fetch_asked, name="page-ahead", daemon=True)
        self._helper.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        if self._helper is not None:
            for ahead in self._ahead.values():
                ahead.cancel()
            self._asked.put(None)
            self._helper.join()

    def _fetch_asked(self):
        while (asked := self._asked.get()) is not None:
            page, ahead = asked
            if not ahead.set_running_or_notify_cancel():
                continue
            try:
                ahead.set_result(self._fetch(page))
            except BaseException as error:  # raised in the walk, by get()
                ahead.set_exception(error)

    def get(self, page):
        ahead = self._ahead.pop(page, None)
        if ahead is not None:
            return ahead.result()
        return self._fetch(page)

    def ask_for(self, *pages):
        if not self._enabled or not pages:
            return
        if self._helper is None:
            self._start()
        for page in pages:
            if page not in self._ahead:
                self._ahead[page] = ahead = Future()
                self._asked.put((page, ahead))
