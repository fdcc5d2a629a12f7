"""Loopback receivers for apprise: an HTTP endpoint (`json://`) and an SMTP server
(`mailto://`). `make run` uses them so a newcomer can read every message the demo
sends; the tests use them to count what was delivered."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes
from email.policy import default as email_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class Received:
    channel: str  # http | smtp
    to: str  # the HTTP path or the mail recipient
    title: str
    body: str
    at: str = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc).isoformat())


class Inbox:
    """Everything received, in order; optionally appended to a log file."""

    def __init__(self, log_file: Path | None = None):
        self._lock = threading.Lock()
        self.messages: list[Received] = []
        self.log_file = log_file
        if log_file:
            log_file.parent.mkdir(parents=True, exist_ok=True)

    def add(self, message: Received) -> None:
        with self._lock:
            self.messages.append(message)
            if self.log_file:
                with self.log_file.open("a", encoding="utf-8") as fh:
                    fh.write(
                        f"===== {message.at} {message.channel} -> {message.to}\n"
                        f"{message.title}\n\n{message.body.rstrip()}\n\n"
                    )

    def matching(self, text: str) -> list[Received]:
        with self._lock:
            return [m for m in self.messages if text in m.title or text in m.body]

    def wait_for(self, predicate, timeout: float = 30.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                found = [m for m in self.messages if predicate(m)]
            if found:
                return found
            time.sleep(0.1)
        return []


class HttpReceiver:
    """Accepts apprise `json://` posts. `fail_with` makes it answer an error status."""

    def __init__(self, inbox: Inbox, port: int = 0):
        self.inbox, self.fail_with = inbox, None
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                if receiver.fail_with:
                    self.send_response(receiver.fail_with)
                    self.end_headers()
                    return
                try:
                    payload = json.loads(raw)
                except ValueError:
                    payload = {"title": "", "message": raw.decode("utf-8", "replace")}
                receiver.inbox.add(
                    Received("http", self.path.split("?")[0], payload.get("title", ""), payload.get("message", ""))
                )
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> HttpReceiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class SmtpReceiver:
    def __init__(self, inbox: Inbox, port: int = 0):
        from aiosmtpd.controller import Controller

        receiver = self
        self.inbox = inbox

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802
                message = message_from_bytes(envelope.content, policy=email_policy)
                part = message.get_body(("plain",))
                body = part.get_content() if part is not None else ""
                for rcpt in envelope.rcpt_tos:
                    receiver.inbox.add(Received("smtp", rcpt, str(message.get("subject", "")), body))
                return "250 OK"

        if port == 0:
            port = _free_port()
        self.port = port
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=port)

    def start(self) -> SmtpReceiver:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_forever(directory: Path, *, http_port: int, smtp_port: int) -> None:
    inbox = Inbox(directory / "messages.log")
    http = HttpReceiver(inbox, http_port).start()
    smtp = SmtpReceiver(inbox, smtp_port).start()
    print(f"inbox: http://127.0.0.1:{http.port}/ and smtp 127.0.0.1:{smtp.port} -> {inbox.log_file}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        http.stop()
        smtp.stop()
