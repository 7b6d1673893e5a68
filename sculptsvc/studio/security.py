"""Security of the Studio's pages: headers, CSRF, and who may act.

- Every response carries a Content-Security-Policy (scripts only from the Studio itself,
  plus the page's one inline import map by nonce; no CDN could load even if a page named
  one; WebAssembly compilation and inline styles are allowed for model-viewer),
  ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY`` and
  ``Referrer-Policy: same-origin`` (with ``no-referrer`` a browser sends ``Origin: null``
  on a form POST, which the CSRF check would refuse).
- CSRF: the double-submit cookie pattern (OWASP). A random token goes into an HttpOnly,
  SameSite=Strict cookie and into every form; a POST must bring both, equal, and a
  cross-site ``Origin`` is refused outright.
- Actions (replay, reproduce, send an order) need a token from ``SCULPT_STUDIO_TOKENS``;
  the matching *name* is what gets logged. The token itself is compared in constant time
  and never rendered, logged or echoed back.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sculptsvc.settings import Settings

CSRF_COOKIE = "sculpt_csrf"
CSRF_FIELD = "csrf"
TOKEN_FIELD = "token"
_TOKEN_BYTES = 32


def content_security_policy(nonce: str) -> str:
    return "; ".join(
        (
            "default-src 'none'",
            # model-viewer compiles its bundled meshopt decoder (WebAssembly) at load
            f"script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'",
            # model-viewer's shadow DOM template holds a <style>; CSS runs no script, and
            # img-src/connect-src below keep a url() in it from reaching another host
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' blob: data:",
            "connect-src 'self' blob: data:",
            "worker-src 'self' blob:",
            "form-action 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
        )
    )


class SecurityHeaders:
    """ASGI middleware: a CSP nonce and a CSRF token per request (``request.state``), the
    security headers on every response, and the CSRF cookie when the browser has none."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        nonce = secrets.token_urlsafe(16)
        cookie = Request(scope).cookies.get(CSRF_COOKIE, "")
        fresh = len(cookie) < _TOKEN_BYTES
        token = secrets.token_urlsafe(_TOKEN_BYTES) if fresh else cookie
        scope.setdefault("state", {}).update(csp_nonce=nonce, csrf_token=token)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                extra = {
                    b"content-security-policy": content_security_policy(nonce).encode(),
                    b"x-content-type-options": b"nosniff",
                    b"referrer-policy": b"same-origin",
                    b"x-frame-options": b"DENY",
                }
                headers += [(k, v) for k, v in extra.items() if k not in names]
                if fresh:
                    headers.append(
                        (
                            b"set-cookie",
                            f"{CSRF_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict".encode(),
                        )
                    )
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class Forbidden(Exception):
    """A POST that fails CSRF or token checks; the message is safe to show."""


def check_csrf(request: Request, form: FormData) -> None:
    origin = request.headers.get("origin")
    if origin and origin != f"{request.url.scheme}://{request.url.netloc}":
        raise Forbidden("cross-site request refused")
    cookie = request.cookies.get(CSRF_COOKIE, "")
    sent = str(form.get(CSRF_FIELD, ""))
    if not cookie or not hmac.compare_digest(cookie.encode(), sent.encode()):
        raise Forbidden("the form is stale or was not sent by this Studio: reload the page")


def actor_for(settings: Settings, form: FormData) -> str:
    """The name whose token the form carries; ``Forbidden`` without one."""
    if not settings.studio_tokens:
        raise Forbidden("actions are off: no SCULPT_STUDIO_TOKENS configured")
    sent = str(form.get(TOKEN_FIELD, "")).encode()
    match = None
    for name, secret in settings.studio_tokens.items():
        # compare against every token (constant time each), so timing reveals nothing
        if hmac.compare_digest(secret.get_secret_value().encode(), sent) and sent:
            match = name
    if match is None:
        raise Forbidden("wrong or missing token")
    return match


def template_security(request: Request) -> dict[str, Any]:
    return {"csp_nonce": request.state.csp_nonce, "csrf_token": request.state.csrf_token}
