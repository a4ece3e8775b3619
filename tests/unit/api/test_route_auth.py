"""Every API route needs a token (401 without one) and one of its roles (403 with a token lacking them).

The routes are read from the app `lfr api` serves, so a route added later is covered without editing this
file; the roles each route admits are read from its `require(...)` dependency.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from lfr.api.app import create_app
from lfr.api.auth import ROLES, authenticate, principal
from lfr.core.config import Settings, load_settings

# Liveness, readiness, the redirect to the console, and the console's static shell (it holds no data: all it
# shows comes from the API with the officer's token).
PUBLIC = {
    "/healthz",
    "/readyz",
    "/",
    "/console",
    "/console/",
    "/console/{name}",
    "/api/v1/public/deployments",  # finished, published deployments' figures: no personal data
}


def _needs_token(dep: Dependant) -> bool:
    return dep.call is principal or any(_needs_token(d) for d in dep.dependencies)


def _roles(dep: Dependant) -> frozenset[str] | None:
    found = getattr(dep.call, "roles", None)
    if found is not None:
        return frozenset(found)
    for sub in dep.dependencies:
        r = _roles(sub)
        if r is not None:
            return r
    return None


def _api_routes(routes: list[Any]) -> Iterator[APIRoute]:
    """APIRoutes of the app, including those of included routers (kept lazily by recent FastAPI)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "original_router"):
            yield from _api_routes(route.original_router.routes)


def _routes(app: FastAPI) -> list[tuple[str, str, frozenset[str] | None]]:
    out = []
    for route in _api_routes(app.routes):
        if route.path in PUBLIC:
            continue
        for method in sorted(route.methods - {"HEAD", "OPTIONS"}):
            assert _needs_token(route.dependant), f"{method} {route.path} does not check a token"
            out.append((method, route.path, _roles(route.dependant)))
    # Nothing the app documents is missed by the walk above.
    documented = {(m.upper(), p) for p, ops in app.openapi()["paths"].items() for m in ops}
    assert documented - {(m, p) for m, p, _ in out} <= {("GET", p) for p in PUBLIC}
    return [(m, re.sub(r"\{[^}]+\}", "x", p), r) for m, p, r in out]


def _key(name: str, roles: list[str]) -> dict[str, object]:
    return {"name": name, "key": f"key-{name}", "roles": roles}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    keys = [_key("nobody", [])] + [_key(r, [r]) for r in sorted(ROLES)]
    # The walk sends hundreds of requests, many with bad tokens, from one address: lift the rate limit and
    # lock-out (tested in tests/unit/security/test_api_guard.py) so every route gets its 401/403.
    limits = {"rate_limit_per_minute": 1_000_000, "rate_limit_burst": 100_000, "lockout_failures": 100_000}
    return load_settings(data_dir=str(tmp_path), api={"api_keys": keys, **limits})


async def test_every_api_route_needs_a_token_and_one_of_its_roles(settings: Settings) -> None:
    app = create_app(settings)
    app.state.ctx = object()  # never reached: refusals happen before a handler runs
    routes = _routes(app)
    assert len(routes) >= 25
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for method, path, roles in routes:
            r = await client.request(method, path)
            assert r.status_code == 401, (method, path, r.status_code)
            r = await client.request(method, path, headers={"Authorization": "Bearer wrong"})
            assert r.status_code == 401, (method, path, r.status_code)
            if roles is None:  # any valid token, whatever its roles (the console's sign-in check)
                r = await client.request(method, path, headers={"Authorization": "Bearer key-nobody"})
                assert r.status_code != 403, (method, path)
                continue
            outsiders = ["nobody", *sorted(set(ROLES) - roles)]
            for who in outsiders:
                r = await client.request(method, path, headers={"Authorization": f"Bearer key-{who}"})
                assert r.status_code == 403, (method, path, who, r.status_code)


def _rsa() -> tuple[rsa.RSAPrivateKey, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return key, pem.decode()


def test_oidc_jwt_is_verified_against_the_configured_keys(tmp_path: Path) -> None:
    key, pem = _rsa()
    other, _ = _rsa()
    s = load_settings(
        data_dir=str(tmp_path),
        api={"jwt_public_keys": [pem], "jwt_issuer": "https://idp", "jwt_audience": "lfr"},
    )
    now = int(time.time())
    claims = {"sub": "pc-1234", "iss": "https://idp", "aud": "lfr", "exp": now + 300}

    def token(signer: rsa.RSAPrivateKey, **extra: object) -> str:
        return jwt.encode({**claims, **extra}, signer, algorithm="RS256")

    who = authenticate(s, token(key, roles=["operator", "not-a-role"]))
    assert who is not None and who.name == "pc-1234" and who.has("operator") and not who.has("auditor")
    keycloak = authenticate(s, token(key, realm_access={"roles": ["auditor"]}))
    assert keycloak is not None and keycloak.has("auditor")
    assert authenticate(s, token(other, roles=["operator"])) is None  # signed by someone else
    assert authenticate(s, token(key, roles=["operator"], exp=now - 10)) is None  # expired
    assert authenticate(s, token(key, roles=["operator"], aud="another-app")) is None
    assert authenticate(s, token(key, roles=["operator"], iss="https://elsewhere")) is None
