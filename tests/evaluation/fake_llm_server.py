"""A stand-in LLM server on 127.0.0.1 for testing ``hf-scratch judge`` offline.

It speaks the two wire formats the judge uses:

- Ollama's ``POST /api/chat``: ``{"model", "messages", "stream", "options"}`` in, ``{"message": {"content"}}`` out
  (or, for :class:`Stream`, newline-delimited JSON chunks ending with ``"done": true``); errors as
  ``{"error": "..."}``.
- OpenAI's ``POST /v1/chat/completions``: ``{"model", "messages", "temperature", "seed", "max_tokens"}`` in,
  ``{"choices": [{"message": {"content"}}]}`` out; errors as ``{"error": {"message": ...}}``; with ``api_key``
  set, a request without ``Authorization: Bearer <key>`` gets a 401.

Each request takes the next behaviour of ``script``, then ``default``; either may be a callable that picks the
behaviour from the request body (to answer per prompt). Behaviours: :class:`Reply` (optionally after a delay),
:class:`Stream`, :class:`Status` (an HTTP error) and :class:`Die` (stop listening, drop the connection unanswered:
later connections are refused, as when a server process dies). Every request body is kept in ``requests``.
The server stops when the ``with`` block ends or after ``lifetime_s`` seconds.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    text: str
    delay: float = 0.0  # seconds before answering


@dataclass
class Stream:
    parts: list[str]  # Ollama only: one chunk per part


@dataclass
class Status:
    code: int
    message: str = "fake server error"


@dataclass
class Die:
    pass


Behaviour = Reply | Stream | Status | Die


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stopping must not wait for a handler still sleeping out a slow reply

    def handle_error(self, request, client_address):  # a client that gave up on a slow reply is expected
        pass


class FakeLLMServer:
    def __init__(self, script=(), default: Behaviour | Callable[[dict], Behaviour] | None = None, *,
                 port: int = 0, api_key: str | None = None, lifetime_s: float = 60.0):
        self.script = list(script)
        self.default = default if default is not None else Reply("50")
        self.port, self.api_key, self.lifetime_s = port, api_key, lifetime_s
        self.requests: list[dict] = []  # {"path", "authorization", "body"}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------------------------- life cycle
    def __enter__(self) -> FakeLLMServer:
        fake = self

        class Handler(_Handler):
            server_state = fake

        self.server = _Server(("127.0.0.1", self.port), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        self._timer = threading.Timer(self.lifetime_s, self.stop)  # a hung test cannot keep it alive
        self._timer.daemon = True
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self._timer.cancel()
        if self._thread.is_alive():
            self.server.shutdown()
        self.server.server_close()

    # ------------------------------------------------------------------------------------------- views
    @property
    def prompts(self) -> list[str]:
        return [request["body"]["messages"][-1]["content"] for request in self.requests]

    def _next(self, body: dict) -> Behaviour:
        with self._lock:
            behaviour = self.script.pop(0) if self.script else self.default
        return behaviour(body) if callable(behaviour) else behaviour


class _Handler(BaseHTTPRequestHandler):
    server_state: FakeLLMServer
    timeout = 30  # a stuck client connection cannot hold a thread forever
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep pytest output clean
        pass

    def _send(self, status: int, data: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        fake = self.server_state
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        with fake._lock:
            fake.requests.append({"path": self.path, "authorization": self.headers.get("Authorization"),
                                  "body": body})
        if self.path == "/api/chat":
            kind = "ollama"
        elif self.path in ("/v1/chat/completions", "/chat/completions"):
            kind = "openai"
            if fake.api_key is not None and self.headers.get("Authorization") != f"Bearer {fake.api_key}":
                return self._send(401, json.dumps({"error": {"message": "Incorrect API key provided"}}).encode())
        else:
            return self._send(404, json.dumps({"error": f"fake server: no endpoint {self.path}"}).encode())

        behaviour = fake._next(body)
        if isinstance(behaviour, Die):
            # Stop listening before dropping this connection, so the client's next try is refused.
            self.server.shutdown()
            self.server.socket.close()
            self.close_connection = True
            return
        if isinstance(behaviour, Status):
            error = {"error": behaviour.message} if kind == "ollama" else {"error": {"message": behaviour.message}}
            return self._send(behaviour.code, json.dumps(error).encode())
        if isinstance(behaviour, Stream):
            chunks = [{"model": body.get("model"), "message": {"role": "assistant", "content": part}, "done": False}
                      for part in behaviour.parts]
            chunks.append({"model": body.get("model"), "message": {"role": "assistant", "content": ""},
                           "done": True, "done_reason": "stop"})
            data = "".join(json.dumps(chunk) + "\n" for chunk in chunks).encode()
            return self._send(200, data, "application/x-ndjson")
        time.sleep(behaviour.delay)
        if kind == "ollama":
            reply = {"model": body.get("model"), "message": {"role": "assistant", "content": behaviour.text},
                     "done": True, "done_reason": "stop"}
        else:
            reply = {"id": "chatcmpl-fake", "object": "chat.completion", "model": body.get("model"),
                     "choices": [{"index": 0, "finish_reason": "stop",
                                  "message": {"role": "assistant", "content": behaviour.text}}]}
        self._send(200, json.dumps(reply).encode())
