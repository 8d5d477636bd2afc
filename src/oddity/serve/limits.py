"""Limits and access control of the service: settings, API key, body size, admission.

- `ApiKeyGate` (ASGI middleware): with a key set, every route except `/v2/health/*` and the
  browser UI's static files needs the header `X-API-Key` (401 when missing, 403 when wrong;
  compared in constant time). The UI's files hold no data; the UI sends the key itself.
- `BodyLimit` (ASGI middleware): refuses a body larger than the upload limit with 413, from
  its `Content-Length` before reading, or while reading a body sent without one.
- `Admission`: at most `workers + queue` requests scoring at once; the next one is answered
  503 with `Retry-After` at once instead of waiting without bound.
"""
from __future__ import annotations

import hmac
import json
import threading
from typing import Any, Awaitable, Callable

from starlette.exceptions import HTTPException

from oddity.serve.errors import Refusal

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

API_KEY_HEADER = "x-api-key"
OPEN_PREFIXES = ("/v2/health/", "/ui/")
OPEN_PATHS = ("/", "/favicon.ico")


async def send_refusal(send: Send, refusal: Refusal) -> None:
    """Answer an ASGI request with the refusal's JSON body.

    Parameters
    ----------
    send : callable
        The ASGI send channel.
    refusal : Refusal
        Status, body and extra headers of the answer.
    """
    body = json.dumps(refusal.body()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in refusal.headers.items()]
    await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value
    return None


class ApiKeyGate:
    """ASGI middleware: the API key check (see module docstring).

    Parameters
    ----------
    app : callable
        The ASGI app behind the gate.
    api_key : str or None
        The key; None or empty lets every request through.
    """

    def __init__(self, app: ASGIApp, api_key: str | None):
        self.app, self.key = app, api_key.encode() if api_key else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (scope["type"] != "http" or self.key is None or path in OPEN_PATHS
                or path.startswith(OPEN_PREFIXES)):
            await self.app(scope, receive, send)
            return
        given = _header(scope, API_KEY_HEADER.encode())
        if given is None:
            await send_refusal(send, Refusal(401, "missing_api_key",
                                             "this service needs an API key: send it in the X-API-Key header"))
        elif not hmac.compare_digest(given, self.key):
            await send_refusal(send, Refusal(403, "wrong_api_key", "X-API-Key: wrong API key"))
        else:
            await self.app(scope, receive, send)


def body_too_large(limit: int) -> Refusal:
    """The refusal of a body above the upload limit.

    Parameters
    ----------
    limit : int
        Upload limit in bytes, quoted in the message.

    Returns
    -------
    Refusal
        413 ``body_too_large``.
    """
    return Refusal(413, "body_too_large", f"request body larger than the limit of {limit} bytes; "
                   "send fewer or smaller images, or raise --max-upload-mb")


class BodyTooLarge(HTTPException):
    """Raised while reading a body that passes the upload limit (an HTTPException, so that
    the framework's body parsing passes it on to the error handler unchanged).

    Parameters
    ----------
    limit : int
        Upload limit in bytes, quoted in the message.
    """

    def __init__(self, limit: int):
        super().__init__(413, detail=body_too_large(limit).message)


class BodyLimit:
    """ASGI middleware: the upload size limit (see module docstring).

    Parameters
    ----------
    app : callable
        The ASGI app behind the limit.
    limit : int
        Largest request body in bytes.
    """

    def __init__(self, app: ASGIApp, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await send_refusal(send, body_too_large(self.limit))
            return
        received = 0

        async def limited() -> dict[str, Any]:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        await self.app(scope, limited, send)


class Admission:
    """Counts requests in scoring; refuses the one past `capacity` (see module docstring).

    Used as a context manager around scoring; entering past `capacity` raises a 503
    `Refusal` with a `Retry-After` header.

    Parameters
    ----------
    capacity : int
        Most requests in scoring at once.
    retry_after_s : int
        Seconds the refusal asks the client to wait.
    """

    def __init__(self, capacity: int, retry_after_s: int):
        self.capacity, self.retry_after_s = capacity, retry_after_s
        self.active = 0
        self._lock = threading.Lock()

    def __enter__(self) -> "Admission":
        with self._lock:
            if self.active >= self.capacity:
                raise Refusal(503, "busy", f"the service is busy ({self.active} requests in progress); "
                              f"retry in {self.retry_after_s} s",
                              headers={"Retry-After": str(self.retry_after_s)})
            self.active += 1
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.active -= 1
