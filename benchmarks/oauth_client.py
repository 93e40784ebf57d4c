"""Signing in to an OAuth-mode server as a host would, without a browser: register, authorize, consent, exchange."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from urllib.parse import parse_qs, urlsplit

import httpx2

from experiture_mcp.sandbox import DEMO_TOKEN

CALLBACK = "http://127.0.0.1:9/callback"  # never fetched: the consent answer's redirect is read, not followed


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    return verifier, base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")


async def register(http: httpx2.AsyncClient, url: str) -> str:
    """A public client (DCR), reused for every sign-in of a setup."""
    body = {"redirect_uris": [CALLBACK], "token_endpoint_auth_method": "none", "client_name": "Benchmark"}
    answer = await http.post(url + "/register", json=body)
    if answer.status_code != 201:
        raise RuntimeError(f"/register answered {answer.status_code}: {answer.text[:300]}")
    return str(answer.json()["client_id"])


async def sign_in(http: httpx2.AsyncClient, url: str, client_id: str) -> tuple[str, str]:
    """Access and refresh token for DEMO_TOKEN: authorize, consent as a browser submits it, exchange the code."""
    verifier, challenge = pkce()
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": CALLBACK,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": "bench",
    }
    consent = (await http.get(url + "/authorize", params=params)).headers["location"]
    fields = dict(re.findall(r'name="(txn|csrf)" value="([^"]+)"', (await http.get(consent)).text))
    answer = await http.post(url + "/oauth/consent", data={**fields, "token": DEMO_TOKEN, "action": "allow"})
    code = parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": CALLBACK,
        "client_id": client_id,
        "code_verifier": verifier,
    }
    tokens = await http.post(url + "/token", data=form)
    tokens.raise_for_status()
    return str(tokens.json()["access_token"]), str(tokens.json()["refresh_token"])
