"""The `make demo` sample scene, built on any machine from face photos that registry packages ship.

Why built, not shipped: LFR must not ship photos of real people in its package or images, and a fresh
machine has no ``../shared`` data. Two pinned packages on PyPI carry permissively licensed sample photos:

* the ``face_recognition==1.3.0`` **sdist** (MIT): ``tests/test_images/`` holds three photos of Barack
  Obama and one of Joe Biden (the wheel does not contain the tests, hence ``--no-binary :all:``);
* the ``insightface==2.1`` **wheel** (MIT code; sample images): ``insightface/data/images/t1.jpg`` (a
  group of six people) and ``Tom_Hanks_54745.png`` (an aligned 112x112 face).

They are fetched with ``pip download --no-deps`` into the scene's cache folder and only read as archives:
nothing from them is installed or imported. (pip prepares an sdist's metadata by running its build
backend in an isolated environment; the package itself is never installed.) Every photo used is checked
against its sha256 below, so a changed upload cannot silently change the scene.

The scene: Obama is enrolled from ``obama.jpg``; his OTHER two photos move through a synthetic 1280x720,
15 fps, 16 s camera video among seven people who are not on the watchlist (the six of ``t1.jpg`` and Tom
Hanks) and Joe Biden, who is not enrolled either. So the demo shows true alerts (Obama) and silent
non-matches (everyone else), with faces about 124 px wide walking slowly across the frame.

Real footage instead: ``lfr demo --video PATH --watchlist DIR`` (DIR holds one folder per person), e.g.
with the shared data set ``--video ../shared/data/faces/face_recognition_demo/video/short_hamilton_clip.mp4
--watchlist ../shared/data/faces/face_recognition_demo/enroll`` (enrols Lin-Manuel Miranda and Alex
Lacamoire; Miranda performs in the clip).
"""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import yaml

log = logging.getLogger(__name__)

SCENE_VERSION = 3
WIDTH, HEIGHT, FPS, SECONDS = 1280, 720, 15, 16.0
FACE_PX = 124  # target face width in the video, pixels

FACE_RECOGNITION = "face_recognition==1.3.0"
INSIGHTFACE = "insightface==2.1"
FR_PREFIX = "face_recognition-1.3.0/tests/test_images/"
IF_PREFIX = "insightface/data/images/"
MAX_MEMBER_BYTES = 20_000_000  # the sample photos are well under 1 MB each


@dataclass(frozen=True)
class Photo:
    """A source photo: archive member, sha256, and the face boxes (x, y, w, h) found by MTCNN in it."""

    name: str
    package: str
    member: str
    sha256: str
    faces: tuple[tuple[int, int, int, int], ...]


PHOTOS: dict[str, Photo] = {
    p.name: p
    for p in (
        Photo(
            "obama",
            FACE_RECOGNITION,
            FR_PREFIX + "obama.jpg",
            "0930e3aa8cae5920329c0c8cbc6a2ab70f47b0e67b432875beaa95cbf7e741f6",
            ((363, 85, 250, 332),),
        ),
        Photo(
            "obama2",
            FACE_RECOGNITION,
            FR_PREFIX + "obama2.jpg",
            "a7efcc907375274796f39646510704aa86672d59f6d5469d69af3c85590976a6",
            ((185, 221, 286, 420),),
        ),
        Photo(
            "obama3",
            FACE_RECOGNITION,
            FR_PREFIX + "obama3.jpg",
            "76ac6bf97c36dc2da0ad16a537d6a5ac1b10f48d49aac29a0cca9a17cdbc3ca3",
            ((633, 243, 279, 364),),
        ),
        Photo(
            "biden",
            FACE_RECOGNITION,
            FR_PREFIX + "biden.jpg",
            "3c17508bb91554c637a2eabddfae790e5bb1caba93130814fc2ac50be9760c4c",
            ((419, 171, 290, 388),),
        ),
        Photo(
            "group_t1",
            INSIGHTFACE,
            IF_PREFIX + "t1.jpg",
            "47f682e945b659f93a9e490b9c9c4a2a864abe64dace9e1a2893845ddfd69489",
            (
                (58, 268, 105, 126),
                (265, 144, 107, 124),
                (464, 264, 105, 147),
                (742, 346, 99, 127),
                (908, 64, 105, 141),
                (1132, 274, 95, 123),
            ),
        ),
        Photo(
            "tom_hanks",
            INSIGHTFACE,
            IF_PREFIX + "Tom_Hanks_54745.png",
            "8545da294e8c7c79911169c3915fed8528f1960cd0ed99b92453788ca4275083",
            ((0, 0, 83, 112),),
        ),
    )
}

# Who is enrolled (from which photo) and which other photos of them walk through the scene.
ENROLLED = {"obama": ("obama", ("obama2", "obama3"))}


@dataclass(frozen=True)
class Walker:
    """A face sprite crossing the frame: ``photo``/``face`` index, time window and start/end centres."""

    label: str
    photo: str
    face: int
    t0: float
    t1: float
    start: tuple[float, float]
    end: tuple[float, float]
    enrolled: bool


# Four lanes (top/bottom x left/right halves) so sprites never cover each other, one walker per lane at a
# time. Every walker of a lane walks the same way, so the next one (also after the video loops) enters at
# the far end from where the previous one left: the tracker must never continue one person's track with
# another's face. Slow walks (45-75 px/s) so the 5 fps analyser follows each person; x centres stay in
# 150-520 (left lanes) or 760-1130 (right lanes).
SCHEDULE: tuple[Walker, ...] = (
    Walker("group_t1#1", "group_t1", 0, 0.0, 7.0, (150, 220), (520, 250), False),
    Walker("biden", "biden", 0, 7.5, 15.5, (150, 240), (520, 220), False),
    Walker("obama2", "obama2", 0, 0.5, 8.0, (760, 250), (1130, 230), True),
    Walker("obama3", "obama3", 0, 8.5, 16.0, (760, 230), (1130, 240), True),
    Walker("group_t1#2", "group_t1", 1, 0.0, 5.0, (520, 520), (150, 500), False),
    Walker("group_t1#5", "group_t1", 4, 5.5, 10.5, (520, 500), (150, 520), False),
    Walker("group_t1#6", "group_t1", 5, 11.0, 16.0, (520, 520), (150, 510), False),
    Walker("group_t1#4", "group_t1", 3, 0.0, 5.0, (1130, 520), (760, 500), False),
    Walker("tom_hanks", "tom_hanks", 0, 5.5, 11.0, (1130, 510), (760, 520), False),
    Walker("group_t1#3", "group_t1", 2, 11.5, 16.0, (1130, 520), (760, 510), False),
)


class DemoSceneError(RuntimeError):
    """The scene cannot be built (no network for pip, a changed upload); the message says what to do."""


@dataclass
class DemoManifest:
    version: int
    video: str
    enrol_dir: str
    cameras_file: str
    width: int
    height: int
    fps: int
    seconds: float
    enrolled: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    not_enrolled: list[str] = field(default_factory=list)
    schedule: list[dict[str, object]] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def load(cls, path: Path) -> DemoManifest:
        return cls(**json.loads(path.read_text()))


def _pip_download(spec: str, dest: Path, sdist: bool) -> Path:
    """Fetch one pinned distribution with pip (no dependencies, nothing installed); return its file."""
    dest.mkdir(parents=True, exist_ok=True)
    name = spec.split("==")[0].replace("-", "_").lower()
    existing = [p for p in dest.iterdir() if p.name.lower().replace("-", "_").startswith(name)]
    if existing:
        return existing[0]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q", "-d"]
    cmd += [str(dest), spec]
    cmd += ["--no-binary", ":all:"] if sdist else ["--only-binary", ":all:"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise DemoSceneError(
            f"`pip download {spec}` failed (is PyPI reachable?): {proc.stderr.strip()[-400:]}\n"
            "Without network access, run `lfr demo --video PATH --watchlist DIR` with your own footage."
        )
    found = [p for p in dest.iterdir() if p.name.lower().replace("-", "_").startswith(name)]
    if not found:
        raise DemoSceneError(f"pip download {spec} produced no file in {dest}")
    return found[0]


def _read_members(archive: Path, members: list[str]) -> dict[str, bytes]:
    """The named members' bytes, read into memory (nothing is extracted to paths the archive chooses).

    A member larger than ``MAX_MEMBER_BYTES`` is refused from its header, before it is decompressed: a
    tampered download cannot exhaust memory before its sha256 is checked.
    """
    out: dict[str, bytes] = {}
    if archive.name.endswith(".whl") or archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as zf:
            for mname in members:
                _check_member_size(archive, mname, zf.getinfo(mname).file_size)
                out[mname] = zf.read(mname)
    else:
        with tarfile.open(archive, "r:*") as tf:
            for mname in members:
                _check_member_size(archive, mname, tf.getmember(mname).size)
                fh = tf.extractfile(mname)
                if fh is None:
                    raise DemoSceneError(f"{archive.name} has no file {mname}")
                out[mname] = fh.read()
    return out


def _check_member_size(archive: Path, member: str, size: int) -> None:
    if size > MAX_MEMBER_BYTES:
        raise DemoSceneError(f"{archive.name}: {member} is {size:,} bytes, over {MAX_MEMBER_BYTES:,}")


def fetch_photos(cache: Path) -> dict[str, bytes]:
    """Every photo in :data:`PHOTOS` as bytes, from the pinned packages (downloaded once into ``cache``)."""
    archives = {
        FACE_RECOGNITION: _pip_download(FACE_RECOGNITION, cache / "face_recognition", sdist=True),
        INSIGHTFACE: _pip_download(INSIGHTFACE, cache / "insightface", sdist=False),
    }
    photos: dict[str, bytes] = {}
    for package, archive in archives.items():
        wanted = [p for p in PHOTOS.values() if p.package == package]
        try:
            data = _read_members(archive, [p.member for p in wanted])
        except (KeyError, tarfile.TarError, zipfile.BadZipFile) as exc:
            raise DemoSceneError(f"{archive.name} does not hold the expected sample photos: {exc}") from None
        for p in wanted:
            digest = hashlib.sha256(data[p.member]).hexdigest()
            if digest != p.sha256:
                raise DemoSceneError(
                    f"{p.member} in {archive.name} has sha256 {digest[:12]}…, expected {p.sha256[:12]}…"
                )
            photos[p.name] = data[p.member]
    return photos


def _decode(data: bytes) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise DemoSceneError("a sample photo could not be decoded")
    return img


def make_sprite(image: np.ndarray, face: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Head-and-shoulders cut-out around ``face``, scaled so the face is FACE_PX wide, with a soft oval mask.

    Returns (BGR sprite, float32 alpha 0..1).
    """
    x, y, w, h = face
    cx, cy = x + w / 2.0, y + h / 2.0
    half_w, half_h = 1.0 * w, 1.25 * h
    ih, iw = image.shape[:2]
    # Pad the photo with plain grey so cut-outs near its border stay centred on the face.
    pad = int(max(half_w, half_h)) + 2
    padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(120, 120, 120))
    x0, y0 = int(cx - half_w) + pad, int(cy - half_h * 0.9) + pad
    x1, y1 = int(cx + half_w) + pad, int(cy + half_h * 1.1) + pad
    cut = padded[max(y0, 0) : min(y1, ih + 2 * pad), max(x0, 0) : min(x1, iw + 2 * pad)]
    scale = FACE_PX / float(w)
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    sprite = cv2.resize(cut, None, fx=scale, fy=scale, interpolation=interp)
    sh, sw = sprite.shape[:2]
    mask = np.zeros((sh, sw), np.float32)
    cv2.ellipse(mask, (sw // 2, sh // 2), (int(sw * 0.47), int(sh * 0.48)), 0, 0, 360, 1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), sigmaX=max(sw, sh) * 0.03)
    return sprite, mask


def background(rng: np.random.Generator) -> np.ndarray:
    """A plain "street": vertical gradient, a pavement band and mild texture (no faces, no real place)."""
    ys = np.linspace(0.0, 1.0, HEIGHT, dtype=np.float32)[:, None, None]
    top = np.array([150, 140, 125], np.float32)
    bottom = np.array([95, 100, 105], np.float32)
    bg = np.broadcast_to(top * (1 - ys) + bottom * ys, (HEIGHT, WIDTH, 3)).copy()
    bg[int(HEIGHT * 0.78) :] *= 0.85
    bg += rng.normal(0.0, 6.0, bg.shape).astype(np.float32)
    return np.clip(bg, 0, 255).astype(np.uint8)


def _paste(frame: np.ndarray, sprite: np.ndarray, alpha: np.ndarray, centre: tuple[float, float]) -> None:
    sh, sw = sprite.shape[:2]
    x0, y0 = round(centre[0] - sw / 2), round(centre[1] - sh / 2)
    fx0, fy0 = max(x0, 0), max(y0, 0)
    fx1, fy1 = min(x0 + sw, WIDTH), min(y0 + sh, HEIGHT)
    if fx1 <= fx0 or fy1 <= fy0:
        return
    s = sprite[fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0].astype(np.float32)
    a = alpha[fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0, None]
    region = frame[fy0:fy1, fx0:fx1].astype(np.float32)
    frame[fy0:fy1, fx0:fx1] = (s * a + region * (1 - a)).astype(np.uint8)


def render_video(photos: dict[str, np.ndarray], path: Path) -> None:
    rng = np.random.default_rng(7)
    bg = background(rng)
    sprites = {w.label: make_sprite(photos[w.photo], PHOTOS[w.photo].faces[w.face]) for w in SCHEDULE}
    tmp = path.with_suffix(".tmp.mp4")
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter.fourcc(*"mp4v"), FPS, (WIDTH, HEIGHT))
    if not writer.isOpened():
        raise DemoSceneError("OpenCV cannot write MPEG-4 video here (no FFmpeg encoder)")
    try:
        for i in range(int(SECONDS * FPS)):
            t = i / FPS
            frame = bg.copy()
            for w in SCHEDULE:
                if not w.t0 <= t < w.t1:
                    continue
                f = (t - w.t0) / (w.t1 - w.t0)
                centre = (w.start[0] + f * (w.end[0] - w.start[0]), w.start[1] + f * (w.end[1] - w.start[1]))
                sprite, alpha = sprites[w.label]
                _paste(frame, sprite, alpha, centre)
            writer.write(frame)
    finally:
        writer.release()
    tmp.replace(path)


def build_demo_scene(out_dir: Path) -> DemoManifest:
    """Build (once) the sample scene in ``out_dir``; later calls return the cached manifest at once."""
    out_dir = Path(out_dir)
    manifest_path = out_dir / "manifest.json"
    if manifest_path.is_file():
        try:
            cached = DemoManifest.load(manifest_path)
            paths = [cached.video, cached.cameras_file]
            paths += [p for s in cached.enrolled.values() for p in s["enrol_images"]]
            if cached.version == SCENE_VERSION and all(Path(p).is_file() for p in paths):
                return cached
        except (ValueError, TypeError, KeyError):
            pass
    out_dir.mkdir(parents=True, exist_ok=True)
    raw = fetch_photos(out_dir / "downloads")
    images = {name: _decode(data) for name, data in raw.items()}
    enrol_dir = out_dir / "enrol"
    enrolled: dict[str, dict[str, list[str]]] = {}
    for person, (enrol_photo, shown) in ENROLLED.items():
        pdir = enrol_dir / person
        pdir.mkdir(parents=True, exist_ok=True)
        target = pdir / Path(PHOTOS[enrol_photo].member).name
        target.write_bytes(raw[enrol_photo])
        enrolled[person] = {"enrol_images": [str(target)], "appears_in_scene_as": list(shown)}
    video = out_dir / "scene.mp4"
    render_video(images, video)
    cameras = out_dir / "cameras.yaml"
    cameras.write_text(
        yaml.safe_dump(
            [{"camera_id": "demo-cam-1", "deployment_id": "demo", "url": str(video), "loop": True}],
            sort_keys=False,
        )
    )
    manifest = DemoManifest(
        version=SCENE_VERSION,
        video=str(video),
        enrol_dir=str(enrol_dir),
        cameras_file=str(cameras),
        width=WIDTH,
        height=HEIGHT,
        fps=FPS,
        seconds=SECONDS,
        enrolled=enrolled,
        not_enrolled=sorted({w.label for w in SCHEDULE if not w.enrolled}),
        schedule=[{"label": w.label, "from_s": w.t0, "to_s": w.t1, "enrolled": w.enrolled} for w in SCHEDULE],
        sources={FACE_RECOGNITION: "sdist tests/test_images (MIT)", INSIGHTFACE: "wheel data/images"},
    )
    tmp = manifest_path.with_suffix(".tmp")
    tmp.write_text(manifest.to_json())
    tmp.replace(manifest_path)
    log.info("demo scene built in %s", out_dir)
    return manifest


def main() -> None:
    """``python -m lfr.ingest.demo_scene OUT_DIR``: build the scene and print its manifest."""
    out = Path(sys.argv[1] if len(sys.argv) > 1 else ".lfr/demo-scene")
    print(build_demo_scene(out).to_json())


if __name__ == "__main__":
    main()
