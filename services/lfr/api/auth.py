"""Bearer-token authentication and role checks shared by every API route and the console.

Tokens are either configured API keys (compared in constant time) or OIDC JWTs verified against configured
public keys. Roles: ``watchlist-admin`` (enrol, deployments), ``authorising-officer`` (authorise or refuse a
deployment, publish its transparency record), ``operator`` (adjudicate alerts, watch the live stream),
``auditor`` (read audit and reports), ``operations`` (stack health: lag, cameras, workers). No token is 401; a
valid token without the role is 403.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import jwt
from fastapi import Depends, HTTPException, Request, status

from lfr.core.config import Settings

Role = Literal["watchlist-admin", "authorising-officer", "operator", "auditor", "operations"]
ROLES: tuple[Role, ...] = ("watchlist-admin", "authorising-officer", "operator", "auditor", "operations")


@dataclass(frozen=True)
class Principal:
    name: str
    roles: frozenset[str]

    def has(self, role: str) -> bool:
        return role in self.roles


def _token_from(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    # EventSource cannot set headers: the console's live stream passes the token as a query parameter.
    return request.query_params.get("access_token") or None


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", errors="surrogateescape")).digest()


def authenticate(settings: Settings, token: str) -> Principal | None:
    # Digests of equal length, every key compared: the time taken tells nothing about a key's length, its
    # prefix or which key came close.
    presented = _digest(token)
    found: Principal | None = None
    for api_key in settings.api.api_keys:
        if hmac.compare_digest(_digest(api_key.key.get_secret_value()), presented) and found is None:
            found = Principal(api_key.name, frozenset(api_key.roles))
    if found is not None:
        return found
    if token.count(".") == 2 and settings.api.jwt_public_keys:
        for pem in settings.api.jwt_public_keys:
            try:
                claims = jwt.decode(
                    token,
                    pem,
                    algorithms=["RS256", "ES256", "EdDSA"],
                    audience=settings.api.jwt_audience,
                    issuer=settings.api.jwt_issuer,
                    options={"require": ["exp", "sub"], "verify_aud": settings.api.jwt_audience is not None},
                )
            except jwt.PyJWTError:
                continue
            roles = claims.get("roles") or claims.get("realm_access", {}).get("roles") or []
            return Principal(str(claims["sub"]), frozenset(r for r in roles if r in ROLES))
    return None


def principal(request: Request) -> Principal:
    settings: Settings = request.app.state.settings
    token = _token_from(request)
    if token is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "missing bearer token", headers={"WWW-Authenticate": "Bearer"}
        )
    who = authenticate(settings, token)
    if who is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "invalid token", headers={"WWW-Authenticate": "Bearer"}
        )
    return who


def require(*roles: Role) -> Callable[[Principal], Principal]:
    """A dependency admitting principals holding any of ``roles``."""

    def check(who: Principal = Depends(principal)) -> Principal:
        if not any(who.has(r) for r in roles):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"requires role: {' or '.join(roles)}")
        return who

    check.roles = frozenset(roles)  # type: ignore[attr-defined]  # read by the per-route auth test
    return check
