"""A real webhook receiver for tests: an HTTP server on 127.0.0.1 (port 0) in a thread that records every
POST and answers from a script (``statuses``: one status per request, then ``default``)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Receiver:
    url: str
    statuses: list[int] = field(default_factory=list)
    default: int = 200
    robot: bool = False
    posts: list[tuple[str, Any]] = field(default_factory=list)  # (path with query, JSON body)
    answered: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def bodies(self) -> list[Any]:
        with self.lock:
            return [body for _, body in self.posts]

    def delivered(self) -> list[Any]:
        """Bodies of the POSTs answered 2xx."""
        with self.lock:
            return [body for (_, body), status in zip(self.posts, self.answered, strict=True) if status < 300]


@contextmanager
def webhook_receiver(**options: Any) -> Iterator[Receiver]:
    receiver = Receiver(url="", **options)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length))
            with receiver.lock:
                status = receiver.statuses.pop(0) if receiver.statuses else receiver.default
                receiver.posts.append((self.path, body))
                receiver.answered.append(status)
            answer = json.dumps({"errcode": 0, "errmsg": "ok"} if receiver.robot else {"ok": True}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook?access_token=tok-SECRET-123"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
