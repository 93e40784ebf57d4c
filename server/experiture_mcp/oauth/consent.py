"""The consent page: the user pastes their Experiture token once; it is checked upstream, then sealed in a grant.

No external assets, a strict CSP, no caching, no framing; CSRF bound to the transaction; failed pastes limited
per client address. Neither the pasted token nor any code appears on a page or in a log.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from html import escape
from typing import Any
from urllib.parse import urlparse

from mcp.server.auth.provider import construct_redirect_uri
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from experiture_mcp.logs import register_secret
from experiture_mcp.oauth.grants import GrantStore
from experiture_mcp.oauth.keys import ServerKey, UnsealError
from experiture_mcp.oauth.provider import GrantProvider

__all__ = ["FAILURE_LIMIT", "FAILURE_WINDOW", "MAX_PASTE", "Consent", "TokenCheck"]

log = logging.getLogger(__name__)

FAILURE_LIMIT = 10  # failed pastes per client address per window
FAILURE_WINDOW = timedelta(minutes=15)
MAX_PASTE = 4096


@dataclass(frozen=True)
class TokenCheck:
    """What the API said of a pasted token: rejected, unreachable, or which tools work and which do not (why)."""

    valid: bool
    reached: bool
    scopes: list[str]
    works: list[str]
    fails: list[str]  # e.g. "get_metrics will not work: this token lacks analytics:read"


Checker = Callable[[str], Awaitable[TokenCheck]]

_STYLE = """
body{font:16px/1.5 system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;color:#1b1b1f}
h1{font-size:1.4rem}label{display:block;font-weight:600;margin:1rem 0 .3rem}
input[type=password]{width:100%;box-sizing:border-box;padding:.5rem;font:inherit;
border:1px solid #767680;border-radius:6px}
.buttons{display:flex;gap:.75rem;margin-top:1.25rem}
button{font:inherit;padding:.5rem 1.2rem;border-radius:6px;border:1px solid #1b1b1f;background:#fff;cursor:pointer}
button.allow{background:#1b4fd8;color:#fff;border-color:#1b4fd8}
button:focus-visible,input:focus-visible{outline:3px solid #f5a524;outline-offset:2px}
.error{border-left:4px solid #b3261e;padding:.5rem .75rem;background:#fdecea}
.note{color:#46464f;font-size:.9rem}ul{padding-left:1.2rem}
"""


def _page(title: str, body: str, status: int = 200, form_target: str | None = None) -> HTMLResponse:
    form_action = "'self'" + (f" {form_target}" if form_target else "")
    csp = (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; base-uri 'none'; "
        f"form-action {form_action}; frame-ancestors 'none'"
    )
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f'<meta name="referrer" content="no-referrer"><title>{escape(title)}</title><style>{_STYLE}</style></head>'
        f"<body><main>{body}</main></body></html>"
    )
    return HTMLResponse(html, status_code=status, headers=_headers(csp))


def _headers(csp: str) -> dict[str, str]:
    return {
        "Content-Security-Policy": csp,
        "X-Frame-Options": "DENY",
        "Cache-Control": "no-store",
        "Pragma": "no-cache",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
    }


def _origin(uri: str) -> str:
    parsed = urlparse(uri)
    return f"{parsed.scheme}://{parsed.netloc}"


class Consent:
    """GET and POST of the consent page."""

    def __init__(
        self, store: Callable[[], Awaitable[GrantStore]], provider: GrantProvider, key: ServerKey, check: Checker
    ) -> None:
        self._store = store
        self._provider = provider
        self._key = key
        self._check = check
        self._source_key = hashlib.sha256(b"experiture-mcp/oauth/source/" + key.key_id.encode()).digest()

    def _source(self, request: Request) -> str:
        address = request.client.host if request.client else "unknown"
        return hmac.new(self._source_key, address.encode(), hashlib.sha256).hexdigest()

    async def get(self, request: Request) -> Response:
        """The page for one transaction."""
        txn = request.query_params.get("txn", "")
        store = await self._store()
        found = await store.get_transaction(txn) if txn else None
        if found is None:
            return _expired()
        params, _ = found
        return await self._form(txn, params)

    async def _form(self, txn: str, params: dict[str, Any], error: str | None = None, status: int = 200) -> Response:
        client = await self._provider.get_client(params["client_id"])
        name = (client.client_name if client else None) or "An application"
        redirect_uri = str(params["redirect_uri"])
        host = urlparse(redirect_uri).netloc or redirect_uri
        message = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
        body = f"""
<h1>Connect {escape(name)} to Experiture</h1>
<p><strong>{escape(name)}</strong> wants read-only access to your Experiture campaigns. After you allow it,
you will be sent back to <strong>{escape(host)}</strong>.</p>
{message}
<form method="post" action="/oauth/consent" autocomplete="off">
<input type="hidden" name="txn" value="{escape(txn)}">
<input type="hidden" name="csrf" value="{escape(self._provider.csrf(txn))}">
<label for="token">Your Experiture API token</label>
<input type="password" id="token" name="token" maxlength="{MAX_PASTE}" autofocus spellcheck="false"
 autocomplete="off" aria-describedby="token-help">
<p class="note" id="token-help">Create one in Experiture under Settings → API tokens. It is checked with
Experiture, then kept encrypted on this server; {escape(name)} never sees it.</p>
<div class="buttons"><button class="allow" type="submit" name="action" value="allow">Allow</button>
<button type="submit" name="action" value="deny">Deny</button></div>
</form>"""
        return _page(f"Connect {name} to Experiture", body, status, _origin(params["redirect_uri"]))

    async def post(self, request: Request) -> Response:
        """Allow (check the token, seal it, redirect with a code), confirm a partial token, or deny."""
        if request.headers.get("sec-fetch-site") not in (None, "same-origin", "none"):
            return _page(
                "Request refused", "<h1>Request refused</h1><p>This form must be sent from its own page.</p>", 403
            )
        form = await request.form()
        txn, csrf, action = (str(form.get(k) or "") for k in ("txn", "csrf", "action"))
        store = await self._store()
        found = await store.get_transaction(txn) if txn else None
        if found is None:
            return _expired()
        params, csrf_hash = found
        expected = self._provider.csrf(txn)
        if not (hmac.compare_digest(csrf, expected) and hmac.compare_digest(_sha(csrf), csrf_hash)):
            log.info("consent refused: CSRF token mismatch")
            return _page("Request refused", "<h1>Request refused</h1><p>The form was not sent from this page.</p>", 403)
        if action == "deny":
            await store.take_transaction(txn)
            return self._back(params, error="access_denied", error_description="The user denied access")
        source = self._source(request)
        if await store.failures(source, FAILURE_WINDOW) >= FAILURE_LIMIT:
            return _page(
                "Too many attempts",
                "<h1>Too many attempts</h1><p>Too many tokens were refused from your address. Wait a quarter of an "
                "hour, then start again from your chat app.</p>",
                429,
            )
        if action == "confirm" and "pending" in params:
            try:
                pasted = self._key.open(
                    base64.b64decode(params["pending"]),
                    base64.b64decode(params["pending_key"]),
                    _txn_aad(txn),
                    txn,
                    "code",
                )
            except UnsealError:
                return _expired()
            return await self._grant(txn, params, pasted, params["upstream_scopes"])
        if action != "allow":
            return await self._form(txn, params, "Choose Allow or Deny.", 400)
        pasted = str(form.get("token") or "").strip()
        if not pasted or len(pasted) > MAX_PASTE:
            return await self._form(txn, params, "Paste your Experiture API token first.", 400)
        register_secret(pasted)
        checked = await self._check(pasted)
        if not checked.reached:
            return await self._form(txn, params, "Experiture could not be reached to check the token. Try again.", 503)
        if not checked.valid or not checked.works:
            count = await store.add_failure(source, FAILURE_WINDOW)
            log.info("consent: a pasted token was refused (%d from this address)", count)
            why = (
                "Experiture rejected this token: it is invalid, revoked or expired."
                if not checked.valid
                else "This token can use none of the tools: it lacks "
                + " and ".join(["campaigns:read", "analytics:read"])
            )
            return await self._form(txn, params, why + " Paste another token.", 400)
        if checked.fails:
            sealed = self._key.seal(pasted, _txn_aad(txn), txn, "code")
            params = params | {
                "pending": base64.b64encode(sealed.ciphertext).decode(),
                "pending_key": base64.b64encode(sealed.wrapped_key).decode(),
                "upstream_scopes": checked.scopes,
            }
            await store.update_transaction(txn, params)
            return self._partial(txn, params, checked)
        return await self._grant(txn, params, pasted, checked.scopes)

    def _partial(self, txn: str, params: dict[str, Any], checked: TokenCheck) -> Response:
        works = "".join(f"<li>{escape(t)}</li>" for t in checked.works)
        fails = "".join(f"<li>{escape(t)}</li>" for t in checked.fails)
        body = f"""
<h1>This token allows only some tools</h1>
<p>These will work:</p><ul>{works}</ul>
<p>These will not:</p><ul>{fails}</ul>
<form method="post" action="/oauth/consent">
<input type="hidden" name="txn" value="{escape(txn)}">
<input type="hidden" name="csrf" value="{escape(self._provider.csrf(txn))}">
<div class="buttons"><button class="allow" type="submit" name="action" value="confirm">Allow anyway</button>
<button type="submit" name="action" value="deny">Deny</button></div>
</form>
<p class="note">To use every tool, ask an Experiture admin for a token with both scopes, then connect again.</p>"""
        return _page("Some tools will not work", body, 200, _origin(params["redirect_uri"]))

    async def _grant(self, txn: str, params: dict[str, Any], pasted: str, upstream_scopes: list[str]) -> Response:
        store = await self._store()
        if not await store.take_transaction(txn):
            return _expired()  # answered already, in another tab or by a replayed form
        code = await store.create_grant(
            client_id=params["client_id"],
            redirect_uri=params["redirect_uri"],
            redirect_uri_provided_explicitly=params["explicit"],
            code_challenge=params["code_challenge"],
            scopes=params["scopes"],
            resource=self._provider.resource,
            upstream_token=pasted,
            upstream_scopes=upstream_scopes,
        )
        register_secret(code)
        return self._back(params, code=code)

    def _back(self, params: dict[str, Any], **values: str) -> Response:
        target = construct_redirect_uri(
            params["redirect_uri"], **values, state=params.get("state"), iss=self._provider.issuer
        )
        return RedirectResponse(target, status_code=303, headers=_headers("frame-ancestors 'none'"))


def _sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _txn_aad(txn: str) -> bytes:
    return b"consent-transaction\n" + _sha(txn).encode()


def _expired() -> Response:
    return _page(
        "Sign-in expired",
        "<h1>This sign-in has expired</h1><p>It was used already or is too old. Go back to your chat app and "
        "connect again.</p>",
        400,
    )
