"""Watchlist, deployment and audit routes over HTTP against the real stack: auth on every route (no token
401, wrong role 403, right role 2xx), error statuses, and the audit chain the calls leave behind."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from lfr.api import routes_audit, routes_deployments, routes_watchlists
from lfr.api.context import ApiContext
from lfr.core.config import Settings

pytestmark = pytest.mark.integration

KEYS = {"admin": "k-admin", "auditor": "k-aud", "operator": "k-op", "officer": "k-off", "nobody": "k-none"}
API_KEYS = [
    {"name": "admin.user", "key": KEYS["admin"], "roles": ["watchlist-admin"]},
    {"name": "auditor.user", "key": KEYS["auditor"], "roles": ["auditor"]},
    {"name": "operator.user", "key": KEYS["operator"], "roles": ["operator"]},
    {"name": "Supt Khan", "key": KEYS["officer"], "roles": ["authorising-officer"]},
    {"name": "no.roles", "key": KEYS["nobody"], "roles": []},
]
LIMIT = 600_000  # above the test photos, far below the default


@pytest.fixture
def demo_faces(face_data: Path) -> Path:
    return face_data / "face_recognition_demo"


def _h(role: str | None) -> dict[str, str]:
    return {} if role is None else {"Authorization": f"Bearer {KEYS[role]}"}


@pytest.fixture
async def api(settings_for, models_dir) -> AsyncIterator[tuple[httpx.AsyncClient, list[str]]]:
    settings: Settings = settings_for(
        api={"api_keys": API_KEYS, "max_upload_bytes": LIMIT},
        milvus={"collection_prefix": f"t{uuid.uuid4().hex[:8]}_"},
    )
    app = FastAPI()
    for module in (routes_watchlists, routes_deployments, routes_audit):
        app.include_router(module.router)
    app.state.settings = settings
    ctx = await ApiContext.start(settings)
    purged: list[str] = []

    def purge(deployment_id: str) -> int:
        purged.append(deployment_id)
        return 3

    ctx.deployments.purge_alerts = purge
    app.state.ctx = ctx
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            yield client, purged
    finally:
        await ctx.close()


def _routes(dep_id: str) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(method, path, the role that may call it, request kwargs) for every route."""
    now = datetime.now(UTC)
    create = {
        "name": "Gate",
        "location": "North",
        "purpose": "wanted",
        "authorising_officer": "Supt Khan",
        "starts_at": (now - timedelta(minutes=1)).isoformat(),
        "ends_at": (now + timedelta(hours=1)).isoformat(),
        "watchlist_ids": ["wl-1"],
    }
    return [
        (
            "POST",
            "/api/v1/watchlists/wl-1/subjects",
            "admin",
            {"data": {"subject_id": "s1"}, "files": {"image": ("x.png", b"x", "image/png")}},
        ),
        ("GET", "/api/v1/watchlists", "auditor", {}),
        ("GET", "/api/v1/watchlists/wl-1/subjects", "auditor", {}),
        ("GET", "/api/v1/watchlists/wl-1/subjects/s1", "auditor", {}),
        ("PATCH", "/api/v1/watchlists/wl-1/subjects/s1", "admin", {"json": {"category": "missing"}}),
        ("DELETE", "/api/v1/watchlists/wl-1/subjects/s1", "admin", {}),
        ("POST", "/api/v1/watchlists/sweep", "admin", {}),
        ("POST", "/api/v1/deployments", "admin", {"json": create}),
        ("GET", "/api/v1/deployments", "auditor", {}),
        ("GET", f"/api/v1/deployments/{dep_id}", "auditor", {}),
        ("POST", f"/api/v1/deployments/{dep_id}/authorise", "officer", {"json": {"officer": "Supt Khan"}}),
        ("POST", f"/api/v1/deployments/{dep_id}/start", "admin", {}),
        (
            "PUT",
            f"/api/v1/deployments/{dep_id}/threshold",
            "admin",
            {"json": {"threshold": 0.5, "reason": "r"}},
        ),
        ("POST", f"/api/v1/deployments/{dep_id}/stop", "admin", {}),
        ("GET", "/api/v1/audit/verify", "auditor", {}),
        ("GET", "/api/v1/audit/events", "auditor", {}),
    ]


async def test_every_route_needs_a_token_and_the_right_role(api) -> None:
    client, _ = api
    for method, path, _role, kwargs in _routes("dep-x"):
        r = await client.request(method, path, **kwargs)
        assert r.status_code == 401, (method, path, r.text)
        r = await client.request(method, path, headers={"Authorization": "Bearer wrong"}, **kwargs)
        assert r.status_code == 401, (method, path, r.text)
        r = await client.request(method, path, headers=_h("nobody"), **kwargs)
        assert r.status_code == 403 and "requires role" in r.json()["detail"], (method, path, r.text)
    # Auditors read but never change; admins do not read the audit log.
    r = await client.post("/api/v1/watchlists/sweep", headers=_h("auditor"))
    assert r.status_code == 403
    r = await client.get("/api/v1/audit/verify", headers=_h("admin"))
    assert r.status_code == 403


async def test_right_roles_succeed_and_leave_a_verifiable_audit_chain(
    api, demo_faces: Path, models_dir
) -> None:
    client, purged = api
    admin, auditor = _h("admin"), _h("auditor")
    photo = (demo_faces / "enroll/alex_lacamoire/alex-lacamoire.png").read_bytes()
    form = {
        "subject_id": "pnc-77",
        "display_name": "A Subject",
        "category": "wanted",
        "expires_at": "30d",
        "image_date": "2019-01-01",
        "reason": "case 123",
    }

    r = await client.post(
        "/api/v1/watchlists/wl-1/subjects",
        headers=admin,
        data=form,
        files={"image": ("a.png", photo, "image/png")},
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert (
        body["subject_id"] == "pnc-77"
        and body["images"] == 1
        and body["thumbnail"]
        and body["expires_at"] > 0
    )

    r = await client.get("/api/v1/watchlists", headers=auditor)
    assert r.status_code == 200 and r.json() == [{"watchlist_id": "wl-1", "subjects": 1}]
    r = await client.get("/api/v1/watchlists/wl-1/subjects", headers=auditor)
    assert r.status_code == 200 and r.json()["count"] == 1 and r.json()["subjects"][0]["thumbnail"] == ""
    r = await client.get("/api/v1/watchlists/wl-1/subjects/pnc-77", headers=admin)
    assert r.status_code == 200 and r.json()["display_name"] == "A Subject"
    r = await client.patch(
        "/api/v1/watchlists/wl-1/subjects/pnc-77",
        headers=admin,
        json={"category": "vulnerable", "reason": "update from case"},
    )
    assert r.status_code == 200 and r.json()["category"] == "vulnerable"

    now = datetime.now(UTC)
    create = {
        "name": "Gate",
        "location": "North",
        "purpose": "wanted",
        "authorising_officer": "Supt Khan",
        "starts_at": (now - timedelta(minutes=1)).isoformat(),
        "ends_at": (now + timedelta(hours=1)).isoformat(),
        "watchlist_ids": ["wl-1"],
    }
    from lfr.core.config import ModelSettings
    from lfr.vision.cards import find_card

    card = find_card(models_dir, ModelSettings().embedder)  # the default embedder the API uses
    assert card.threshold_floor is not None
    looser = card.threshold_floor + 0.1 if card.metric == "L2" else card.threshold_floor - 0.1
    r = await client.post("/api/v1/deployments", headers=admin, json={**create, "threshold": looser})
    assert r.status_code == 422 and "reason" in r.json()["detail"]
    r = await client.post("/api/v1/deployments", headers=admin, json=create)
    assert r.status_code == 201, r.text
    dep = r.json()
    assert dep["status"] == "draft" and dep["expected_rate"]["watchlist_size"] == 1
    assert dep["expected_rate"]["false_alerts_per_1000"] is not None  # the card's calibration has an FMR
    dep_id = dep["deployment_id"]
    r = await client.post(f"/api/v1/deployments/{dep_id}/start", headers=admin)
    assert r.status_code == 409 and "not authorised" in r.json()["detail"]
    r = await client.post(
        f"/api/v1/deployments/{dep_id}/authorise", headers=_h("officer"), json={"officer": "PC Nobody"}
    )
    assert r.status_code == 422
    for method, path, role, kwargs in _routes(dep_id)[8:14]:
        r = await client.request(method, path, headers=_h("admin" if role == "auditor" else role), **kwargs)
        assert r.status_code in (200, 201), (method, path, r.text)
    r = await client.get(f"/api/v1/deployments/{dep_id}", headers=auditor)
    assert r.json()["status"] == "stopped" and r.json()["effective_threshold"] == 0.5
    r = await client.post(f"/api/v1/deployments/{dep_id}/stop?purge=true", headers=admin)
    assert r.status_code == 200 and r.json()["purged_alerts"] == 3 and purged == [dep_id]
    r = await client.get("/api/v1/deployments/dep-nothing", headers=auditor)
    assert r.status_code == 404

    r = await client.delete("/api/v1/watchlists/wl-1/subjects/pnc-77?reason=removed", headers=admin)
    assert r.status_code == 200 and r.json()["images_deleted"] == 1
    r = await client.get("/api/v1/watchlists/wl-1/subjects/pnc-77", headers=auditor)
    assert r.status_code == 404
    r = await client.post("/api/v1/watchlists/sweep", headers=admin)
    assert r.status_code == 200 and r.json()["rows_deleted"] == 0

    r = await client.get("/api/v1/audit/verify", headers=auditor)
    assert r.status_code == 200 and r.json()["ok"] is True, r.json()
    r = await client.get("/api/v1/audit/events?limit=100", headers=auditor)
    assert r.status_code == 200
    events = r.json()
    actions = [e["action"] for e in events]
    assert actions[:2] == ["watchlist.enrol", "watchlist.update"]
    assert {
        "deployment.create",
        "deployment.authorise",
        "deployment.start",
        "deployment.threshold",
        "deployment.stop",
        "deployment.purge",
        "watchlist.delete",
        "watchlist.sweep",
    } <= set(actions)
    assert events[0]["actor"] == "admin.user" and events[0]["reason"] == "case 123"
    assert "A Subject" not in r.text  # display names never enter the audit log


async def test_bad_uploads_get_clear_4xx(api, demo_faces: Path) -> None:
    client, _ = api
    admin = _h("admin")
    url = "/api/v1/watchlists/wl-2/subjects"
    r = await client.post(
        url,
        headers=admin,
        data={"subject_id": "s1"},
        files={"image": ("big.jpg", b"\xff\xd8" + b"0" * (LIMIT + 10), "image/jpeg")},
    )
    assert r.status_code == 413 and "max_upload_bytes" in r.json()["detail"]
    group = (demo_faces / "multi_face/two_people.jpg").read_bytes()
    r = await client.post(
        url, headers=admin, data={"subject_id": "s1"}, files={"image": ("g.jpg", group, "image/jpeg")}
    )
    assert (
        r.status_code == 422
        and "faces" in r.json()["detail"]
        and r.headers["x-error-code"] == "several_faces"
    )
    r = await client.post(
        url, headers=admin, data={"subject_id": "s1"}, files={"image": ("t.txt", b"hello", "text/plain")}
    )
    assert r.status_code == 422 and r.headers["x-error-code"] == "unreadable"
    r = await client.post(
        url, headers=admin, data={"subject_id": 'x" or 1'}, files={"image": ("t.png", b"x", "image/png")}
    )
    assert r.status_code == 422 and "subject_id" in r.json()["detail"]
    r = await client.post(
        url,
        headers=admin,
        data={"subject_id": "s1", "category": "suspect"},
        files={"image": ("t.png", b"x", "image/png")},
    )
    assert r.status_code == 422
    r = await client.post(
        url,
        headers=admin,
        data={"subject_id": "s1", "expires_at": "soon"},
        files={"image": ("t.png", b"x", "image/png")},
    )
    assert r.status_code == 422 and "cannot read time" in r.json()["detail"]
    r = await client.post(url, headers=admin, files={"image": ("t.png", b"x", "image/png")})
    assert r.status_code == 422  # subject_id missing
    r = await client.get("/api/v1/watchlists/bad id!/subjects", headers=admin)
    assert r.status_code == 422
    r = await client.patch("/api/v1/watchlists/wl-2/subjects/none", headers=admin, json={})
    assert r.status_code == 422 and "nothing to change" in r.json()["detail"]
