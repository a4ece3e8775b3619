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
from pathlib import Path

import atheris

# The embedder's fakes are the unit tests' own (tests/unit/embedder_fakes.py): import them from the checkout.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

with atheris.instrument_imports(include=["lfr"]):
    import cv2
    import numpy as np

    from lfr.core import topics
    from lfr.core.serde import decode, encode
    from lfr.v1.dead_letter_pb2 import DeadLetter
    from lfr.watchlist.enrol import EnrolmentRejected, decode_checked, image_size
    from tests.unit.embedder_fakes import SIZE, chip_jpeg, crop_record, sealed_crop, wired_handler

REASONS = {"bad_payload", "deployment_not_live", "decrypt_failed", "bad_chip"}

LOOP = asyncio.new_event_loop()
WIRED = wired_handler(threshold=0.4)
WIRED.keyring.expired.add("expired")
GOOD_CHIP = chip_jpeg(120)


def _sealed(crop_id: str, chip: bytes) -> bytes:
    return encode(sealed_crop(crop_id, chip))


def _run(value: bytes) -> None:
    WIRED.matcher.calls.clear()  # the fakes keep what they saw for tests; a fuzz run needs none of it
    WIRED.matcher.confirmed.clear()
    outputs = LOOP.run_until_complete(WIRED.handler([crop_record(value)]))
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
        for seed_name, blob in seeds(sys.argv[2]).items():
            (Path(sys.argv[3]) / f"seed-{seed_name}").write_bytes(blob)
        sys.exit(0)
    name = sys.argv.pop(1) if len(sys.argv) > 1 and sys.argv[1] in TARGETS else "crop"
    atheris.Setup(sys.argv, TARGETS[name])
    atheris.Fuzz()
