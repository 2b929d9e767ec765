"""Video through the model with PyAV (``pip install 'subpixel[video]'``).

Frames are decoded, converted to RGB, upscaled a batch at a time (up to 8 frames, fewer
for large frames so a batch of outputs stays under ~256 MB) and re-encoded, keeping each
frame's timestamp (``pts`` in the input stream's ``time_base``) and the frame rate; audio
streams are copied packet by packet (not re-encoded). Memory is bounded by one batch.
The output codec follows the container: H.264 (``libx264``, CRF 18) for .mp4/.m4v/.mov/
.mkv, VP9 for .webm, MPEG-4 part 2 for .avi; 4:2:0 chroma, or 4:4:4 when the upscaled size
is odd (4:2:0 needs even sizes).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from subpixel._files import atomic_path
from subpixel._upscale.engine import Engine
from subpixel._upscale.images import ImageError

__all__ = ["VideoError", "VideoResult", "upscale_video"]

_BATCH_BYTES = 256 * 1024 * 1024
_CODECS = {
    ".mp4": ("libx264", "mpeg4"),
    ".m4v": ("libx264", "mpeg4"),
    ".mov": ("libx264", "mpeg4"),
    ".mkv": ("libx264", "mpeg4"),
    ".webm": ("libvpx-vp9", "libvpx"),
    ".avi": ("mpeg4",),
}


class VideoError(ImageError):
    """A video that cannot be upscaled: unreadable, corrupt, or without a video stream."""


@dataclass(frozen=True)
class VideoResult:
    """What :func:`upscale_video` did."""

    path: Path
    frames: int
    seconds: float
    audio_streams: int

    @property
    def fps(self) -> float:
        """Frames processed per second of wall time."""
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def _require_av() -> Any:
    try:
        import av
    except ImportError:
        raise ImportError("upscaling video needs PyAV: pip install 'subpixel[video]'") from None
    return av


def _codec(av: Any, dst: Path, codec: str | None) -> str:
    names = (codec,) if codec else _CODECS.get(dst.suffix.lower(), ("libx264", "mpeg4"))
    for name in names:
        try:
            av.codec.Codec(name, "w")
            return name
        except Exception:
            continue
    raise ValueError(f"{dst}: no encoder available among {', '.join(names)}")


def upscale_video(
    engine: Engine,
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    batch: int = 8,
    codec: str | None = None,
    crf: int = 18,
    progress: bool | None = None,
    on_frames: Callable[[int], None] | None = None,
) -> VideoResult:
    """Upscale the video ``src`` into ``dst`` (atomically; ``src`` is not touched).

    Args:
        engine: the model and processing.
        src: input video file.
        dst: output file; the container follows its extension.
        batch: frames per model call (at most).
        codec: encoder name (default from the container).
        crf: quality for H.264/VP9 (lower is better).
        progress: show a progress bar (default: when stderr is a terminal).
        on_frames: called with the number of frames after each batch.

    Raises:
        VideoError: unreadable or corrupt input, or no video stream (e.g. audio only).
        ImportError: PyAV is not installed.
    """
    import time

    from tqdm import tqdm

    av = _require_av()
    src_p, dst_p = Path(src), Path(dst)
    start = time.perf_counter()
    try:
        inp = av.open(str(src_p))
    except av.error.FFmpegError as exc:
        raise VideoError(f"{src_p}: not a readable video ({_ffmsg(exc)})") from None
    except OSError as exc:
        raise VideoError(f"{src_p}: cannot read ({exc.strerror or exc})") from None
    with inp:
        if not inp.streams.video:
            kinds = sorted({s.type for s in inp.streams}) or ["no streams"]
            raise VideoError(f"{src_p}: no video stream (has {', '.join(kinds)})")
        v_in = inp.streams.video[0]
        v_in.thread_type = "AUTO"
        a_in = list(inp.streams.audio)
        width, height = v_in.codec_context.width, v_in.codec_context.height
        if not width or not height:
            raise VideoError(f"{src_p}: video stream has no frame size (corrupt header?)")
        s = engine.scale
        out_w, out_h = width * s, height * s
        n_batch = max(1, min(batch, _BATCH_BYTES // (out_w * out_h * 3)))
        # float blocks hold the whole batch, so their tiles shrink with it; the fused 8-bit
        # path (Engine.rgb8) goes a frame at a time with its own tile size
        if engine.fused_rgb8:
            tile = engine.rgb8_tile
        else:
            tile = max(64, int(engine.tile / math.sqrt(n_batch))) if engine.tile > 0 else 0
        name = _codec(av, dst_p, codec)
        frames = 0
        bar = tqdm(
            total=v_in.frames or None,
            unit="frame",
            desc=src_p.name,
            disable=None if progress is None else not progress,
            leave=False,
        )
        with atomic_path(dst_p) as tmp, av.open(tmp, mode="w") as out:
            rate = v_in.average_rate or v_in.guessed_rate or 25
            v_out = out.add_stream(name, rate=rate)
            v_out.width, v_out.height = out_w, out_h
            odd = out_w % 2 or out_h % 2
            v_out.pix_fmt = "yuv444p" if odd and name == "libx264" else "yuv420p"
            # Encode in the input's time base so every timestamp survives (VFR included).
            v_out.time_base = v_in.time_base
            v_out.codec_context.time_base = v_in.time_base
            if name in ("libx264", "libvpx-vp9", "libvpx"):
                v_out.options = {"crf": str(crf)}
                if name.startswith("libvpx"):
                    v_out.options["b:v"] = "0"
            else:
                v_out.bit_rate = max(2_000_000, out_w * out_h * 4)
            a_map = {a.index: out.add_stream_from_template(a) for a in a_in}
            pending: list[Any] = []
            next_pts = 0

            def flush() -> None:
                nonlocal frames, next_pts
                if not pending:
                    return
                rgb = np.stack([f.to_ndarray(format="rgb24") for f in pending])
                up = engine.run(rgb, tile=tile)
                for f, img in zip(pending, up, strict=True):
                    vf = av.VideoFrame.from_ndarray(img, format="rgb24")
                    vf.pts = f.pts if f.pts is not None else next_pts
                    vf.time_base = f.time_base or v_in.time_base
                    next_pts = vf.pts + 1
                    for packet in v_out.encode(vf):
                        out.mux(packet)
                frames += len(pending)
                bar.update(len(pending))
                if on_frames is not None:
                    on_frames(frames)
                pending.clear()

            try:
                for packet in inp.demux(v_in, *a_in):
                    if packet.stream.index in a_map:
                        if packet.dts is None:
                            continue
                        packet.stream = a_map[packet.stream.index]
                        out.mux(packet)
                        continue
                    for frame in packet.decode():
                        pending.append(frame)
                        if len(pending) >= n_batch:
                            flush()
                flush()
                for packet in v_out.encode(None):
                    out.mux(packet)
            except av.error.FFmpegError as exc:
                raise VideoError(
                    f"{src_p}: corrupt video data after {frames} frames ({_ffmsg(exc)})"
                ) from None
            finally:
                bar.close()
            if frames == 0:
                raise VideoError(f"{src_p}: no frame could be decoded")
    return VideoResult(dst_p, frames, time.perf_counter() - start, len(a_in))


def _ffmsg(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).strip().splitlines()[0] if str(text).strip() else type(exc).__name__
