"""A tiny webhook receiver for tests: an http.server on a free loopback port, in a thread."""

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict
    body: bytes


@dataclass
class Receiver:
    url: str
    requests: list = field(default_factory=list)
    statuses: list = field(default_factory=list)

    def answer_with(self, *statuses):
        """Answer the next requests with these statuses (then 200)."""
        self.statuses.extend(statuses)

    def of_type(self, event_type):
        return [item for item in self.requests if item.headers.get("X-Derouter-Event") == event_type]


def start_receiver():
    """(receiver, server): call server.shutdown() and server.server_close() when done."""
    holder = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length", 0))
            receiver = holder["receiver"]
            receiver.requests.append(Received(self.path, dict(self.headers.items()), self.rfile.read(length)))
            status = receiver.statuses.pop(0) if receiver.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder["receiver"] = Receiver(f"http://127.0.0.1:{server.server_address[1]}/hooks/derouter")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return holder["receiver"], server
