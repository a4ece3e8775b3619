"""The redaction API against the real stack: roles, refusal, background job with progress, preview,
choosing a track to keep, download, report and audit."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi import FastAPI

from lfr.core.audit import read_all
from lfr.core.config import Settings

from .checks import Checker
from .conftest import read

pytestmark = [pytest.mark.integration]

MULTI_FACE = "facenet_pytorch_samples/multi_face/multiface.jpg"
REASON = "publication appeal: bystanders must not be shown"


async def _wait(c: httpx.AsyncClient, job: str, headers: dict[str, str]) -> dict:  # type: ignore[type-arg]
    seen = []
    for _ in range(600):
        r = await c.get(f"/api/v1/redactions/{job}", headers=headers)
        assert r.status_code == 200, r.text
        body = r.json()
        seen.append(body["status"])
        if body["status"] in ("done", "failed"):
            return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"job not finished: {seen[-5:]}")


async def test_api_redaction_job_preview_keep_and_download(
    stack_settings: Settings, models_dir: Path, checker: Checker, face_data: Path, tmp_path: Path
) -> None:
    from lfr.api import routes_redact
    from lfr.api.context import ApiContext

    data = stack_settings.model_dump()
    data["redis"]["key_prefix"] = f"lfr-redact-api-{uuid.uuid4().hex[:6]}:"
    data["models"]["dir"] = models_dir
    data["api"]["api_keys"] = [
        {"name": "op-3", "key": "k-op", "roles": ["operator"]},
        {"name": "aud-1", "key": "k-aud", "roles": ["auditor"]},
    ]
    s = Settings(**data)
    app = FastAPI()
    app.state.settings = s
    app.state.ctx = await ApiContext.start(s)
    app.include_router(routes_redact.router)
    photo = (face_data / MULTI_FACE).read_bytes()
    case = f"OP-red-{uuid.uuid4().hex[:4]}"
    form = {"case_ref": case, "reason": REASON, "preview": "1"}
    files = {"file": ("group.jpg", photo, "image/jpeg")}
    op, aud = {"Authorization": "Bearer k-op"}, {"Authorization": "Bearer k-aud"}
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            assert (await c.post("/api/v1/redactions", data=form, files=files)).status_code == 401
            assert (
                await c.post("/api/v1/redactions", data=form, files=files, headers=aud)
            ).status_code == 403
            r = await c.post("/api/v1/redactions", data={**form, "reason": ""}, files=files, headers=op)
            assert r.status_code == 422 and "reason" in r.json()["detail"]
            r = await c.post("/api/v1/redactions", data={**form, "style": "smudge"}, files=files, headers=op)
            assert r.status_code == 422
            # 1. everything covered, with a preview of the tracks
            r = await c.post("/api/v1/redactions", data=form, files=files, headers=op)
            assert r.status_code == 202, r.text
            job = r.json()["job_id"]
            done = await _wait(c, job, op)
            assert done["status"] == "done" and done["progress"] == 1.0 and done["actor"] == "op-3"
            tracks = done["tracks"]
            assert len(tracks) >= 4 and done["report"]["tracks"]["found"] == len(tracks)
            sheet = await c.get(f"/api/v1/redactions/{job}/preview.png", headers=op)
            assert sheet.status_code == 200 and sheet.content[:4] == b"\x89PNG"
            out = await c.get(f"/api/v1/redactions/{job}/output", headers=op)
            assert out.status_code == 200 and out.headers["content-type"] == "image/jpeg"
            (tmp_path / "all.jpg").write_bytes(out.content)
            real = [d.bbox for d in checker.reference.detect(read(face_data / MULTI_FACE)) if d.score >= 0.9]
            found = [d.bbox for d in checker.strong.detect(read(tmp_path / "all.jpg"))]
            from .test_shared_footage import near

            assert real and not [b for b in real if near(b, found)]
            # 2. the officer keeps track 1 from the preview
            keep = tracks[0]["track"]
            r = await c.post(
                "/api/v1/redactions", data={**form, "keep_tracks": str(keep)}, files=files, headers=op
            )
            job2 = r.json()["job_id"]
            done2 = await _wait(c, job2, op)
            assert [k["track_id"] for k in done2["report"]["tracks"]["kept"]] == [keep]
            report = (await c.get(f"/api/v1/redactions/{job2}/report", headers=op)).json()
            out2 = await c.get(f"/api/v1/redactions/{job2}/output", headers=op)
            import hashlib

            assert hashlib.sha256(out2.content).hexdigest() == report["output"]["sha256"]
            (tmp_path / "kept.jpg").write_bytes(out2.content)
            found = [d.bbox for d in checker.strong.detect(read(tmp_path / "kept.jpg"))]
            assert len([b for b in real if near(b, found)]) == 1
            assert (await c.delete(f"/api/v1/redactions/{job2}", headers=op)).status_code == 204
            assert (await c.get(f"/api/v1/redactions/{job2}", headers=op)).status_code == 404
    finally:
        await app.state.ctx.close()
    events = [e for e in await read_all(s) if e.target == f"case:{case}"]
    actions = [e.action for e in events]
    assert actions.count("evidence.redact") == 2 and actions.count("evidence.redact.download") == 2
    assert "evidence.redact.view_preview" in actions
    assert all(e.actor == "op-3" for e in events)
    assert np.all([e.details.get("via") == "api" for e in events if e.action == "evidence.redact"])
