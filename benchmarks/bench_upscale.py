"""End-to-end ``subpixel upscale``: video file → file and a large still image, with the split.

Runs the real tool (``subpixel.cli.main(["upscale", ...])``, bundled weights) and measures
where the wall time goes by wrapping the stages with timers, nothing estimated:

``setup``
    building the :class:`~subpixel.upscale.Upscaler` (weights, fast-path preparation).
``decode``
    video: demuxing and decoding packets (PyAV, FFmpeg's decoder threads included) and the
    YUV → RGB conversion of each frame (``to_ndarray``); image: ``read_image``.
``model``
    :meth:`Engine.run <subpixel._upscale.engine.Engine.run>` (video) or the strips of
    :meth:`Engine.strips <subpixel._upscale.engine.Engine.strips>` (image): colour
    conversion, network, chroma, rounding, tiling.
``encode``
    video: ``VideoFrame.from_ndarray``, ``encode`` (RGB → YUV and the encoder) and ``mux``;
    image: the PNG sink's ``write`` and ``close``.
``other``
    the rest of the wall time (stacking frames, opening and closing files, the progress
    bookkeeping, the atomic rename).

The timers measure the calling thread: FFmpeg's decoder and x264's encoder threads run
beside it, so their CPU use shows as CPU time above wall time (``cpu/wall``), and as slower
stages. A second table therefore runs each stage *alone* over the same frames: decoding,
the model (``Engine.run`` in the batches the tool uses) and encoding with the tool's codec
settings (H.264, CRF 18, 4:2:0, x264's default preset ``medium``), also with faster x264
presets, giving their file size and PSNR against the frames they encode, so that the cost
of the encoder's preset can be judged. ``--float-route`` adds video rows through the
engine's former route (float tiles, shrunk for the batch) for a before/after. A third table
gives the engine's overhead per 1080p frame: :class:`~subpixel.fast.FastUpscaler` called
directly, ``Engine.run`` (the fused uint8 route, whole frame and default tiles), and the
float route the engine used before (float tiles through ``FastUpscaler.block``, rounded
afterwards).

Input videos are 1080p-output clips (960×540 for ×2, 640×360 for ×3, 480×270 for ×4)
panning across pictures from ``$SUBPIXEL_DATA/sr`` (a synthetic pattern without it),
encoded as H.264 CRF 18 first (not timed).

Run:
    SUBPIXEL_DATA=/work/shared/data .venv/bin/python benchmarks/bench_upscale.py
    ... --threads 1 --precision int8 --frames 60 --scales 3 --presets medium,veryfast
    ... --float-route    # also the video through the engine's former float route
"""

from __future__ import annotations

import os

# Let idle OpenMP threads sleep instead of spinning on a shared CPU (see bench_espcn.py).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import contextlib
import datetime
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

#: Input sizes whose output is 1920×1080 (width, height).
SIZES = {2: (960, 540), 3: (640, 360), 4: (480, 270)}
STAGES = ("setup", "decode", "model", "encode")


# -- inputs -------------------------------------------------------------------------------


def _pictures() -> list[np.ndarray]:
    """RGB pictures from ``$SUBPIXEL_DATA/sr`` (BSDS200 or Set14), or [] without them."""
    from PIL import Image

    root = os.environ.get("SUBPIXEL_DATA")
    if not root:
        return []
    for sub in ("BSDS200", "Set14", "T91"):
        files = sorted((Path(root) / "sr" / sub).glob("*.png"))
        if files:
            return [np.asarray(Image.open(f).convert("RGB")) for f in files[:12]]
    return []


def _canvas(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A ``(height, width, 3)`` uint8 strip of pictures side by side (or a pattern)."""
    from PIL import Image

    pics = _pictures()
    if not pics:  # smooth random blocks, edges and a little noise
        rng = np.random.default_rng(seed)
        cell = 24
        blocks = rng.integers(0, 256, (height // cell + 1, width // cell + 1, 3))
        img = np.kron(blocks, np.ones((cell, cell, 1)))[:height, :width].astype(np.float64)
        img += rng.normal(0, 6, img.shape)
        return np.clip(img, 0, 255).astype(np.uint8)
    parts, total, i = [], 0, 0
    while total < width:
        p = Image.fromarray(pics[i % len(pics)])
        w = max(1, round(p.width * height / p.height))
        parts.append(np.asarray(p.resize((w, height), Image.Resampling.BICUBIC)))
        total += w
        i += 1
    return np.ascontiguousarray(np.concatenate(parts, axis=1)[:, :width])


def make_video(path: Path, width: int, height: int, frames: int, fps: int = 30) -> None:
    """An H.264 (CRF 18) clip panning 4 pixels a frame across :func:`_canvas`."""
    import av

    step = 4
    canvas = _canvas(width + step * frames, height)
    with av.open(str(path), mode="w") as out:
        st = out.add_stream("libx264", rate=fps)
        st.width, st.height, st.pix_fmt = width, height, "yuv420p"
        st.options = {"crf": "18"}
        for i in range(frames):
            frame = np.ascontiguousarray(canvas[:, i * step : i * step + width])
            for packet in st.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in st.encode(None):
            out.mux(packet)


def make_image(path: Path, width: int = 1920, height: int = 1080) -> None:
    """A ``width×height`` RGB PNG of pictures enlarged to that height."""
    from PIL import Image

    Image.fromarray(_canvas(width, height, seed=1)).save(path)


# -- timers around the tool's stages ------------------------------------------------------


class Timers:
    """Seconds per stage on the calling thread, added up over a run."""

    def __init__(self) -> None:
        self.sec: dict[str, float] = dict.fromkeys(STAGES, 0.0)
        self._depth = 0

    @contextlib.contextmanager
    def on(self, stage: str) -> Iterator[None]:
        """Time the block as ``stage``, unless a timed block encloses it (no double count)."""
        self._depth += 1
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0:
                self.sec[stage] += time.perf_counter() - t0

    def wrap(self, stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            with self.on(stage):
                return fn(*args, **kwargs)

        return timed

    def gen(self, stage: str, it: Any) -> Iterator[Any]:
        """Iterate ``it``, timing each step (the producer's work) as ``stage``."""
        it = iter(it)
        while True:
            with self.on(stage):
                try:
                    item = next(it)
                except StopIteration:
                    return
            yield item


class _Proxy:
    """Forwards attribute reads and writes to ``_obj`` (PyAV objects cannot be patched)."""

    def __init__(self, obj: Any, timers: Timers) -> None:
        object.__setattr__(self, "_obj", obj)
        object.__setattr__(self, "_t", timers)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._obj, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._obj, name, value)

    def __enter__(self) -> Any:
        self._obj.__enter__()
        return self

    def __exit__(self, *exc: Any) -> Any:
        return self._obj.__exit__(*exc)


class _Frame(_Proxy):
    def to_ndarray(self, *args: Any, **kwargs: Any) -> Any:
        return self._t.wrap("decode", self._obj.to_ndarray)(*args, **kwargs)


class _Packet(_Proxy):
    def decode(self) -> Iterator[Any]:
        for f in self._t.gen("decode", self._obj.decode()):
            yield _Frame(f, self._t)


class _Input(_Proxy):
    def demux(self, *streams: Any) -> Iterator[Any]:
        for p in self._t.gen("decode", self._obj.demux(*streams)):
            yield _Packet(p, self._t)


class _Stream(_Proxy):
    def encode(self, frame: Any = None) -> Any:
        return self._t.wrap("encode", self._obj.encode)(frame)


class _Output(_Proxy):
    def add_stream(self, *args: Any, **kwargs: Any) -> Any:
        return _Stream(self._obj.add_stream(*args, **kwargs), self._t)

    def mux(self, packet: Any) -> Any:
        real = packet._obj if isinstance(packet, _Proxy) else packet
        return self._t.wrap("encode", self._obj.mux)(real)


class _VideoFrameType:
    def __init__(self, cls: Any, timers: Timers) -> None:
        self._cls, self._t = cls, timers

    def from_ndarray(self, *args: Any, **kwargs: Any) -> Any:
        return self._t.wrap("encode", self._cls.from_ndarray)(*args, **kwargs)


class _AV:
    """The ``av`` module with timed containers, streams, packets and frames."""

    def __init__(self, av: Any, timers: Timers) -> None:
        self._av, self._t = av, timers
        self.VideoFrame = _VideoFrameType(av.VideoFrame, timers)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._av, name)

    def open(self, file: Any, mode: str = "r", **kwargs: Any) -> Any:
        c = self._av.open(file, mode=mode, **kwargs)
        return _Output(c, self._t) if mode == "w" else _Input(c, self._t)


@contextlib.contextmanager
def instrumented(timers: Timers) -> Iterator[None]:
    """Patch the tool's stage functions to add their time to ``timers``."""
    import av

    import subpixel.upscale as api
    from subpixel._upscale import batch, video
    from subpixel._upscale.engine import Engine

    saved: list[tuple[Any, str, Any]] = []

    def patch(obj: Any, name: str, new: Any) -> None:
        saved.append((obj, name, getattr(obj, name)))
        setattr(obj, name, new)

    strips = Engine.strips

    def timed_strips(self: Engine, *args: Any, **kwargs: Any) -> Iterator[Any]:
        return timers.gen("model", strips(self, *args, **kwargs))

    open_sink = api.open_sink

    def timed_sink(*args: Any, **kwargs: Any) -> Any:
        sink = timers.wrap("encode", open_sink)(*args, **kwargs)
        sink.write = timers.wrap("encode", sink.write)
        sink.close = timers.wrap("encode", sink.close)
        return sink

    patch(Engine, "run", timers.wrap("model", Engine.run))
    patch(Engine, "strips", timed_strips)
    patch(api, "read_image", timers.wrap("decode", api.read_image))
    patch(batch, "read_image", timers.wrap("decode", batch.read_image))
    patch(api, "open_sink", timed_sink)
    patch(api.Upscaler, "__init__", timers.wrap("setup", api.Upscaler.__init__))
    patch(video, "_require_av", lambda: _AV(av, timers))
    try:
        yield
    finally:
        for obj, name, old in reversed(saved):
            setattr(obj, name, old)


@contextlib.contextmanager
def float_route() -> Iterator[None]:
    """The engine as it was before the fused uint8 route: float tiles for 8-bit RGB too."""
    from subpixel._upscale.engine import Engine

    uses, fused = Engine.uses_rgb8, Engine.fused_rgb8
    Engine.uses_rgb8 = lambda self, src, out_dtype=None: False  # type: ignore[method-assign]
    Engine.fused_rgb8 = property(lambda self: False)  # type: ignore[assignment,method-assign]
    try:
        yield
    finally:
        Engine.uses_rgb8, Engine.fused_rgb8 = uses, fused  # type: ignore[method-assign]


def run_tool(argv: list[str]) -> tuple[Timers, float, float]:
    """``subpixel upscale ARGV`` instrumented: (timers, wall seconds, process CPU seconds)."""
    from subpixel.cli import main

    timers = Timers()
    with instrumented(timers), contextlib.redirect_stdout(sys.stderr):
        c0, t0 = time.process_time(), time.perf_counter()
        rc = main(["upscale", *argv, "--no-progress", "--overwrite"])
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    if rc != 0:
        raise SystemExit(f"subpixel upscale {' '.join(argv)} failed ({rc})")
    return timers, wall, cpu


# -- stages alone -------------------------------------------------------------------------


def decode_frames(path: Path) -> tuple[list[np.ndarray], float]:
    """All frames as RGB arrays, and the seconds it took (the tool's decoder settings)."""
    import av

    t0 = time.perf_counter()
    with av.open(str(path)) as inp:
        st = inp.streams.video[0]
        st.thread_type = "AUTO"
        frames = [f.to_ndarray(format="rgb24") for f in inp.decode(st)]
    return frames, time.perf_counter() - t0


def encode_frames(path: Path, frames: list[np.ndarray], preset: str | None) -> float:
    """Seconds to write ``frames`` as the tool does (H.264 CRF 18, 4:2:0), with ``preset``."""
    import av

    h, w, _ = frames[0].shape
    t0 = time.perf_counter()
    with av.open(str(path), mode="w") as out:
        st = out.add_stream("libx264", rate=30)
        st.width, st.height, st.pix_fmt = w, h, "yuv420p"
        st.options = {"crf": "18", **({"preset": preset} if preset else {})}
        for img in frames:
            for packet in st.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in st.encode(None):
            out.mux(packet)
    return time.perf_counter() - t0


def psnr_against(path: Path, frames: list[np.ndarray]) -> float:
    """PSNR (dB, RGB, all frames) of the decoded ``path`` against ``frames``."""
    got, _ = decode_frames(path)
    mse = np.mean(
        [np.mean((a.astype(np.float64) - b) ** 2) for a, b in zip(got, frames, strict=True)]
    )
    return float(10 * np.log10(255**2 / max(mse, 1e-12)))


# -- the engine's overhead ----------------------------------------------------------------


def engine_overhead(scale: int, precision: str, rounds: int) -> dict[str, float]:
    """Median ms per 1080p-output frame: FastUpscaler, Engine.run, the former float route."""
    from subpixel._upscale.tiling import iter_strips
    from subpixel.upscale import Upscaler

    eng = Upscaler("DEFAULT", scale, precision=precision).engine
    assert eng.fast is not None
    w, h = SIZES[scale]
    src = _canvas(w, h)[None]

    def float_route(tile: int) -> None:
        out = np.empty((1, h * scale, w * scale, 3), np.uint8)
        for row, strip in iter_strips(
            src,
            eng.block,
            scale=scale,
            tile=tile,
            overlap=eng.overlap,
            out_dtype=np.dtype(np.uint8),
            device=eng.device,
        ):
            out[:, row : row + strip.shape[1]] = strip

    variants: dict[str, Callable[[], object]] = {
        "FastUpscaler": lambda: eng.fast(src[0]) if eng.fast is not None else None,
        "run, tile 0": lambda: eng.run(src, tile=0),
        f"run, tile {eng.tile}": lambda: eng.run(src),
        "float route, tile 0": lambda: float_route(0),
        f"float route, tile {eng.tile}": lambda: float_route(eng.tile),
    }
    times: dict[str, list[float]] = {k: [] for k in variants}
    for fn in variants.values():
        fn()
    for _ in range(rounds):  # interleaved: background load hits all variants alike
        for name, fn in variants.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {k: 1e3 * statistics.median(v) for k, v in times.items()}


# -- main ---------------------------------------------------------------------------------


def _split_row(label: str, t: Timers, wall: float, cpu: float, n: int) -> str:
    work = wall - t.sec["setup"]
    other = work - sum(t.sec[k] for k in ("decode", "model", "encode"))
    cells = [f"{1e3 * t.sec[k] / n:.1f} ({100 * t.sec[k] / work:.0f}%)" for k in STAGES[1:]]
    return (
        f"| {label} | {n} | {n / work:.2f} | {1e3 * t.sec['setup']:.0f} | "
        + " | ".join(cells)
        + f" | {1e3 * other / n:.1f} ({100 * other / work:.0f}%) | {cpu / wall:.2f} |"
    )


def _machine_busy() -> float:
    """CPU seconds all processes have used (``/proc/stat``; NaN elsewhere)."""
    try:
        with open("/proc/stat") as f:
            user, nice, system = (int(v) for v in f.readline().split()[1:4])
    except (OSError, ValueError):
        return float("nan")
    return (user + nice + system) / os.sysconf("SC_CLK_TCK")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--precision", choices=("fp32", "int8"), default="fp32")
    ap.add_argument("--frames", type=int, default=45, help="frames per clip (default 45)")
    ap.add_argument("--scales", type=int, nargs="+", default=[2, 3, 4], choices=(2, 3, 4))
    ap.add_argument("--presets", default="medium,veryfast", help="x264 presets to compare")
    ap.add_argument("--image-runs", type=int, default=3, help="runs of the still image")
    ap.add_argument("--rounds", type=int, default=7, help="rounds of the overhead table")
    ap.add_argument(
        "--float-route",
        action="store_true",
        help="also run each video through the engine's former float route (before/after)",
    )
    ap.add_argument(
        "--skip", nargs="*", default=[], choices=("video", "alone", "image", "overhead")
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        load = os.getloadavg()
    except OSError:
        load = (float("nan"),) * 3
    print(
        f"# bench_upscale: {datetime.datetime.now():%Y-%m-%d %H:%M}, {platform.node()}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__}, threads {args.threads}, precision {args.precision}, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, "
        f"load average before {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    from subpixel.fast._kernels import pipeline as k_pipeline

    print(f"compiled pipeline kernel: {k_pipeline.available()}\n")
    busy0, own0, wall0 = _machine_busy(), time.process_time(), time.perf_counter()
    common = ["--precision", args.precision]
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        clips = {}
        for s in args.scales:
            w, h = SIZES[s]
            clips[s] = tmp / f"in_x{s}.mp4"
            make_video(clips[s], w, h, args.frames)
        if "video" not in args.skip:
            print("## Video file → file (subpixel upscale clip.mp4 -o out.mp4 --scale S)\n")
            print("ms per frame (share of the wall time after setup) on the calling thread\n")
            print(
                "| scale, input → 1920×1080 | frames | frames/s | setup ms | decode | model "
                "| encode | other | cpu/wall |"
            )
            print("|---|---|---|---|---|---|---|---|---|")
            for s in args.scales:
                w, h = SIZES[s]
                warm = tmp / f"warm_x{s}.mp4"  # first calls set up pools and caches: untimed
                make_video(warm, w, h, 4)
                run_tool([str(warm), "-o", str(tmp / "warm_out.mp4"), "--scale", str(s), *common])
                argv = [str(clips[s]), "-o", str(tmp / f"out_x{s}.mp4"), "--scale", str(s)]
                t, wall, cpu = run_tool(argv + common)
                print(_split_row(f"×{s}, {w}×{h}", t, wall, cpu, args.frames), flush=True)
                if args.float_route:
                    with float_route():
                        t, wall, cpu = run_tool(argv + common)
                    label = f"×{s}, {w}×{h}, float route"
                    print(_split_row(label, t, wall, cpu, args.frames), flush=True)
            print()
        if "alone" not in args.skip:
            from subpixel.upscale import Upscaler

            presets = [p.strip() for p in args.presets.split(",") if p.strip()]
            print("## Each stage alone over the same frames (frames/s, 1920×1080 output)\n")
            head = " | ".join(f"encode {p}: fps, MB, dB" for p in presets)
            print(f"| scale | decode | model (Engine.run, batches of 8) | {head} |")
            print("|---|---|---|" + "---|" * len(presets))
            for s in args.scales:
                frames, t_dec = decode_frames(clips[s])
                eng = Upscaler("DEFAULT", s, precision=args.precision).engine
                eng.run(np.stack(frames[:1]))
                t0 = time.perf_counter()
                ups = [eng.run(np.stack(frames[i : i + 8])) for i in range(0, len(frames), 8)]
                t_model = time.perf_counter() - t0
                outs = [img for batch in ups for img in batch]
                cells = []
                for p in presets:
                    dst = tmp / f"enc_{p}.mp4"
                    t_enc = encode_frames(dst, outs, None if p == "default" else p)
                    mb = dst.stat().st_size / 1e6
                    cells.append(
                        f"{len(outs) / t_enc:.1f}, {mb:.2f}, {psnr_against(dst, outs):.2f}"
                    )
                n = len(frames)
                print(
                    f"| ×{s} | {n / t_dec:.1f} | {n / t_model:.2f} | " + " | ".join(cells) + " |",
                    flush=True,
                )
            print()
        if "image" not in args.skip:
            src = tmp / "still.png"
            make_image(src)
            print("## Still image file → file (1920×1080 PNG → ×2 3840×2160 PNG)\n")
            print("| run | setup ms | decode ms | model ms | encode ms | other ms | total ms |")
            print("|---|---|---|---|---|---|---|")
            rows = []
            for i in range(args.image_runs):
                argv = [str(src), "-o", str(tmp / "still_x2.png"), "--scale", "2"]
                t, wall, _ = run_tool(argv + common)
                other = wall - sum(t.sec.values())
                rows.append([*(1e3 * t.sec[k] for k in STAGES), 1e3 * other, 1e3 * wall])
                print(f"| {i + 1} | " + " | ".join(f"{v:.0f}" for v in rows[-1]) + " |")
            med = np.median(np.array(rows), axis=0)
            print("| median | " + " | ".join(f"{v:.0f}" for v in med) + " |\n", flush=True)
            from PIL import Image

            with Image.open(tmp / "still_x2.png") as im:
                big = im.copy()
            ref = []
            for level in (6, 1):
                t0 = time.perf_counter()
                big.save(tmp / "pillow.png", compress_level=level)
                ref.append(f"{1e3 * (time.perf_counter() - t0):.0f} ms (level {level})")
            print(f"For comparison, Pillow saving the same output: {', '.join(ref)}.\n")
    if "overhead" not in args.skip:
        print("## Engine overhead per 1080p-output frame (median ms, interleaved rounds)\n")
        res = {s: engine_overhead(s, args.precision, args.rounds) for s in args.scales}
        names = list(next(iter(res.values())))
        print("| scale | " + " | ".join(names) + " |")
        print("|---|" + "---|" * len(names))
        for s, r in res.items():
            print(f"| ×{s} | " + " | ".join(f"{r[k]:.1f}" for k in names) + " |")
    others = (_machine_busy() - busy0) - (time.process_time() - own0)
    wall = time.perf_counter() - wall0
    print(
        f"\nmachine load during the run: other processes used {others:.1f} CPU seconds "
        f"in {wall:.0f} s of wall time"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
