"""`lfr demo --watchlist DIR` searches exactly DIR's people: a second run replaces the first run's.

Runs the demo's own preparation step (enrol, then create, authorise and start the deployment) twice against
the real stack with two different folders of real photos, as two `lfr demo` runs on one machine would, and
checks what the watchlist holds, what the run printed, and that every removal is in the audit log.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from lfr.core.config import Settings
from lfr.demo.runner import DEMO_WATCHLIST, DemoInputs, DemoRunner
from lfr.demo.watchlist import REPLACE_REASON
from lfr.watchlist.compose import open_services

pytestmark = [pytest.mark.integration]


@pytest.fixture
def demo_settings(settings_for, models_dir: Path) -> Settings:  # type: ignore[no-untyped-def]
    settings: Settings = settings_for(milvus={"collection_prefix": f"t{uuid.uuid4().hex[:8]}_"})
    return settings


async def _run_prepare(settings: Settings, folder: Path) -> str:
    runner = DemoRunner(settings, None, None, None)
    return await runner._prepare(settings, DemoInputs(folder / "unused.mp4", folder, "test footage"))


async def test_a_second_run_searches_only_its_own_folder(
    demo_settings: Settings, face_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    demo = face_data / "face_recognition_demo"
    first, second = demo / "known_people", demo / "enroll"  # obama + biden, then two performers

    await _run_prepare(demo_settings, first)
    out1 = capsys.readouterr().out
    assert f"watchlist {DEMO_WATCHLIST} holds 2 subject(s)" in out1, out1
    assert "left by an earlier run" not in out1

    dep = await _run_prepare(demo_settings, second)
    out2 = capsys.readouterr().out
    assert "removed 2 subject(s) left by an earlier run" in out2, out2
    assert f"watchlist {DEMO_WATCHLIST} holds 2 subject(s), 2 image(s)" in out2, out2
    # The run says what it alerts at and the false-alert rate that means, per person passing.
    assert "threshold 0.46 (set by the watchlist-size rule" in out2, out2
    assert "per 1,000 people passing (each searched up to 3 times)" in out2, out2
    assert re.search(r"found: 0\.\d\d from one face, 0\.\d\d seen in 3 views", out2), out2

    async with open_services(demo_settings) as svc:
        held = await svc.subjects.list_subjects(DEMO_WATCHLIST)
        assert sorted(r.display_name for r in held) == ["alex lacamoire", "lin manuel miranda"]
        assert (await svc.deployments.get_deployment(dep)).watchlist_ids == [DEMO_WATCHLIST]
        events = await svc.audit_trail.audit_events(limit=500)
    removed = [e for e in events if e.action == "watchlist.delete" and e.reason == REPLACE_REASON]
    assert len(removed) == 2
    assert {e.target.split("/")[0] for e in removed} == {DEMO_WATCHLIST}
    # A third run with the same folder replaces it with itself: the count does not grow.
    await _run_prepare(demo_settings, second)
    assert f"watchlist {DEMO_WATCHLIST} holds 2 subject(s), 2 image(s)" in capsys.readouterr().out
