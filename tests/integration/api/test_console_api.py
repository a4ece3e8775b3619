"""The API behind the role pages, over HTTP against the real stack (no browser needed): the enrolment preview
saves nothing and is audited, the console's import record, audit search and audited export, the report with
its timeline, the officer's refusal and publication, and the public record of finished, published deployments.
"""

from __future__ import annotations

import csv
import io
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from lfr.api.app import create_app
from lfr.core import stats
from lfr.core.audit import read_all
from lfr.core.config import Settings
from lfr.core.redis_client import make_redis

pytestmark = pytest.mark.integration

ROLES = ("watchlist-admin", "authorising-officer", "operator", "auditor", "operations")
NAMES = {"watchlist-admin": "wl.admin", "authorising-officer": "Supt Khan", "auditor": "aud.1"}


def _h(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer k-{role}"}


def _read(path: Path) -> bytes:
    return path.read_bytes()


@pytest.fixture
async def api(settings_for, models_dir) -> AsyncIterator[tuple[httpx.AsyncClient, Settings]]:
    keys = [{"name": NAMES.get(r, r), "key": f"k-{r}", "roles": [r]} for r in ROLES]
    settings: Settings = settings_for(
        api={"api_keys": keys, "rate_limit_per_minute": 100_000, "rate_limit_burst": 10_000},
        milvus={"collection_prefix": f"c{uuid.uuid4().hex[:8]}_"},
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t", timeout=120) as client:
            yield client, settings


async def _deployment(client: httpx.AsyncClient, wl: str, **over: Any) -> str:
    now = datetime.now(UTC)
    spec = {
        "name": "Cup final",
        "location": "North gate",
        "purpose": "wanted persons",
        "authorising_officer": NAMES["authorising-officer"],
        "starts_at": (now - timedelta(minutes=3)).isoformat(),
        "ends_at": (now + timedelta(hours=2)).isoformat(),
        "watchlist_ids": [wl],
        **over,
    }
    r = await client.post("/api/v1/deployments", headers=_h("watchlist-admin"), json=spec)
    assert r.status_code == 201, r.text
    return str(r.json()["deployment_id"])


async def test_preview_saves_nothing_and_the_import_record_is_audited(api, face_data: Path) -> None:
    client, settings = api
    demo = face_data / "face_recognition_demo"
    admin = _h("watchlist-admin")
    one = _read(demo / "enroll/alex_lacamoire/alex-lacamoire.png")
    two = _read(demo / "multi_face/two_people.jpg")
    r = await client.post("/api/v1/watchlists/wl-p/preview", headers=admin, files={"image": ("a.png", one)})
    assert r.status_code == 200, r.text
    ok = r.json()
    assert ok["accepted"] and ok["code"] == "" and len(ok["faces"]) == 1 and ok["faces"][0]["passed"]
    x, y, w, h = ok["faces"][0]["box"]
    assert x + w <= ok["width"] + 1 and y + h <= ok["height"] + 1
    assert 0 <= x < ok["width"] and 0 <= y < ok["height"] and w > 40 and ok["faces"][0]["chip"]
    r = await client.post("/api/v1/watchlists/wl-p/preview", headers=admin, files={"image": ("b.jpg", two)})
    bad = r.json()
    assert not bad["accepted"] and bad["code"] == "several_faces" and len(bad["faces"]) >= 2
    r = await client.post("/api/v1/watchlists/wl-p/preview", headers=admin, files={"image": ("c.png", b"no")})
    assert r.status_code == 422 and r.headers["X-Error-Code"] == "unreadable"
    r = await client.get("/api/v1/watchlists/wl-p/subjects", headers=admin)
    assert r.json()["count"] == 0  # nothing enrolled by a preview

    body = {
        "total": 3,
        "accepted": 1,
        "rejected_by_reason": {"several_faces": 1, "invalid": 1},
        "reason": "r",
    }
    r = await client.post("/api/v1/watchlists/wl-p/imports", headers=admin, json=body)
    assert r.status_code == 201 and r.json()["audit_seq"] > 0
    events = await read_all(settings)
    previews = [e for e in events if e.action == "watchlist.preview" and e.target == "wl-p"]
    assert [e.details["accepted"] for e in previews] == ["true", "false"]  # the unreadable one never ran
    imports = [e for e in events if e.action == "watchlist.import" and e.target == "wl-p"]
    assert (
        len(imports) == 1 and imports[0].details["rejected"] == "2" and imports[0].details["via"] == "console"
    )


async def test_officer_decides_as_themselves_auditor_searches_exports_and_reads_the_report(api) -> None:
    client, settings = api
    wl = f"wl-{uuid.uuid4().hex[:6]}"
    officer, admin, auditor = _h("authorising-officer"), _h("watchlist-admin"), _h("auditor")
    go = await _deployment(client, wl)
    no = await _deployment(client, wl, location="High Street")
    r = await client.post(f"/api/v1/deployments/{go}/authorise", headers=admin)
    assert r.status_code == 403
    r = await client.post(f"/api/v1/deployments/{go}/authorise", headers=officer, json={"officer": "Insp X"})
    assert r.status_code == 422
    r = await client.post(f"/api/v1/deployments/{go}/authorise", headers=officer)
    assert r.status_code == 200 and r.json()["authorised_by"] == "Supt Khan"
    r = await client.post(f"/api/v1/deployments/{no}/refuse", headers=officer, json={"reason": "  "})
    assert r.status_code == 422
    r = await client.post(f"/api/v1/deployments/{no}/refuse", headers=officer, json={"reason": "too broad"})
    assert r.status_code == 200 and r.json()["status"] == "refused"
    assert (await client.post(f"/api/v1/deployments/{no}/start", headers=admin)).status_code == 409
    r = await client.put(f"/api/v1/deployments/{no}/published", headers=officer, json={"published": True})
    assert r.status_code == 409
    assert (await client.post(f"/api/v1/deployments/{go}/start", headers=admin)).status_code == 200

    minute = int(time.time()) // 60 * 60_000
    redis = make_redis(settings)
    try:
        for back, faces, rejected in ((2, 100, 1), (0, 300, 0)):
            per = {uuid.uuid4().hex: {stats.FACES_ANALYSED: faces, stats.ADJ_NO_MATCH: rejected}}
            await stats.add_once(redis, settings, go, "t", per, 60_000, at_ms=minute - back * 60_000)
    finally:
        await redis.aclose()
    r_dep = (await client.get(f"/api/v1/deployments/{go}", headers=officer)).json()
    r = await client.get(f"/api/v1/deployments/{go}/report", headers=auditor)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["report"]["faces_analysed"] == 400 and doc["report"]["rejected"] == 1
    # What the officer authorised against, kept with the record: threshold, size, rates per person.
    shown = doc["report"]["expected"]
    now = r_dep["expected_rate"]  # the watchlist has not changed since: the same figures
    assert shown["watchlist_size"] == now["watchlist_size"] and shown["searches_per_person"] == 3
    assert shown["threshold"] == r_dep["effective_threshold"]
    assert shown["false_alerts_per_1000"] == now["false_alerts_per_1000"] and shown["tpir"] == now["tpir"]
    assert sum(b["faces_analysed"] for b in doc["timeline"]) == 400
    assert [b["faces_analysed"] for b in doc["timeline"] if b["faces_analysed"]] == [100, 300]
    r = await client.get(f"/api/v1/deployments/{go}/report/export?format=csv", headers=officer)
    assert r.status_code == 200 and r.text.startswith("deployment_id,scope,faces_analysed")
    assert (await client.get(f"/api/v1/deployments/{go}/report", headers=admin)).status_code == 403

    r = await client.get("/api/v1/audit/search", headers=auditor, params={"deployment": no})
    assert [e["action"] for e in r.json()][:1] == ["deployment.refuse"] and r.json()[0][
        "reason"
    ] == "too broad"
    r = await client.get(
        "/api/v1/audit/search", headers=auditor, params={"actor": "supt khan", "action": "deployment."}
    )
    assert {e["action"] for e in r.json()} == {"deployment.authorise", "deployment.refuse"}
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    r = await client.get("/api/v1/audit/search", headers=auditor, params={"since": future})
    assert r.status_code == 200 and r.json() == []
    r = await client.get(
        "/api/v1/audit/export", headers=auditor, params={"format": "csv", "action": "deployment.refuse"}
    )
    assert r.status_code == 200 and "attachment" in r.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(r.text)))
    assert len(rows) == 2 and rows[1][3] == "deployment.refuse" and rows[1][6] == no
    r = await client.get("/api/v1/audit/export", headers=auditor, params={"format": "json", "deployment": go})
    exported = len(r.json())
    assert "report.export" in {e["action"] for e in r.json()}  # found by its deployment_id detail
    assert {e["action"] for e in r.json()} >= {
        "deployment.create",
        "deployment.authorise",
        "deployment.start",
    }
    events = await read_all(settings)
    reports = [e for e in events if e.action == "report.export" and e.target == go]
    assert [(e.actor, e.details["format"]) for e in reports] == [("Supt Khan", "csv")]
    exports = [e for e in events if e.action == "audit.export" and e.actor == "aud.1"]
    assert [(e.details["format"], e.details["records"]) for e in exports][-2:] == [
        ("csv", "1"),
        ("json", str(exported)),
    ]

    # Public: nothing until the deployment is over and published; then counts only.
    assert (await client.get("/api/v1/public/deployments")).json() == []
    r = await client.put(f"/api/v1/deployments/{go}/published", headers=officer, json={"published": True})
    assert r.status_code == 200 and r.json()["published"]
    assert (await client.get("/api/v1/public/deployments")).json() == []  # still running
    assert (await client.post(f"/api/v1/deployments/{go}/stop", headers=admin)).status_code == 200
    r = await client.get("/api/v1/public/deployments")
    [record] = r.json()
    assert record["deployment_id"] == go and record["place"] == "North gate" and record["arrests"] is None
    assert (record["faces_analysed"], record["false_alerts"], record["confirmed"]) == (400, 1, 0)
    for private in ("Cup final", "Supt Khan", "wanted persons", wl):
        assert private not in r.text
