"""Test footage helpers: a near-lossless copy of a clip's first frames (timestamps kept)."""

from __future__ import annotations

from pathlib import Path

import av


def cut_clip(src: Path, dst: Path, frames: int) -> None:
    """The first ``frames`` frames of ``src`` as a near-lossless H.264 MP4 with the same timestamps."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", format="mp4") as out:
        vin = inp.streams.video[0]
        vs = out.add_stream("libx264", rate=vin.average_rate)
        vs.width, vs.height, vs.pix_fmt = vin.codec_context.width, vin.codec_context.height, "yuv420p"
        assert vin.time_base is not None
        vs.time_base = vin.time_base
        vs.codec_context.time_base = vin.time_base
        vs.options = {"preset": "ultrafast", "crf": "10"}
        for i, frame in enumerate(inp.decode(vin)):
            if i >= frames:
                break
            for p in vs.encode(frame):
                out.mux(p)
        for p in vs.encode(None):
            out.mux(p)
