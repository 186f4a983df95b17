"""Fetching the next pages of a long walk while the caller works on the current one.

Storing or writing a page and fetching the next wait on different things (our database
or file, the upstream), so doing them at once makes a long walk run at about the speed
of the upstream's paging. Only background work (the Huey worker, management commands)
asks ahead: helper threads that do nothing but call ``fetch``, never a database query.
A web request fetches in line.
"""

import queue
import threading
from concurrent.futures import Future


class PagesAhead:
    """``get(page)`` returns ``fetch(page)``; ``ask_for(page)`` starts fetching a page needed later.

    Pages asked for are fetched in the order asked, ``in_flight`` at a time (with two, the
    upstream prepares one page while we read the other); a walk that knows it needs several
    (a first sync) asks for a few ahead, so they arrive while it writes a batch. The helper
    threads start with the walk, before any page is fetched (started later, each would wait
    for the interpreter lock behind a page being read). Use as a context manager so they
    end with the walk. With ``enabled`` off it fetches in line and ``ask_for`` does nothing.
    """

    def __init__(self, fetch, enabled=True, in_flight=1):
        self._fetch = fetch
        self._ahead = {}
        self._asked = queue.SimpleQueue()
        self._helpers = [
            threading.Thread(target=self._fetch_asked, name=f"page-ahead-{number}", daemon=True)
            for number in range(in_flight if enabled else 0)
        ]
        for helper in self._helpers:
            helper.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        for ahead in self._ahead.values():
            ahead.cancel()
        for _ in self._helpers:
            self._asked.put(None)
        for helper in self._helpers:
            helper.join()

    def _fetch_asked(self):
        while (asked := self._asked.get()) is not None:
            page, ahead = asked
            if not ahead.set_running_or_notify_cancel():
                continue
            try:
                ahead.set_result(self._fetch(page))
            except BaseException as error:  # handed to the walk, which raises it from get()
                ahead.set_exception(error)

    def get(self, page):
        ahead = self._ahead.pop(page, None)
        if ahead is not None:
            return ahead.result()
        return self._fetch(page)

    def ask_for(self, *pages):
        if not self._helpers:
            return
        for page in pages:
            if page not in self._ahead:
                self._ahead[page] = ahead = Future()
                self._asked.put((page, ahead))
