"""Bounded coverage-guided fuzzing (atheris/libFuzzer) of the crop decode/decrypt path and the image loader.

Not part of the test suite (run ``make fuzz``; figures in docs/security.md). Each target runs the real code
with in-memory stand-ins only for the services a unit run does not have (Redis keyring, model, vector
store): anything other than the documented outcomes (a DeadLetter with a reason, an expired-key count, a
hit, EnrolmentRejected) is a finding and stops the run with the input saved by libFuzzer.

    python tests/fuzz/fuzz_targets.py crop  -max_total_time=300 corpus/crop
    python tests/fuzz/fuzz_targets.py image -max_total_time=300 corpus/image
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence

import atheris

with atheris.instrument_imports(include=["lfr"]):
    import cv2
    import numpy as np
    from aiokafka import ConsumerRecord

    from lfr.core import topics
    from lfr.core.crypto import KeyExpired, crop_aad, open_blob, seal
    from lfr.core.serde import decode, encode
    from lfr.embedder.handler import EmbedHandler
    from lfr.v1.crop_pb2 import FaceCrop
    from lfr.v1.dead_letter_pb2 import DeadLetter
    from lfr.watchlist.deployments import LiveDeployment
    from lfr.watchlist.enrol import EnrolmentRejected, decode_checked, image_size
    from lfr.watchlist.store import Candidate

KEY = bytes(range(32))
SIZE = 150
REASONS = {"bad_payload", "deployment_not_live", "decrypt_failed", "bad_chip"}


class Keyring:
    async def decrypt(self, blob, aad):  # type: ignore[no-untyped-def]
        if blob.key_id == "expired":
            raise KeyExpired(blob.key_id)
        return open_blob(KEY, blob, aad)


class Probes:
    async def seal(self, deployment_id: str, plaintext: bytes, aad: bytes):  # type: ignore[no-untyped-def]
        return seal("p", KEY, plaintext, aad)


class Rule:
    def is_match(self, raw: float, threshold: float | None = None) -> bool:
        return raw < 0.5

    def to_score(self, raw: float) -> float:
        return 1 - raw


class Embedder:
    card = Rule()
    model_id = "fuzz:1"
    chip_size = SIZE

    def embed(self, chips: Sequence[np.ndarray]) -> np.ndarray:
        for c in chips:
            assert c.shape == (SIZE, SIZE, 3), c.shape
        return np.array([[float(c.mean()) / 255.0] for c in chips], np.float32)


class Matcher:
    async def search(self, vectors, watchlist_ids, top_k):  # type: ignore[no-untyped-def]
        return [[Candidate("s", "wl", "wanted", abs(float(v[0]) - 0.5), 0.9)] for v in vectors]

    async def confirm(self, candidates, watchlist_ids):  # type: ignore[no-untyped-def]
        return list(candidates)


class Deployments:
    async def live(self, deployment_id: str) -> LiveDeployment | None:
        return LiveDeployment("dep", ("wl",), 0.4, "fuzz:1") if deployment_id == "dep" else None


async def _no_counts(deployment_id: str, per_crop: dict[str, dict[str, int]]) -> None:
    return None


LOOP = asyncio.new_event_loop()
HANDLER = EmbedHandler(3, Keyring(), Probes(), Embedder(), Matcher(), Deployments(), _no_counts)  # type: ignore[arg-type]
GOOD_CHIP = cv2.imencode(".jpg", np.full((SIZE, SIZE, 3), 120, np.uint8))[1].tobytes()


def _sealed(crop_id: str, chip: bytes, key_id: str = "k") -> bytes:
    return encode(
        FaceCrop(
            crop_id=crop_id,
            deployment_id="dep",
            camera_id="cam",
            chip=seal(key_id, KEY, chip, crop_aad(crop_id, "cam", "dep")),
        )
    )


def _run(value: bytes) -> None:
    record = ConsumerRecord(topics.CROPS, 0, 0, 0, 0, b"cam", value, None, 0, len(value), [])
    outputs = LOOP.run_until_complete(HANDLER([record]))
    for out in outputs:
        if out.topic == topics.DEADLETTER:
            dl = decode(DeadLetter, out.value)
            assert dl.reason in REASONS, dl.reason
            assert dl.payload == b"", "a crop's payload is never copied to the dead-letter topic"
        else:
            assert out.topic == topics.HITS, out.topic


def crop_target(data: bytes) -> None:
    """Three views of one input: a raw record, a sealed chip of fuzzed bytes, a mutated valid record."""
    fdp = atheris.FuzzedDataProvider(data)
    mode = fdp.ConsumeIntInRange(0, 2)
    rest = fdp.ConsumeBytes(fdp.remaining_bytes())
    if mode == 0:
        _run(rest)
    elif mode == 1:
        _run(_sealed("c", rest))
    else:
        base = bytearray(_sealed("c", GOOD_CHIP))
        for i in range(0, len(rest) - 2, 3):
            pos = (rest[i] << 8 | rest[i + 1]) % len(base)
            base[pos] = rest[i + 2]
        _run(bytes(base))


def image_target(data: bytes) -> None:
    size = image_size(data)
    assert size is None or (size[0] >= 0 and size[1] >= 0)
    try:
        img = decode_checked(data, 2_000_000, 4_000_000)
    except EnrolmentRejected:
        return
    assert img.ndim == 3 and img.shape[0] * img.shape[1] <= 4_000_000


TARGETS = {"crop": crop_target, "image": image_target}


def seeds(name: str) -> dict[str, bytes]:
    """Valid inputs each target starts from, so mutation begins inside the formats, not at random bytes."""
    img = np.random.default_rng(0).integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)
    jpeg = cv2.imencode(".jpg", img)[1].tobytes()
    if name == "crop":
        return {"record": b"\x00" + _sealed("c", GOOD_CHIP), "chip": b"\x01" + jpeg, "mutate": b"\x02"}
    return {
        "jpeg": jpeg,
        "progressive": cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes(),
        "png": cv2.imencode(".png", img[:20, :30])[1].tobytes(),
        "bmp": cv2.imencode(".bmp", img[:8, :8])[1].tobytes(),
    }


if __name__ == "__main__":
    if sys.argv[1:2] == ["--seed"]:  # --seed TARGET DIR: write the seed corpus and stop
        from pathlib import Path

        for seed_name, blob in seeds(sys.argv[2]).items():
            (Path(sys.argv[3]) / f"seed-{seed_name}").write_bytes(blob)
        sys.exit(0)
    name = sys.argv.pop(1) if len(sys.argv) > 1 and sys.argv[1] in TARGETS else "crop"
    atheris.Setup(sys.argv, TARGETS[name])
    atheris.Fuzz()
