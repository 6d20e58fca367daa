"""What BentoML's request parsing would answer with a 5xx, or read whole into memory: refused first.

BentoML (1.4.40, ``_bentoml_impl/server/app.py`` ``api_endpoint``) picks the body's
parser from the Content-Type: any type it does not know is parsed as JSON,
``multipart/form-data`` and ``application/x-www-form-urlencoded`` as a form (without
a boundary that raises, a 500), and it reads the whole body into memory before it
looks at it. Malformed JSON, non-UTF-8 bytes and deep nesting are already answered
400 by pydantic's parser there. This ASGI middleware, added with BentoML's public
``add_asgi_middleware``, answers before any of that:

- a body over ``DEMAND_SERVE_MAX_BODY_BYTES``: 413, from the Content-Length before
  reading, or while reading a chunked body (nothing more is read);
- a POST to an API route whose Content-Type is not JSON (missing, a form, or a
  charset other than UTF-8): 415.

Each answer is a JSON body ``{"error": "…"}`` naming the problem, as the service's
own 4xx answers are; Starlette's plain-text 404 and 405 (an unknown path, GET on
/forecast) are given one too.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import JSONResponse

from demand.settings import get_settings

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class RequestGuard:
    def __init__(self, app: Any, json_routes: Iterable[str]) -> None:
        self.app = app
        self.json_routes = frozenset(json_routes)
        # built when BentoML builds the app, in the serving process, not at import
        self.max_body_bytes = get_settings().serve_max_body_bytes

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        problem = self._declared_size(headers) or self._content_type(scope, headers)
        if problem:
            await JSONResponse({"error": problem[1]}, status_code=problem[0])(scope, receive, send)
            return
        messages, size = [], 0
        while True:  # the body, read here so that its size is known before BentoML reads it
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break  # the client went away: the app hears it as it would have
            size += len(message.get("body", b""))
            if size > self.max_body_bytes:
                await JSONResponse({"error": self._too_large()}, status_code=413)(
                    scope, receive, send
                )
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, _json_errors(scope, send))

    def _too_large(self) -> str:
        return (
            f"request body over {self.max_body_bytes} bytes (DEMAND_SERVE_MAX_BODY_BYTES): "
            "send fewer items per request"
        )

    def _declared_size(self, headers: Headers) -> tuple[int, str] | None:
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            return 413, self._too_large()
        return None  # a malformed Content-Length never gets here: the HTTP server answers 400

    def _content_type(self, scope: dict[str, Any], headers: Headers) -> tuple[int, str] | None:
        if scope["method"] != "POST" or scope["path"] not in self.json_routes:
            return None
        given = headers.get("content-type")
        if given is None:
            return 415, "no Content-Type: send the body as application/json"
        media, *params = (part.strip() for part in given.split(";"))
        if media.lower() != "application/json":
            return 415, f"Content-Type {media!r} is not accepted: send application/json"
        for param in params:
            name, _, value = param.partition("=")
            charset = value.strip().strip('"').lower()
            if name.strip().lower() == "charset" and charset not in ("utf-8", "utf8"):
                return 415, f"charset {charset!r} is not accepted: JSON is sent as UTF-8"
        return None


def _json_errors(scope: dict[str, Any], send: Send) -> Send:
    """``send``, with Starlette's plain-text 404 and 405 answered as JSON naming the route."""
    held: dict[str, Any] = {}

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start" and message["status"] in (404, 405):
            headers = MutableHeaders(raw=list(message["headers"]))
            if headers.get("content-type", "").startswith("text/plain"):
                held.update(start=message, headers=headers)
                return
        if "start" not in held or message["type"] != "http.response.body":
            await send(message)
            return
        # a plain-text error is one body message; it is replaced whole
        start, headers = held.pop("start"), held.pop("headers")
        route = f"{scope['method']} {scope['path']}"
        if start["status"] == 404:
            error = f"no such route: {route}"
        else:
            error = f"{route} is not allowed; allowed: {headers.get('allow', 'none')}"
        body = json.dumps({"error": error}).encode()
        headers["content-type"] = "application/json"
        headers["content-length"] = str(len(body))
        await send({**start, "headers": headers.raw})
        await send({"type": "http.response.body", "body": body})

    return wrapped
