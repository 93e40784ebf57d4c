"""GrantProvider: the SDK's authorization-server provider protocol over the grant store, plus its client checks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from mcp.server.auth.middleware.client_auth import AuthenticationError, ClientAuthenticator
from mcp.server.auth.provider import (
    AuthorizationCode,
    AuthorizationParams,
    AuthorizeError,
    RefreshToken,
    RegistrationError,
    TokenError,
)
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken
from pydantic import AnyUrl
from starlette.requests import Request

from experiture_mcp.oauth.access import GrantAccessToken
from experiture_mcp.oauth.cimd import CimdFetcher, is_cimd_client_id
from experiture_mcp.oauth.grants import Client, GrantStore
from experiture_mcp.oauth.keys import token_hash
from experiture_mcp.oauth.verifier import GrantVerifier

__all__ = [
    "CONSENT_PATH",
    "DEFAULT_SCOPES",
    "MAX_REDIRECT_URIS",
    "SCOPES",
    "GrantProvider",
    "HashedClientAuthenticator",
    "OurClient",
    "same_resource",
]

SCOPES = ["campaigns:read", "analytics:read"]
DEFAULT_SCOPES = SCOPES
IGNORED_SCOPES = frozenset({"offline_access", "openid"})  # hosts add these; refresh tokens are always issued
CONSENT_PATH = "/oauth/consent"
MAX_REDIRECT_URIS = 10
MAX_URI_LENGTH = 2000


def same_resource(given: str | None, ours: str) -> bool:
    """RFC 8707: is this resource indicator our /mcp URL (a trailing slash aside)?"""
    return given is None or given.rstrip("/") == ours.rstrip("/")


class OurClient(OAuthClientInformationFull):
    """A client as the SDK handlers see it: lenient scopes, and never a secret in clear (only its hash)."""

    secret_hash: str | None = None
    kind: str = "dcr"

    def validate_redirect_uri(self, redirect_uri: AnyUrl | None) -> AnyUrl:
        """Exact match, except that a loopback http redirect may use any port (RFC 8252 §7.3, native clients)."""
        if redirect_uri is not None and redirect_uri.scheme == "http" and _is_loopback(redirect_uri.host):
            for registered in self.redirect_uris or []:
                same_but_port = (registered.scheme, registered.host, registered.path, registered.query) == (
                    redirect_uri.scheme,
                    redirect_uri.host,
                    redirect_uri.path,
                    redirect_uri.query,
                )
                if same_but_port:
                    return redirect_uri
        return super().validate_redirect_uri(redirect_uri)

    def validate_scope(self, requested_scope: str | None) -> list[str] | None:
        """Known scopes of the request (any whitespace separates them); none, or only unknown ones: the default."""
        if requested_scope is None:
            return list(DEFAULT_SCOPES)
        wanted = [s for s in requested_scope.split() if s in SCOPES]
        return wanted or list(DEFAULT_SCOPES)


def _is_loopback(host: str | None) -> bool:
    return (host or "").strip("[]") in ("127.0.0.1", "::1", "localhost")


def _client(row: Client) -> OurClient:
    data = {k: v for k, v in row.metadata.items() if k not in ("client_secret", "secret_hash", "kind")}
    return OurClient.model_validate(
        {**data, "client_id": row.client_id, "secret_hash": row.secret_hash, "kind": row.kind}
    )


class HashedClientAuthenticator(ClientAuthenticator):
    """The SDK's client authentication, comparing hashes: no client secret is kept in clear."""

    async def authenticate_request(self, request: Request) -> OAuthClientInformationFull:
        """The client of a /token or /revoke request, or AuthenticationError."""
        form = await request.form()
        client_id = form.get("client_id")
        if not isinstance(client_id, str) or not client_id:
            raise AuthenticationError("Missing client_id")
        client = await self.provider.get_client(client_id)
        if not isinstance(client, OurClient):
            raise AuthenticationError("Invalid client_id")
        if client.secret_hash is None:
            return client  # a public client (PKCE only)
        presented: str | None = None
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            try:
                basic_id, _, presented = base64.b64decode(header[6:]).decode().partition(":")
            except ValueError:
                raise AuthenticationError("Invalid Basic authentication header") from None
            if basic_id != client_id:
                raise AuthenticationError("Client ID mismatch in Basic auth")
        elif isinstance(form.get("client_secret"), str):
            presented = str(form.get("client_secret"))
        if not presented or not hmac.compare_digest(token_hash(presented), client.secret_hash):
            raise AuthenticationError("Invalid client_secret")
        return client


class GrantProvider:
    """OAuthAuthorizationServerProvider: clients, consent transactions, codes and tokens in the grant store."""

    def __init__(
        self,
        store: Callable[[], Awaitable[GrantStore]],
        verifier: GrantVerifier,
        issuer: str,
        resource: str,
        csrf_key: bytes,
        cimd: CimdFetcher | None = None,
    ) -> None:
        self._cimd = cimd or CimdFetcher()
        self._store = store
        self._verifier = verifier
        self.issuer = issuer
        self.resource = resource
        self._csrf_key = csrf_key

    def csrf(self, txn: str) -> str:
        """The CSRF token bound to one consent transaction."""
        return hmac.new(self._csrf_key, txn.encode(), hashlib.sha256).hexdigest()

    async def get_client(self, client_id: str) -> OurClient | None:
        """A registered client, a client whose id is its metadata document's URL (CIMD), or None."""
        if is_cimd_client_id(client_id):
            document = await self._cimd.fetch(client_id)
            if document is None:
                return None
            fields = ("client_name", "client_uri", "logo_uri", "redirect_uris", "scope")
            return OurClient.model_validate(
                {
                    **{k: document[k] for k in fields if k in document},
                    "client_id": client_id,
                    "token_endpoint_auth_method": "none",
                    "grant_types": ["authorization_code", "refresh_token"],
                    "kind": "cimd",
                }
            )
        row = await (await self._store()).get_client(client_id)
        return _client(row) if row is not None else None

    async def register_client(self, client_info: OAuthClientInformationFull) -> None:
        """Keep a dynamically registered client (its secret only as a hash)."""
        uris = client_info.redirect_uris or []
        if len(uris) > MAX_REDIRECT_URIS or any(len(str(u)) > MAX_URI_LENGTH for u in uris):
            raise RegistrationError("invalid_redirect_uri", f"at most {MAX_REDIRECT_URIS} redirect URIs, each short")
        if client_info.client_name is not None and len(client_info.client_name) > 200:
            raise RegistrationError("invalid_client_metadata", "client_name is longer than 200 characters")
        metadata = client_info.model_dump(mode="json", exclude={"client_secret"}, exclude_none=True)
        await (await self._store()).put_client(client_info.client_id or "", "dcr", metadata, client_info.client_secret)

    async def authorize(self, client: OAuthClientInformationFull, params: AuthorizationParams) -> str:
        """Keep the request as a consent transaction; the consent page's URL."""
        if not same_resource(params.resource, self.resource):
            raise AuthorizeError("invalid_target", f"this server issues tokens only for {self.resource}")
        txn = secrets.token_urlsafe(32)
        record = {
            "client_id": client.client_id,
            "redirect_uri": str(params.redirect_uri),
            "explicit": params.redirect_uri_provided_explicitly,
            "code_challenge": params.code_challenge,
            "scopes": params.scopes or list(DEFAULT_SCOPES),
            "state": params.state,
        }
        await (await self._store()).put_transaction(txn, record, self.csrf(txn))
        return f"{self.issuer}{CONSENT_PATH}?{urlencode({'txn': txn})}"

    async def load_authorization_code(self, client: OAuthClientInformationFull, authorization_code: str) -> Any:
        """The code's details; a used code revokes its grant and is None."""
        info = await (await self._store()).load_code(authorization_code)
        if info is None:
            return None
        return AuthorizationCode(
            code=authorization_code,
            scopes=info.scopes,
            expires_at=info.expires_at.timestamp(),
            client_id=info.client_id,
            code_challenge=info.code_challenge,
            redirect_uri=AnyUrl(info.redirect_uri),
            redirect_uri_provided_explicitly=info.redirect_uri_provided_explicitly,
            resource=info.resource,
            subject=info.grant_id,
        )

    async def exchange_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: AuthorizationCode
    ) -> OAuthToken:
        """Tokens for a checked code (single use)."""
        issued = await (await self._store()).redeem_code(authorization_code.code)
        if issued is None:
            raise TokenError("invalid_grant", "authorization code was already used")
        return _token(issued.access_token, issued.refresh_token, issued.expires_in, issued.scopes)

    async def load_refresh_token(self, client: OAuthClientInformationFull, refresh_token: str) -> Any:
        """The refresh token's grant; a used one revokes the grant and is None."""
        if not refresh_token.startswith("exmcp_rt_"):
            return None
        info = await (await self._store()).refresh_grant(refresh_token)
        if info is None:
            return None
        return RefreshToken(token=refresh_token, client_id=info.client_id, scopes=info.scopes, subject=info.grant_id)

    async def exchange_refresh_token(
        self, client: OAuthClientInformationFull, refresh_token: RefreshToken, scopes: list[str]
    ) -> OAuthToken:
        """A new pair; the presented refresh token is used up (rotation)."""
        issued = await (await self._store()).refresh(refresh_token.token)
        if issued is None:
            raise TokenError("invalid_grant", "refresh token was already used")
        return _token(issued.access_token, issued.refresh_token, issued.expires_in, issued.scopes)

    async def load_access_token(self, token: str) -> GrantAccessToken | None:
        """A live access token of ours, or None."""
        return await self._verifier.verify_token(token)

    async def revoke_token(self, token: Any) -> None:
        """Revoke the token's whole grant, here and in this process's cache."""
        grant_id = await (await self._store()).revoke_token(str(token.token))
        if grant_id is not None:
            self._verifier.forget_grant(grant_id)

    async def exchange_identity_assertion(self, client: OAuthClientInformationFull, params: Any) -> OAuthToken:
        """Not offered."""
        raise TokenError("unsupported_grant_type", "the JWT bearer grant is not supported")


def _token(access: str, refresh: str, expires_in: int, scopes: list[str]) -> OAuthToken:
    return OAuthToken(
        access_token=access, token_type="Bearer", expires_in=expires_in, refresh_token=refresh, scope=" ".join(scopes)
    )
