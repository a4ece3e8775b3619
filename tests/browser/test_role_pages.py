"""Every role's console page in a real headless Chromium against the real stack and the whole `lfr api` app.

Each test signs in with the role's token (and is turned away with another role's), does the role's job in
the page, checks what the API recorded (the audit log, the watchlist store, the deployment), checks that
the API refuses the action to other roles (403), and saves a screenshot of the page (test-artifacts/, or
docs/img/ with LFR_DOCS_SCREENSHOTS=1).
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alerting_support import HitMaker, HitProducer, alerting_running
from playwright.async_api import expect

from lfr.core import stats
from lfr.core.audit import read_all
from lfr.core.config import Settings
from lfr.core.redis_client import make_redis
from lfr.ingest.status import write_status

from .browser_support import sign_in
from .roles_support import NAMES, TOKENS, Api, Watched, full_api, role_settings, unlabelled_inputs

pytestmark = [pytest.mark.browser, pytest.mark.integration]

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def photos(face_data: Path) -> dict[str, Path]:
    demo = face_data / "face_recognition_demo"
    return {
        "alex": demo / "enroll/alex_lacamoire/alex-lacamoire.png",
        "alex2": demo / "knn_examples/train/alex_lacamoire/img1.jpg",
        "lin": demo / "enroll/lin_manuel_miranda/lin-manuel-miranda.png",
        "two": demo / "multi_face/two_people.jpg",
    }


def _read(path: Path) -> bytes:
    return path.read_bytes()


async def _audit(settings: Settings, action: str) -> list[Any]:
    return [e for e in await read_all(settings) if e.action == action]


async def _enrol(api: Api, watchlist: str, subject: str, photo: Path) -> None:
    async with api.client("watchlist-admin") as c:
        r = await c.post(
            f"/api/v1/watchlists/{watchlist}/subjects",
            data={"subject_id": subject, "display_name": f"Person {subject}"},
            files={"image": (photo.name, _read(photo), "image/png")},
        )
        assert r.status_code == 201, r.text


async def _deployment(api: Api, watchlists: list[str], start: bool = False, **over: Any) -> str:
    now = datetime.now(UTC)
    spec = {
        "name": "Cup final",
        "location": "North gate, City Stadium",
        "purpose": "Find people wanted for violent offences",
        "starts_at": (now - timedelta(minutes=5)).isoformat(),
        "ends_at": (now + timedelta(hours=3)).isoformat(),
        "authorising_officer": NAMES["authorising-officer"],
        "watchlist_ids": watchlists,
        **over,
    }
    async with api.client("watchlist-admin") as admin, api.client("authorising-officer") as officer:
        r = await admin.post("/api/v1/deployments", json=spec)
        assert r.status_code == 201, r.text
        dep_id: str = r.json()["deployment_id"]
        if start:
            assert (await officer.post(f"/api/v1/deployments/{dep_id}/authorise")).status_code == 200
            assert (await admin.post(f"/api/v1/deployments/{dep_id}/start")).status_code == 200
    return dep_id


async def _count(settings: Settings, dep: str, minute_ms: int, **counters: int) -> None:
    redis = make_redis(settings)
    try:
        item = {uuid.uuid4().hex: {getattr(stats, k.upper()): v for k, v in counters.items()}}
        await stats.add_once(redis, settings, dep, "browser-test", item, 60_000, at_ms=minute_ms)
    finally:
        await redis.aclose()


# ---- watchlist administrator ----------------------------------------------------------------------------


async def test_watchlist_admin_previews_enrols_imports_expires_and_removes(
    settings_for, models_dir, photos: dict[str, Path], browser: Any, tmp_path: Path
) -> None:
    settings = role_settings(settings_for)
    wl = f"wl-{uuid.uuid4().hex[:6]}"
    async with full_api(settings) as api:
        page = Watched(await browser.new_page(viewport=DESKTOP))
        await page.refused_sign_in(f"{api.base_url}/console/watchlists.html", "operator", "watchlist-admin")
        await page.sign_in(f"{api.base_url}/console/watchlists.html", "watchlist-admin")
        p = page.page
        assert await unlabelled_inputs(p) == []
        await p.get_by_label("Open or start a watchlist").fill(wl)
        await p.get_by_role("button", name="Open", exact=True).click()
        await expect(p.locator("#subjects-title")).to_have_text(f"Subjects of {wl}")

        # Preview before saving: one photo passes, the photo of two people is refused, with the reason.
        await p.get_by_label("Subject ID").fill("pnc-1001")
        await p.get_by_label("Display name").fill("Alex Example")
        await p.get_by_label("Reason (recorded in the audit log)").first.fill("warrant 77")
        await p.get_by_label("Photos (one face each; checked before saving)").set_input_files(
            [str(photos["alex"]), str(photos["two"])]
        )
        await expect(p.locator("#enrol-status")).to_have_text(
            "1 of 2 photo(s) can be enrolled.", timeout=120_000
        )
        accepted = p.locator(f'.preview.accepted[data-file="{photos["alex"].name}"]')
        refused = p.locator(f'.preview.refused[data-file="{photos["two"].name}"]')
        await expect(accepted.locator(".verdict")).to_contain_text("Accepted")
        await expect(refused.locator(".verdict")).to_contain_text("several_faces")
        assert await accepted.locator(".facebox.ok").count() == 1
        assert await refused.locator(".facebox").count() >= 2
        assert await accepted.locator("img.chip").evaluate("e => e.complete && e.naturalWidth > 0")
        async with api.client("watchlist-admin") as c:
            assert (await c.get(f"/api/v1/watchlists/{wl}/subjects")).json()["count"] == 0  # nothing saved
        await page.screenshot("watchlists-preview")

        await p.get_by_role("button", name="Enrol accepted photos").click()
        await expect(p.locator("#enrol-status")).to_have_text(
            "Enrolled 1 photo(s) of pnc-1001.", timeout=60_000
        )
        row = p.locator('#subjects tr[data-subject-id="pnc-1001"]')
        await expect(row).to_contain_text("Alex Example")
        await expect(row.locator(".expires")).to_have_text("never")

        # Expiry.
        await row.get_by_label("New expiry for pnc-1001").fill("30d")
        await row.get_by_label("Reason for changing pnc-1001").fill("review date")
        await row.get_by_role("button", name="Set expiry").click()
        await expect(p.locator("#subject-status")).to_have_text("Expiry of pnc-1001 changed.")
        await expect(row.locator(".expires")).not_to_have_text("never")

        # Bulk import: one good row, one photo of two people, one photo not chosen, one bad category.
        folder = tmp_path / "import"
        folder.mkdir()
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["subject_id", "display_name", "image_path", "category"])
        w.writerow(["pnc-2001", "Lin Example", f"photos/{photos['lin'].name}", "missing"])
        w.writerow(["pnc-2002", "Two People", photos["two"].name, "wanted"])
        w.writerow(["pnc-2003", "Not Chosen", "absent.jpg", "wanted"])
        w.writerow(["pnc-2004", "Bad Category", photos["alex2"].name, "suspect"])
        (folder / "list.csv").write_text(buf.getvalue())
        await p.get_by_label("CSV file").set_input_files(str(folder / "list.csv"))
        await p.get_by_label("Photos named in the CSV").set_input_files(
            [str(photos["lin"]), str(photos["two"]), str(photos["alex2"])]
        )
        await p.get_by_role("button", name="Import").click()
        await expect(p.locator("#import-status")).to_have_text(
            "Imported 1 of 4 row(s); 3 not imported.", timeout=180_000
        )
        assert await p.locator("#i-progress").get_attribute("value") == "4"
        errors = p.locator("#import-errors tbody tr")
        await expect(errors).to_have_count(3)
        text = await p.locator("#import-errors").inner_text()
        assert "list.csv:3" in text and "faces" in text  # two people: refused with the detector's reason
        assert "absent.jpg was not among the files chosen" in text
        assert "list.csv:5" in text and "category" in text
        await expect(p.locator('#subjects tr[data-subject-id="pnc-2001"]')).to_contain_text("missing")
        await page.screenshot("watchlists")

        # Removal.
        await (
            p.locator('#subjects tr[data-subject-id="pnc-2001"]').get_by_role("button", name="Remove").click()
        )
        await expect(p.locator("#subject-status")).to_have_text("Removed pnc-2001 (1 images deleted).")
        await expect(p.locator('#subjects tr[data-subject-id="pnc-2001"]')).to_have_count(0)
        page.assert_clean(allowed_failures=("/subjects",))  # the refused import rows answer 422 on purpose
        assert all(f.startswith("422 ") for f in page.failed), page.failed

        # The API refuses every one of these actions to other roles.
        for role in ("operator", "auditor", "authorising-officer", "operations"):
            async with api.client(role) as c:
                files = {"image": ("a.png", photos["alex"].read_bytes(), "image/png")}
                assert (await c.post(f"/api/v1/watchlists/{wl}/preview", files=files)).status_code == 403
                r = await c.post(f"/api/v1/watchlists/{wl}/imports", json={"total": 1, "accepted": 1})
                assert r.status_code == 403
                assert (await c.delete(f"/api/v1/watchlists/{wl}/subjects/pnc-1001")).status_code == 403

    previews = [e for e in await _audit(settings, "watchlist.preview") if e.target == wl]
    assert sorted(e.details["accepted"] for e in previews) == ["false", "true"]
    assert all(e.actor == NAMES["watchlist-admin"] for e in previews)
    assert {e.target for e in await _audit(settings, "watchlist.enrol")} >= {
        f"{wl}/pnc-1001",
        f"{wl}/pnc-2001",
    }
    assert [
        e.details["fields"] for e in await _audit(settings, "watchlist.update") if e.target.startswith(wl)
    ] == ["expires_at"]
    imports = [e for e in await _audit(settings, "watchlist.import") if e.target == wl]
    assert (
        len(imports) == 1 and imports[0].details["accepted"] == "1" and imports[0].details["rejected"] == "3"
    )
    assert [e.target for e in await _audit(settings, "watchlist.delete")] == [f"{wl}/pnc-2001"]
    # No display name ever enters the audit log.
    assert not any("Example" in json.dumps(dict(e.details)) for e in await read_all(settings))


# ---- authorising officer --------------------------------------------------------------------------------


async def test_authorising_officer_reviews_then_authorises_refuses_and_publishes(
    settings_for, models_dir, photos: dict[str, Path], browser: Any
) -> None:
    settings = role_settings(settings_for)
    wl = f"wl-{uuid.uuid4().hex[:6]}"
    async with full_api(settings) as api:
        await _enrol(api, wl, "pnc-1", photos["alex"])
        await _enrol(api, wl, "pnc-2", photos["lin"])
        first = await _deployment(api, [wl])
        second = await _deployment(api, [wl], name="Carnival", location="High Street")
        async with api.client("watchlist-admin") as admin:
            cam = {"camera_id": f"cam-{first[-6:]}", "deployment_id": first, "url": "rtsp://cam.example/1"}
            assert (await admin.post("/api/v1/cameras", json=cam)).status_code == 201
            # Watchlist administrators set deployments up but can no longer authorise them.
            assert (await admin.post(f"/api/v1/deployments/{first}/authorise")).status_code == 403

        page = Watched(await browser.new_page(viewport=DESKTOP))
        await page.refused_sign_in(
            f"{api.base_url}/console/authorise.html", "watchlist-admin", "authorising-officer"
        )
        await page.sign_in(f"{api.base_url}/console/authorise.html", "authorising-officer")
        p = page.page
        await expect(p.locator(f'#mine li[data-deployment-id="{first}"]')).to_be_visible()
        await p.locator(f'#mine li[data-deployment-id="{first}"] button').click()
        await expect(p.locator("#r-place")).to_have_text("North gate, City Stadium")
        await expect(p.locator("#r-purpose")).to_have_text("Find people wanted for violent offences")
        await expect(p.locator("#r-cameras")).to_contain_text(f"cam-{first[-6:]}")
        await expect(p.locator("#r-watchlists")).to_have_text(wl)
        await expect(p.locator("#r-size")).to_have_text("2 images")
        await expect(p.locator("#r-far")).to_contain_text("per 1,000 people passing")
        await expect(p.locator("#r-far")).to_contain_text("each searched up to 3 times")
        await expect(p.locator("#r-source")).to_contain_text("watchlist-size rule")
        assert (await p.locator("#r-tpir").inner_text()).strip() != ""
        await expect(p.locator("#r-tpir")).to_contain_text("when seen in 3 views")
        assert await unlabelled_inputs(p) == []
        await page.screenshot("authorise")

        await p.get_by_role("button", name="Authorise").click()
        await expect(p.locator("#decision-status")).to_have_text("Authorised. Status: authorised.")
        await expect(p.locator("#r-status")).to_have_text("authorised")
        assert await p.locator("#decide").is_hidden()

        await p.locator(f'#mine li[data-deployment-id="{second}"] button').click()
        await p.get_by_role("button", name="Refuse").click()
        await expect(p.locator("#decision-status")).to_contain_text("Give a reason")
        await p.get_by_label("Reason for refusing").fill("The watchlist is wider than the stated purpose")
        await p.get_by_role("button", name="Refuse").click()
        await expect(p.locator("#decision-status")).to_have_text("Refused. Status: refused.")
        await expect(p.locator("#r-status")).to_contain_text("The watchlist is wider than the stated purpose")
        assert await p.locator("#publish").is_hidden()  # nothing ran: nothing to publish

        await p.locator(f'#others li[data-deployment-id="{first}"] button').click()
        await p.get_by_role("button", name="Publish on the public page").click()
        await expect(p.locator("#decision-status")).to_have_text("Published on the public transparency page.")
        await expect(p.locator("#publish-state")).to_contain_text("Published")
        page.assert_clean()

        for role in ("watchlist-admin", "operator", "auditor", "operations"):
            async with api.client(role) as c:
                assert (
                    await c.post(f"/api/v1/deployments/{second}/refuse", json={"reason": "x"})
                ).status_code == 403
                r = await c.put(f"/api/v1/deployments/{first}/published", json={"published": False})
                assert r.status_code == 403
        async with api.client("authorising-officer") as c:  # as oneself only
            r = await c.post(f"/api/v1/deployments/{second}/authorise", json={"officer": "Insp Other"})
            assert r.status_code == 422 and "decide as yourself" in r.json()["detail"]
            assert (await c.post(f"/api/v1/deployments/{first}/start")).status_code == 403

    officer = NAMES["authorising-officer"]
    auth = [e for e in await _audit(settings, "deployment.authorise") if e.target == first]
    assert len(auth) == 1 and auth[0].actor == officer
    refusal = [e for e in await _audit(settings, "deployment.refuse") if e.target == second]
    assert len(refusal) == 1 and refusal[0].reason == "The watchlist is wider than the stated purpose"
    published = [e for e in await _audit(settings, "deployment.publish") if e.target == first]
    assert len(published) == 1 and published[0].actor == officer


# ---- operator: the field view on a phone ----------------------------------------------------------------


async def test_field_view_on_a_phone_shows_probe_beside_reference_and_records_the_decision(
    settings_for, models_dir, photos: dict[str, Path], browser: Any
) -> None:
    settings = role_settings(settings_for)
    wl = f"wl-{uuid.uuid4().hex[:6]}"
    async with full_api(settings) as api, alerting_running(settings), HitProducer(settings) as producer:
        await _enrol(api, wl, "pnc-77", photos["alex"])
        dep = await _deployment(api, [wl], start=True)
        maker = HitMaker(settings, jpeg=photos["alex2"].read_bytes())
        maker.registered.add(dep)  # a real deployment, created and started above: not to be replaced
        hit = await maker.hit(
            dep, "pnc-77", "crop-field-1", camera_id="cam-north-2", watchlist_id=wl, score=0.71
        )
        await producer.send([hit])

        context = await browser.new_context(
            viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True
        )
        page = Watched(await context.new_page())
        await page.refused_sign_in(f"{api.base_url}/console/field.html", "auditor", "operator")
        await page.sign_in(f"{api.base_url}/console/field.html", "operator")
        p = page.page
        option = p.locator(f'#f-deployment option[value="{dep}"]')
        await option.wait_for(state="attached", timeout=15_000)
        await p.get_by_label("Deployment").select_option(dep)
        await p.get_by_role("button", name="Watch").click()
        current = p.locator("#current")
        await expect(current).to_be_visible(timeout=15_000)
        await expect(p.locator("#a-subject")).to_contain_text("Person pnc-77")
        await expect(p.locator("#a-camera")).to_have_text("cam-north-2")
        for sel in ("#probe", "#reference"):
            deadline = time.monotonic() + 15
            while not await p.eval_on_selector(sel, "e => e.complete && e.naturalWidth > 0"):
                assert time.monotonic() < deadline, f"{sel} did not load"
                await asyncio.sleep(0.1)

        # Side by side on a 390 px screen: same row, probe left of reference, both inside the screen, and
        # nothing wider than the screen (no sideways scrolling).
        probe = await p.locator("#probe").bounding_box()
        ref = await p.locator("#reference").bounding_box()
        assert probe and ref
        assert abs(probe["y"] - ref["y"]) < 2 and probe["x"] + probe["width"] <= ref["x"]
        assert probe["x"] >= 0 and ref["x"] + ref["width"] <= PHONE["width"]
        assert probe["width"] >= 140 and ref["width"] >= 140  # big enough to compare faces
        wide = await p.evaluate(
            "[...document.querySelectorAll('body *')]"
            ".filter(e => e.getBoundingClientRect().right > 391)"
            ".map(e => `${e.tagName}#${e.id}.${e.className}`)"
        )
        assert wide == [], wide
        assert await p.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        for name in ("Confirm", "Not them", "Unsure"):
            box = await p.get_by_role("button", name=name).bounding_box()
            assert box and box["height"] >= 44 and box["x"] + box["width"] <= PHONE["width"]  # thumb-sized
        await page.screenshot("field")

        await p.get_by_role("button", name="Confirm").click()
        await expect(p.locator("#decision-status")).to_have_text("Recorded: Confirmed.")
        await expect(p.locator("#a-status")).to_have_text("Confirmed")
        assert await p.get_by_role("button", name="Not them").is_disabled()
        await context.close()

        # The desktop alert view of the same deployment, for the docs.
        desk = Watched(await browser.new_page(viewport=DESKTOP))
        await desk.page.goto(f"{api.base_url}/console/")
        await sign_in(desk.page, TOKENS["operator"])
        await desk.page.get_by_label("Deployment ID").fill(dep)
        await desk.page.get_by_role("button", name="Open deployment").click()
        await desk.page.locator("#alert-list li[data-alert-id] button").first.click()
        await expect(desk.page.locator("#f-status")).to_have_text("Confirmed match")
        await asyncio.sleep(0.5)
        await desk.screenshot("operator")
        page.assert_clean()

    decisions = [e for e in await _audit(settings, "alert.adjudicate") if e.details["deployment_id"] == dep]
    assert len(decisions) == 1 and decisions[0].actor == NAMES["operator"]
    assert decisions[0].details["outcome"] == "match"
    views = {e.action for e in await read_all(settings) if e.details.get("deployment_id") == dep}
    assert {"alert.view_probe", "alert.view_reference"} <= views


# ---- auditor --------------------------------------------------------------------------------------------


async def test_auditor_verifies_searches_exports_and_plots_a_report(
    settings_for, models_dir, browser: Any, tmp_path: Path
) -> None:
    settings = role_settings(settings_for)
    wl = f"wl-{uuid.uuid4().hex[:6]}"
    async with full_api(settings) as api:
        dep = await _deployment(api, [wl], start=True, name="Market day", location="Market Square")
        now_min = int(time.time()) // 60 * 60_000
        for i, (faces, alerts, match, no_match) in enumerate(
            [(400, 2, 1, 1), (650, 1, 0, 1), (300, 0, 0, 0)]
        ):
            at = now_min - (2 - i) * 60_000
            await _count(settings, dep, at, faces_analysed=faces, alerts=alerts)
            await _count(settings, dep, at, adj_match=match, adj_no_match=no_match)

        page = Watched(await browser.new_page(viewport=DESKTOP))
        await page.refused_sign_in(f"{api.base_url}/console/audit.html", "operator", "auditor")
        await page.sign_in(f"{api.base_url}/console/audit.html", "auditor")
        p = page.page
        await expect(p.locator("#chain-status")).to_have_attribute("data-ok", "true", timeout=30_000)
        await expect(p.locator("#chain-status")).to_contain_text("chain intact")
        await p.click("#rehash-button")
        await expect(p.locator("#chain-status")).to_contain_text("every record re-hashed", timeout=30_000)
        await expect(p.locator("#chain-status")).to_have_attribute("data-ok", "true")

        await p.get_by_label("Action").fill("deployment.")
        await p.locator("#s-deployment").fill(dep)
        await p.get_by_role("button", name="Search").click()
        await expect(p.locator("#search-status")).to_have_text("4 record(s), newest first.", timeout=30_000)
        actions = await p.locator("#results tbody tr").evaluate_all("rows => rows.map(r => r.dataset.action)")
        # Newest first; the watchlist-size rule sets the threshold right after creation.
        assert actions == [
            "deployment.start",
            "deployment.authorise",
            "deployment.threshold",
            "deployment.create",
        ]
        await p.get_by_label("Actor").fill(NAMES["authorising-officer"])
        await p.get_by_role("button", name="Search").click()
        await expect(p.locator("#search-status")).to_have_text("1 record(s), newest first.")

        async with p.expect_download() as got:
            await p.locator("#export-csv").click()
        download = await got.value
        saved = tmp_path / download.suggested_filename
        await download.save_as(saved)
        rows = list(csv.reader(saved.open()))
        assert rows[0][:4] == ["seq", "time", "actor", "action"] and len(rows) == 2
        assert rows[1][2:4] == [NAMES["authorising-officer"], "deployment.authorise"] and rows[1][6] == dep

        await p.locator("#r-deployment").select_option(dep)
        await p.get_by_role("button", name="Show report").click()
        await expect(p.locator("#t-faces")).to_have_text("1,350")
        await expect(p.locator("#t-alerts")).to_have_text("3")
        await expect(p.locator("#t-rejected")).to_have_text("2")
        await expect(p.locator("#t-far")).to_have_text("1.48")
        await expect(p.locator("#t-expected")).to_contain_text(
            "false alerts expected per 1,000 people passing"
        )
        for chart in ("#c-faces", "#c-alerts", "#c-outcomes"):
            assert await p.locator(f"{chart} svg rect").count() >= 2, chart
        assert await p.locator("#c-far svg polyline").count() == 1
        async with p.expect_download() as got:
            await p.locator("#report-json").click()
        report = json.loads(_read(Path(await (await got.value).path())))
        assert (
            report["report"]["faces_analysed"] == 1350 and sum(b["alerts"] for b in report["timeline"]) == 3
        )
        await p.get_by_label("Action").fill("")
        await p.get_by_label("Actor").fill("")
        await p.locator("#s-deployment").fill("")
        await p.get_by_role("button", name="Search").click()
        await expect(p.locator("#results tbody tr")).not_to_have_count(1)
        await expect(p.locator("#search-status")).to_contain_text("record(s), newest first.")
        await page.screenshot("audit")
        page.assert_clean()

        for role in ("watchlist-admin", "operator", "authorising-officer", "operations"):
            async with api.client(role) as c:
                assert (await c.get("/api/v1/audit/search")).status_code == 403
                assert (await c.get("/api/v1/audit/export")).status_code == 403
        async with api.client("operator") as c:
            assert (await c.get(f"/api/v1/deployments/{dep}/report/export")).status_code == 403

    exports = await _audit(settings, "audit.export")
    assert len(exports) == 1 and exports[0].actor == NAMES["auditor"] and exports[0].details["records"] == "1"
    assert exports[0].details["actor"] == NAMES["authorising-officer"]
    reports = [e for e in await _audit(settings, "report.export") if e.target == dep]
    assert len(reports) == 1 and reports[0].details["format"] == "json"


# ---- operations -----------------------------------------------------------------------------------------


async def test_operations_page_shows_cameras_lag_workers_throughput_and_keys(
    settings_for, models_dir, browser: Any
) -> None:
    settings = role_settings(settings_for)
    async with full_api(settings) as api, alerting_running(settings), HitProducer(settings) as producer:
        dep = await _deployment(api, [f"wl-{uuid.uuid4().hex[:6]}"], start=True, location="East Gate")
        cams = [f"cam-ok-{dep[-4:]}", f"cam-down-{dep[-4:]}"]
        async with api.client("watchlist-admin") as admin:
            for cam in cams:
                body = {"camera_id": cam, "deployment_id": dep, "url": f"rtsp://cams.example/{cam}"}
                assert (await admin.post("/api/v1/cameras", json=body)).status_code == 201
        # What an ingest replica reports for its cameras (lfr.ingest.status): one streaming, one not.
        redis = make_redis(settings)
        try:
            up = {"camera_id": cams[0], "deployment_id": dep, "state": "connected", "connected": True}
            up |= {"input_fps": 25.0, "analysed_fps": 5.0, "last_frame_age_s": 0.2, "reconnects": 0}
            down = {"camera_id": cams[1], "deployment_id": dep, "state": "reconnecting", "connected": False}
            down |= {"input_fps": 0.0, "analysed_fps": 0.0, "last_frame_age_s": 95.0, "reconnects": 4}
            await write_status(redis, settings, [up, down], replica=0)
        finally:
            await redis.aclose()
        maker = HitMaker(settings)  # sealing a probe creates the deployment's alert key (its TTL is shown)
        maker.registered.add(dep)
        await producer.send([await maker.hit(dep, "s-ops", "crop-ops-1", camera_id=cams[0])])

        page = Watched(await browser.new_page(viewport=DESKTOP))
        await page.refused_sign_in(f"{api.base_url}/console/ops.html", "auditor", "operations")
        await page.sign_in(f"{api.base_url}/console/ops.html", "operations")
        p = page.page
        await expect(p.locator("#ops-status")).to_have_attribute(
            "data-healthy", re.compile("^(true|false)$"), timeout=30_000
        )
        async with api.client("operations") as c:
            status = (await c.get("/api/v1/ops/status")).json()
        health = {c["camera_id"]: c["health"] for c in status["cameras"]}
        assert health[cams[0]] == "ok" and health[cams[1]] != "ok", health
        ok_row = p.locator(f'#cameras tr[data-camera-id="{cams[0]}"]')
        await expect(ok_row).to_have_attribute("data-health", "ok")
        await expect(ok_row).to_contain_text("25.0")
        await expect(p.locator(f'#cameras tr[data-camera-id="{cams[1]}"]')).to_have_attribute(
            "data-health", health[cams[1]]
        )
        await expect(p.locator("#ops-status")).to_contain_text(f"{cams[1]} ({health[cams[1]]})")

        group = settings.alerting.group_id
        mine = next(g for g in status["groups"] if g["group"] == group)
        assert mine["members"] and mine["partitions"]
        await expect(p.locator("#lag tbody tr", has_text=group)).to_have_count(len(mine["partitions"]))
        await expect(p.locator("#workers tbody tr", has_text=group)).to_contain_text(
            str(len(mine["members"]))
        )
        await expect(p.locator("#throughput tbody tr")).to_have_count(len(status["throughput"]))
        assert status["keys"]["alert_keys"], status["keys"]
        await expect(p.locator("#keys tbody tr", has_text=dep)).to_have_count(1)
        await expect(p.locator("#deployments tbody tr", has_text=dep)).to_contain_text("running")
        await expect(p.locator("#stack li")).to_have_count(4)
        await page.screenshot("operations")
        page.assert_clean()
        for role in ("watchlist-admin", "operator", "auditor", "authorising-officer"):
            async with api.client(role) as c:
                assert (await c.get("/api/v1/ops/status")).status_code == 403


# ---- the public -----------------------------------------------------------------------------------------


async def test_public_page_lists_only_finished_published_deployments_without_personal_data(
    settings_for, models_dir, photos: dict[str, Path], browser: Any
) -> None:
    settings = role_settings(settings_for)
    wl = f"wl-{uuid.uuid4().hex[:6]}"
    async with full_api(settings) as api:
        await _enrol(api, wl, "pnc-5", photos["alex"])
        done = await _deployment(api, [wl], start=True, name="Secret op name", location="Riverside Walk")
        still_running = await _deployment(api, [wl], start=True, location="Station Forecourt")
        unpublished = await _deployment(api, [wl], start=True, location="Bus Station")
        minute = int(time.time()) // 60 * 60_000
        await _count(settings, done, minute, faces_analysed=5210, alerts=4)
        await _count(settings, done, minute, adj_match=3, adj_no_match=1)
        async with api.client("watchlist-admin") as admin, api.client("authorising-officer") as officer:
            for dep in (done, unpublished):
                assert (await admin.post(f"/api/v1/deployments/{dep}/stop")).status_code == 200
            for dep in (done, still_running):
                r = await officer.put(f"/api/v1/deployments/{dep}/published", json={"published": True})
                assert r.status_code == 200, r.text

        page = Watched(await browser.new_page(viewport=DESKTOP))
        await page.page.goto(f"{api.base_url}/console/transparency.html")  # no sign-in
        p = page.page
        await expect(p.locator("#records-status")).to_have_text("1 deployment(s).")
        row = p.locator(f'#records tr[data-deployment-id="{done}"]')
        cells = await row.locator("td").all_inner_texts()
        assert cells[0] == "Riverside Walk"
        # Size, threshold and expected false alerts per 1,000 people as authorised (one image: the card's
        # threshold; the rate per person from the card's calibration), then the outcome.
        assert cells[3:5] == ["1", "0.46"]
        assert 0 < float(cells[5]) < 1000 / 6000
        assert cells[6:] == ["5,210", "4", "3", "1", "published by the force"]
        body = await p.locator("body").inner_text()
        for private in (
            "Secret op name",
            NAMES["authorising-officer"],
            NAMES["watchlist-admin"],
            "pnc-5",
            wl,
        ):
            assert private not in body
        await page.screenshot("public")
        page.assert_clean()
        async with api.client(None) as anyone:
            r = await anyone.get("/api/v1/public/deployments")
            assert r.status_code == 200 and [d["deployment_id"] for d in r.json()] == [done]
            for private in ("Secret op name", NAMES["authorising-officer"], "pnc-5", wl, "purpose"):
                assert private not in r.text
            assert (await anyone.get("/api/v1/deployments")).status_code == 401
