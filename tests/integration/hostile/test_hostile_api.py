"""Hostile requests to the app `lfr api` serves, against the real stack: malformed and deeply nested JSON,
broken multipart bodies, traversal in ids, file names and console paths. Each is a clear 4xx; nothing is
written outside the request's own temporary directory; the API keeps serving."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from lfr.api.app import create_app
from lfr.api.context import ApiContext
from lfr.core.config import Settings

pytestmark = pytest.mark.integration

ADMIN, OPERATOR = "tok-admin-hostile-1", "tok-op-hostile-1"


@pytest.fixture
async def client(settings_for, models_dir: Path) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    settings: Settings = settings_for(
        api={
            "api_keys": [
                {"name": "admin", "key": ADMIN, "roles": ["watchlist-admin"]},
                {"name": "op", "key": OPERATOR, "roles": ["operator"]},
            ]
        },
        models={"dir": models_dir},
        milvus={"collection_prefix": f"t{uuid.uuid4().hex[:8]}_"},
    )
    app = create_app(settings)
    app.state.ctx = await ApiContext.start(settings)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            yield c
    finally:
        await app.state.ctx.close()


def _h(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}


async def test_malformed_json_bodies(client: httpx.AsyncClient) -> None:
    json_h = _h(ADMIN, **{"Content-Type": "application/json"})
    bodies = [
        b"{not json",
        b"\xff\xfe\x00\x00",
        b"[" * 200_000 + b"]" * 200_000,  # nesting far beyond the JSON parser's recursion limit
        b'{"name": "x"' + b', "k": 1' * 1000,
        b"[]",
        b'{"name": 5, "watchlist_ids": "not a list"}',
        b"null",
    ]
    for body in bodies:
        r = await client.post("/api/v1/deployments", content=body, headers=json_h)
        assert r.status_code in (400, 422), (body[:20], r.status_code, r.text[:200])
        assert r.json()["detail"]
    r = await client.put(
        "/api/v1/deployments/dep-x/threshold", content=b'{"threshold": "NaN", "reason": 1}', headers=json_h
    )
    assert r.status_code in (404, 422)
    assert (await client.get("/healthz")).status_code == 200, "the API keeps serving"


async def test_broken_multipart_uploads(client: httpx.AsyncClient, tmp_path: Path) -> None:
    url = "/api/v1/watchlists/wl-hostile/subjects"
    cases = [
        ("multipart/form-data", b"--x\r\n"),  # no boundary parameter
        ("multipart/form-data; boundary=x", b"--x\r\nContent-Disposition: form-data\r\n\r\nno name\r\n--x--"),
        (
            "multipart/form-data; boundary=x",
            b'--x\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"',
        ),
        ("multipart/form-data; boundary=x", b"garbage without any boundary"),
        ("text/plain", b"subject_id=s1"),
    ]
    for ctype, body in cases:
        r = await client.post(url, content=body, headers=_h(ADMIN, **{"Content-Type": ctype}))
        assert r.status_code in (400, 413, 415, 422), (ctype, body[:30], r.status_code, r.text[:200])
        r = await client.post("/api/v1/search", content=body, headers=_h(OPERATOR, **{"Content-Type": ctype}))
        assert r.status_code in (400, 413, 415, 422), (ctype, body[:30], r.status_code, r.text[:200])


async def test_traversal_in_file_names_ids_and_console_paths(client: httpx.AsyncClient) -> None:
    target = Path("/tmp") / f"lfr-traversal-{uuid.uuid4().hex[:8]}.jpg"
    evil_name = f"../../../../../..{target}"
    r = await client.post(
        "/api/v1/watchlists/wl-hostile/subjects",
        headers=_h(ADMIN),
        data={"subject_id": "s1"},
        files={"image": (evil_name, b"\xff\xd8\xff not really a jpeg", "image/jpeg")},
    )
    assert r.status_code == 422 and r.headers.get("x-error-code") == "unreadable"
    r = await client.post(
        "/api/v1/search",
        headers=_h(OPERATOR),
        data={"case_ref": "CASE-1", "reason": "hostile input test", "watchlists": "wl-hostile"},
        files={"file": (evil_name, b"\xff\xd8\xff not really a jpeg", "image/jpeg")},
    )
    assert r.status_code == 422 and "not a readable image" in r.json()["detail"], r.text[:300]
    assert not target.exists(), "an upload's file name never chooses where it is written"
    for path in (
        "/api/v1/watchlists/..%2F..%2Fetc/subjects",
        "/api/v1/watchlists/wl-1/subjects/..%2F..%2Fpasswd",
        "/api/v1/deployments/..%2F..%2Fetc%2Fpasswd",
    ):
        r = await client.get(path, headers=_h(ADMIN))
        assert r.status_code in (403, 404, 422), (path, r.status_code)
    for path in (
        "/console/..%2F..%2Fapi%2Fapp.py",
        "/console/%2E%2E%2Fauth.py",
        "/console/console.js%00.html",
    ):
        r = await client.get(path)
        assert r.status_code == 404, (path, r.status_code)
        assert "def " not in r.text


async def test_search_refuses_a_decompression_bomb_from_its_header(client: httpx.AsyncClient) -> None:
    import struct
    import zlib

    ihdr = b"IHDR" + struct.pack(">IIBBBBB", 30_000, 30_000, 8, 2, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + ihdr + struct.pack(">I", zlib.crc32(ihdr))
    png += zlib.compress(b"\0" * 100_000)  # the start of 2.7 GB of pixels, a few KB on the wire
    r = await client.post(
        "/api/v1/search",
        headers=_h(OPERATOR),
        data={"case_ref": "CASE-2", "reason": "hostile input test", "watchlists": "wl-hostile"},
        files={"file": ("bomb.png", png, "image/png")},
    )
    assert r.status_code == 422 and "30000x30000 pixels" in r.json()["detail"], r.text[:300]
