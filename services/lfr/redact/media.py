"""Video in and out through PyAV (FFmpeg): decode any common container, write H.264 MP4, keep the audio.

What the output keeps, and how:

* resolution and frame count: every decoded frame is written, at its own size;
* timing: each frame keeps its presentation time (the output stream uses the input's time base), so the
  frame rate, variable frame rates included, and the duration are the input's;
* audio: packets in a codec MP4 holds (AAC, MP3, ALAC, AC-3, Opus, FLAC) are copied untouched; anything
  else is re-encoded to AAC. Video and audio are read in the file's own interleaved order, so memory stays
  flat however long the footage is.

Masks are drawn on the decoded planes themselves (``frame_planes``) after ``make_writable``, which copies a
frame the decoder still holds as a reference picture, so drawing never corrupts later frames' decoding.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.audio.stream import AudioStream
from av.video.frame import VideoFrame
from av.video.stream import VideoStream

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg", ".ts", ".wmv"})
COPY_AUDIO = frozenset({"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"})


class MediaError(ValueError):
    """The file cannot be read as video, or the output cannot be written."""


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    fps: float
    frames: int  # from the container; the decode count is authoritative
    duration_s: float
    video_codec: str
    audio_codec: str | None


def _open(path: Path) -> av.container.InputContainer:
    try:
        return av.open(str(path))
    except (av.FFmpegError, OSError) as exc:
        raise MediaError(f"cannot open {Path(path).name} as video: {exc}") from None


def _video_stream(container: av.container.InputContainer, path: Path) -> VideoStream:
    if not container.streams.video:
        raise MediaError(f"{Path(path).name} has no video stream")
    stream = container.streams.video[0]
    stream.thread_count = 1  # one core per job; parallelism comes from running several jobs
    return stream


def probe(path: Path) -> VideoInfo:
    with _open(path) as c:
        vs = _video_stream(c, path)
        rate = vs.average_rate or vs.guessed_rate or Fraction(25)
        if vs.duration is not None and vs.time_base is not None:
            duration = float(vs.duration * vs.time_base)
        else:
            duration = (c.duration or 0) / av.time_base
        audio = c.streams.audio[0].codec_context.name if c.streams.audio else None
        return VideoInfo(
            width=vs.codec_context.width,
            height=vs.codec_context.height,
            fps=float(rate),
            frames=vs.frames,
            duration_s=duration,
            video_codec=vs.codec_context.name,
            audio_codec=audio,
        )


def decode(path: Path) -> Iterator[VideoFrame]:
    """Every video frame in presentation order."""
    with _open(path) as c:
        vs = _video_stream(c, path)
        try:
            yield from c.decode(vs)
        except av.FFmpegError as exc:
            raise MediaError(f"{Path(path).name} could not be decoded: {exc}") from None


def frame_planes(frame: VideoFrame) -> list[np.ndarray]:
    """Writable numpy views of a planar frame's planes (padding columns cut off)."""
    frame.make_writable()
    out = []
    for p in frame.planes:
        arr = np.frombuffer(memoryview(p), dtype=np.uint8).reshape(p.height, p.line_size)
        out.append(arr[:, : p.width])
    return out


def output_format(width: int, height: int) -> str:
    """4:2:0 for even sizes; odd sizes need 4:4:4 for libx264 to keep every pixel."""
    return "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"


@dataclass(frozen=True)
class WriteStats:
    frames: int
    audio_packets: int
    audio: str  # "copied", "re-encoded to aac" or "none"


def rewrite(
    src: Path,
    dst: Path,
    transform: Callable[[int, VideoFrame], VideoFrame],
    preset: str = "ultrafast",
    crf: int = 18,
) -> WriteStats:
    """Decode ``src``, pass each video frame (index, frame) through ``transform``, write H.264 MP4 ``dst``."""
    frames = audio_packets = 0
    audio_mode = "none"
    with _open(src) as inp:
        vin = _video_stream(inp, src)
        ain = inp.streams.audio[0] if inp.streams.audio else None
        width, height = vin.codec_context.width, vin.codec_context.height
        pix = output_format(width, height)
        try:
            out = av.open(str(dst), "w", format="mp4")
        except (av.FFmpegError, OSError) as exc:
            raise MediaError(f"cannot write {Path(dst).name}: {exc}") from None
        with out:
            rate = vin.average_rate or vin.guessed_rate or Fraction(25)
            vout = out.add_stream("libx264", rate=rate)
            vout.width, vout.height, vout.pix_fmt = width, height, pix
            if vin.time_base is not None:
                vout.time_base = vin.time_base
                vout.codec_context.time_base = vin.time_base  # pts kept exactly, not rounded to 1/fps
            vout.thread_count = 1
            vout.options = {"preset": preset, "crf": str(crf)}
            aout, resampler = None, None
            if ain is not None:
                aout, resampler, audio_mode = _audio_out(out, ain)
            streams = [vin] + ([ain] if ain is not None else [])
            try:
                for packet in inp.demux(streams):
                    if packet.stream is vin:
                        for frame in packet.decode():
                            if isinstance(frame, VideoFrame):
                                frames += _encode(out, vout, transform(frames, frame), pix)
                    elif aout is not None and packet.dts is not None:
                        audio_packets += _audio(out, aout, resampler, packet)
                for p in vout.encode(None):
                    out.mux(p)
                if aout is not None and resampler is not None:
                    for p in aout.encode(None):
                        out.mux(p)
            except av.FFmpegError as exc:
                raise MediaError(f"{Path(src).name} could not be decoded or encoded: {exc}") from None
    return WriteStats(frames, audio_packets, audio_mode)


def _encode(out: av.container.OutputContainer, vout: VideoStream, frame: VideoFrame, pix: str) -> int:
    pts, tb = frame.pts, frame.time_base
    if frame.format.name != pix:
        frame = frame.reformat(format=pix)
        frame.pts, frame.time_base = pts, tb
    frame.pict_type = av.video.frame.PictureType.NONE
    for p in vout.encode(frame):
        out.mux(p)
    return 1


def _audio_out(
    out: av.container.OutputContainer, ain: AudioStream
) -> tuple[AudioStream, av.AudioResampler | None, str]:
    name = ain.codec_context.name
    if name in COPY_AUDIO:
        return out.add_stream_from_template(ain), None, "copied"
    aout = out.add_stream("aac", rate=ain.codec_context.sample_rate or 48000)
    resampler = av.AudioResampler(
        format="fltp", layout=aout.codec_context.layout, rate=aout.codec_context.sample_rate
    )
    return aout, resampler, "re-encoded to aac"


def _audio(
    out: av.container.OutputContainer,
    aout: AudioStream,
    resampler: av.AudioResampler | None,
    packet: av.Packet,
) -> int:
    if resampler is None:
        packet.stream = aout
        out.mux(packet)
        return 1
    n = 0
    for frame in packet.decode():
        if not isinstance(frame, av.AudioFrame):
            continue
        for rf in resampler.resample(frame):
            for p in aout.encode(rf):
                out.mux(p)
                n += 1
    return n
