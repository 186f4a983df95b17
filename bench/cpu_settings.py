"""bench/run's settings: production's (config.settings), and each response says the CPU time it took.

A page's own time measured by the wall clock moves with everything else the machine runs
(on a shared two-core machine, by ±0.5x from round to round). The CPU time of the thread
that answered does not: it counts only that request's own work, whatever else runs. The
header is added here only, never in production.
"""

import time

from config.settings import *  # noqa: F403

CPU_TIME_HEADER = "X-Bench-CPU-ms"


class CpuTimeMiddleware:
    """Outermost: the thread's CPU time from the request's arrival to its response, every middleware included."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.thread_time()
        response = self.get_response(request)
        response[CPU_TIME_HEADER] = f"{(time.thread_time() - started) * 1000:.3f}"
        return response


MIDDLEWARE = ["bench.cpu_settings.CpuTimeMiddleware", *MIDDLEWARE]  # noqa: F405
