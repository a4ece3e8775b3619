"""Enrolment of real photos into the real stack: search, delete, bulk import and the audit chain.

Needs the test face data (tests/fixtures/README.md) and the built models. The photos are public-figure
images from face_recognition's examples. Probes are other photos of the same people, so "found" means the
embedder and the store agree across photos.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from lfr.core.audit import read_all, verify_events
from lfr.vision import FaceAnalyzer
from lfr.watchlist.audit_trail import own_chain
from lfr.watchlist.compose import open_services
from lfr.watchlist.enrol import EnrolmentRejected, RejectCode
from lfr.watchlist.store import SubjectMeta

pytestmark = [pytest.mark.integration]

# subject id (a reference number, as forces use) -> enrolment photo, display name
ENROL = {
    "pnc-1001": ("enroll/alex_lacamoire/alex-lacamoire.png", "Alex Lacamoire"),
    "pnc-1002": ("known_people/obama/obama.jpg", "Barack Obama"),
    "pnc-1003": ("known_people/biden/biden.jpg", "Joe Biden"),
}
PROBE_SAME = {
    "pnc-1001": "knn_examples/test/alex_lacamoire1.jpg",
    "pnc-1002": "known_people/obama/obama2.jpg",
    "pnc-1003": "knn_examples/train/biden/biden2.jpg",
}
PROBE_STRANGERS = ["knn_examples/train/rose_leslie/img1.jpg", "knn_examples/train/kit_harington/john1.jpeg"]


def _embed(analyzer: FaceAnalyzer, path: Path) -> np.ndarray:
    image = cv2.imread(str(path))
    assert image is not None, path
    return np.asarray(analyzer.enrol(image).embedding, np.float32)


async def test_enrol_search_delete_import_and_audit(wl_settings, models_dir, demo_faces, tmp_path) -> None:
    analyzer = FaceAnalyzer(wl_settings)
    async with open_services(wl_settings, analyzer=analyzer) as services:
        svc = services.subjects
        card = services.stores.card
        for sid, (rel, name) in ENROL.items():
            meta = SubjectMeta(
                subject_id=sid,
                watchlist_id="wl-demo",
                display_name=name,
                source="press photo",
                image_date="2016-01-01",
            )
            rec = await svc.enrol(meta, (demo_faces / rel).read_bytes(), "pc.test", "trial watchlist")
            assert rec.images == 1 and rec.thumbnail and rec.display_name == name

        # The same person, another photo: first, and under the card's threshold.
        probes = np.stack([_embed(analyzer, demo_faces / PROBE_SAME[s]) for s in ENROL])
        results = svc.store.search(probes, ["wl-demo"], top_k=3)
        for sid, cands in zip(ENROL, results, strict=True):
            assert cands[0].subject_id == sid
            assert card.is_match(cands[0].distance), (sid, cands[0].distance)
            assert not any(card.is_match(c.distance) for c in cands[1:]), "a different person matched too"
        # People who were never enrolled: nothing under the threshold.
        strangers = np.stack([_embed(analyzer, demo_faces / p) for p in PROBE_STRANGERS])
        for cands in svc.store.search(strangers, ["wl-demo"], top_k=3):
            assert cands and not any(card.is_match(c.distance) for c in cands)
        # Another watchlist sees none of them.
        assert svc.store.search(probes, ["wl-other"], top_k=3) == [[], [], []]

        # Several faces: refused with a reason, nothing stored.
        with pytest.raises(EnrolmentRejected) as err:
            await svc.enrol(
                SubjectMeta(subject_id="pnc-group", watchlist_id="wl-demo"),
                (demo_faces / "multi_face/two_people.jpg").read_bytes(),
                "pc.test",
            )
        assert err.value.code == RejectCode.SEVERAL_FACES and "faces" in str(err.value)
        assert (await svc.watchlists()) == {"wl-demo": 3}

        # Delete: the vectors are gone before the call returns.
        assert await svc.delete_subject("wl-demo", "pnc-1001", "pc.test", "removed from list") == 1
        [after] = svc.store.search(probes[:1], ["wl-demo"], top_k=3)
        assert "pnc-1001" not in {c.subject_id for c in after}

        # Bulk import of a folder: one good subject, a group photo, an unreadable file, a loose image.
        src = tmp_path / "import"
        for rel, dest in [
            ("knn_examples/train/alex_lacamoire/img1.jpg", "alex_lacamoire/1.jpg"),
            ("knn_examples/test/alex_lacamoire1.jpg", "alex_lacamoire/2.jpg"),
            ("multi_face/two_people.jpg", "group_photo/1.jpg"),
            ("known_people/biden/biden.jpg", "loose.jpg"),
        ]:
            (src / dest).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(demo_faces / rel, src / dest)
        (src / "broken").mkdir()
        (src / "broken" / "x.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
        summary = await svc.import_subjects(
            src, "wl-import", "pc.test", {"category": "missing"}, progress=False
        )
        assert (summary.total, summary.accepted, summary.subjects) == (5, 2, 1)
        assert summary.by_code() == {"several_faces": 1, "unreadable": 1, "invalid": 1}
        by_ref = {r.ref: r.code for r in summary.rejected}
        assert by_ref == {
            "group_photo/1.jpg": "several_faces",
            "broken/x.jpg": "unreadable",
            "loose.jpg": "invalid",
        }
        [imported] = await svc.list_subjects("wl-import")
        assert (
            imported.images == 2
            and imported.display_name == "alex lacamoire"
            and imported.category == "missing"
        )

        # Expiry: an expired entry is not searched, and the sweep deletes it (audited).
        await svc.update_subject("wl-demo", "pnc-1002", {"expires_at": 1}, "pc.test", "case closed")
        [obama_after] = svc.store.search(probes[1:2], ["wl-demo"], top_k=3)
        assert "pnc-1002" not in {c.subject_id for c in obama_after}
        assert await svc.sweep("pc.test") == 1

        # Audit: this test's chain is intact, holds every change, and no names.
        _, head_hash = await services.audit_trail._head()
        assert head_hash
        chain = own_chain(await read_all(wl_settings), head_hash)
        report = verify_events(chain)
        assert report.ok, report
        actions = [e.action for e in chain]
        assert actions.count("watchlist.enrol") == 5  # three single + two imported images
        assert {"watchlist.delete", "watchlist.import", "watchlist.update", "watchlist.sweep"} <= set(actions)
        text = " ".join(str(e) for e in chain).lower()
        for _, name in ENROL.values():
            assert name.lower() not in text and name.split()[-1].lower() not in text
        assert "lacamoire" not in text  # folder names (people's names) never reach the audit log

        # A tampered copy of the records is caught, and named.
        tampered = [type(e)() for e in chain]
        for copy, original in zip(tampered, chain, strict=True):
            copy.CopyFrom(original)
        tampered[1].details["subject_id"] = "pnc-someone-else"
        bad = verify_events(tampered)
        assert not bad.ok and bad.first_bad_seq == chain[1].seq
