"""Admission of requests: a bounded queue for the endpoints that compute (503 with Retry-After when full) and
caps on request bodies while they stream in (413)."""

import json
from collections.abc import Mapping, Sequence

MULTIPART_OVERHEAD_BYTES = 64 * 2**10
"""Room for multipart boundaries, headers and form fields on top of the files of an upload."""


class BodyLimit:
    """ASGI middleware capping request bodies per path while they stream in.

    A declared Content-Length over the cap is answered 413 before any byte is read; a body without one
    (chunked) is counted as it arrives: at the cap the client gets 413, the app sees a disconnect, and
    nothing more is read or spooled.

    Args:
      app: the ASGI app.
      caps: path -> largest body in bytes; other paths are not capped here.
      hints: path -> what the route accepts, appended to its 413 message (e.g. the file count and sizes).
    """

    def __init__(self, app, caps: Mapping[str, int], hints: Mapping[str, str] | None = None):
        self.app, self.caps, self.hints = app, dict(caps), dict(hints or {})

    async def __call__(self, scope, receive, send):
        cap = self.caps.get(scope.get("path", "")) if scope["type"] == "http" else None
        hint = self.hints.get(scope.get("path", ""), "")
        if cap is None:
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > cap:
            return await _send_413(send, cap, hint)
        state = {"received": 0, "refused": False}

        async def counted_receive():
            if state["refused"]:
                return {"type": "http.disconnect"}
            message = await receive()
            state["received"] += len(message.get("body", b""))
            if state["received"] > cap:
                state["refused"] = True
                await _send_413(send, cap, hint)
                return {"type": "http.disconnect"}
            return message

        async def guarded_send(message):
            if not state["refused"]:
                await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not state["refused"]:
                raise


async def _send_413(send, cap: int, hint: str = "") -> None:
    detail = f"request too large: over the {cap} byte limit of this route" + (f" ({hint})" if hint else "")
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def add_bounded_queue(app, gated_paths: Sequence[str], max_pending: int) -> None:
    """Admits at most `max_pending` requests to paths starting with one of `gated_paths` at once (running or
    waiting); the rest get 503 with Retry-After, so overload degrades instead of piling up."""
    from fastapi.responses import JSONResponse

    pending = {"count": 0}

    @app.middleware("http")
    async def bounded_queue(request, call_next):
        if not request.url.path.startswith(tuple(gated_paths)):
            return await call_next(request)
        if pending["count"] >= max_pending:
            return JSONResponse(
                {"detail": "server busy: too many requests in progress, retry shortly"},
                status_code=503,
                headers={"Retry-After": "1"},
            )
        pending["count"] += 1
        try:
            return await call_next(request)
        finally:
            pending["count"] -= 1
