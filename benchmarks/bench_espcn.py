"""ESPCN inference speed: subpixel's fast path vs OpenCV ``dnn_superres``, same weights.

Frames per second for 1080p *output* (input 960×540 for ×2, 640×360 for ×3, 480×270 for
×4), two ways:

``full``
    the whole RGB pipeline on ``uint8`` images: colour conversion, the network on Y, chroma
    upscaling, back to ``uint8`` RGB. Ours: :class:`subpixel.fast.FastUpscaler` (OpenCV's
    colour transform and bicubic chroma, as the imported weights ask); OpenCV:
    ``DnnSuperResImpl.upsample`` (BGR in, BGR out).
``net``
    the network alone on a float Y image, shuffle included. Ours:
    :class:`subpixel.fast.FastESPCN`; OpenCV: ``cv2.dnn`` ``Net.forward`` of the same graph.

The weights are OpenCV's ``ESPCN_x{2,3,4}.pb`` imported with
:func:`subpixel.interop.load_opencv` (from ``$SUBPIXEL_DATA/models/opencv-espcn``; without
them a randomly initialised paper ESPCN is timed and OpenCV is skipped). Both libraries get
the same thread count (``torch.set_num_threads``, ``cv2.setNumThreads``), set before
anything runs. Measurements are interleaved (one call of each variant per round, so that
background load hits all alike); the table gives medians over the rounds and the speed-up
over OpenCV. On CUDA (when present) a second table times the network in fp32, fp16 and
bf16, NCHW and channels_last, eager, ``torch.compile`` and CUDA graphs, batch 1 and 8,
and the fused pipeline on the GPU.

Run:
    SUBPIXEL_DATA=/work/shared/data .venv/bin/python benchmarks/bench_espcn.py
    ... --threads 1 --rounds 30 --json out.json --plot docs/benchmarks_espcn.png
    ... --accuracy [WEIGHTS.safetensors ...]    # Set5 PSNR of fp32 and int8 instead
    ... --accuracy ... --test-set Set14         # the same on another test set
    ... --breakdown 3                           # CPU time per stage instead
"""

from __future__ import annotations

import os

# OpenMP threads that finish early spin-wait by default; on a CPU shared with other jobs that
# burns the cores the other thread (or NNPACK's own pool) needs, and frames take up to 20×
# longer. PASSIVE makes them sleep. libgomp reads this when torch loads, hence before the
# imports; set OMP_WAIT_POLICY yourself to override (it is recorded with the results).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import datetime
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from subpixel.fast import FastUpscaler, optimize_for_inference
from subpixel.models.espcn import ESPCN

#: Input sizes whose output is 1920×1080 (width, height).
SIZES = {2: (960, 540), 3: (640, 360), 4: (480, 270)}


class _Pipe:
    color = "opencv-ycrcb"
    chroma = "bicubic-opencv"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _pb(scale: int) -> Path | None:
    root = os.environ.get("SUBPIXEL_DATA")
    if not root:
        return None
    path = Path(root) / "models" / "opencv-espcn" / f"ESPCN_x{scale}.pb"
    return path if path.exists() else None


def _model(scale: int) -> tuple[nn.Module, str]:
    pb = _pb(scale)
    if pb is None:
        return ESPCN(scale).eval(), "random ESPCN (paper architecture)"
    from subpixel.interop.opencv import load_opencv

    return load_opencv(pb).eval(), f"OpenCV {pb.name} (imported)"


def _image(scale: int) -> np.ndarray:
    w, h = SIZES[scale]
    rng = np.random.default_rng(scale)
    # smooth content plus noise: timing does not depend on it, but keep it image-like
    yy, xx = np.mgrid[0:h, 0:w]
    base = 127 + 60 * np.sin(xx / 37.0)[..., None] * np.cos(yy / 23.0)[..., None]
    img = base + rng.normal(0, 20, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def _interleaved(fns: dict[str, Callable[[], object]], rounds: int, warmup: int) -> dict:
    """Median seconds of each callable, calling them in turn ``rounds`` times."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def bench_cpu(scales: list[int], threads: int, rounds: int, warmup: int) -> list[dict]:
    """CPU rows: one dict per (scale, variant) with median seconds and frames/s."""
    cv2: Any
    try:
        import cv2
    except ImportError:
        cv2 = None
        print("OpenCV not installed (pip install 'subpixel[opencv]'): timing ours only")
    if cv2 is not None:
        cv2.setNumThreads(threads)
    rows = []
    for s in scales:
        model, source = _model(s)
        w, h = SIZES[s]
        img = _image(s)
        bgr = np.ascontiguousarray(img[..., ::-1])
        y = torch.rand(1, 1, h, w)
        out = np.empty((h * s, w * s, 3), np.uint8)
        fns: dict[str, Callable[[], object]] = {}
        for prec in ("fp32", "int8"):
            up = FastUpscaler(model, pipeline=_Pipe(), precision=prec)
            fns[f"ours {prec} full"] = lambda up=up, img=img, out=out: up(img, out)
            fns[f"ours {prec} net"] = lambda up=up, y=y: up.net(y)
        fns["torch eager net"] = lambda model=model, y=y: model(y)
        pb = _pb(s)
        if cv2 is not None and pb is not None:
            sr = cv2.dnn_superres.DnnSuperResImpl_create()
            sr.readModel(str(pb))
            sr.setModel("espcn", s)
            net = cv2.dnn.readNetFromTensorflow(str(pb))
            blob = y.numpy()

            def cv_net(net: Any = net, blob: np.ndarray = blob) -> object:
                net.setInput(blob)
                return net.forward()

            fns["opencv full"] = lambda sr=sr, bgr=bgr: sr.upsample(bgr)
            fns["opencv net"] = cv_net
        with torch.no_grad():
            med = _interleaved(fns, rounds, warmup)
        for name, sec in med.items():
            kind = "full" if name.endswith("full") else "net"
            ref = med.get(f"opencv {kind}")
            rows.append(
                {
                    "scale": s,
                    "input": f"{w}x{h}",
                    "variant": name,
                    "kind": kind,
                    "ms": sec * 1e3,
                    "fps": 1.0 / sec,
                    "vs_opencv": (ref / sec) if ref else None,
                    "weights": source,
                }
            )
    return rows


def bench_cuda(scales: list[int], rounds: int, warmup: int) -> list[dict]:
    """CUDA rows (network variants and the fused pipeline); empty without a GPU."""
    if not torch.cuda.is_available():
        return []
    dev = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    rows = []

    def timed(fn: Callable[[], object]) -> float:
        for _ in range(warmup):
            fn()
        torch.cuda.synchronize()
        times = []
        for _ in range(rounds):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        return statistics.median(times)

    for s in scales:
        model, source = _model(s)
        w, h = SIZES[s]
        for batch in (1, 8):
            for dtype in (torch.float32, torch.float16, torch.bfloat16):
                for fmt in (torch.contiguous_format, torch.channels_last):
                    net = _copy(model).to(dev, dtype).to(memory_format=fmt)
                    x = torch.rand(batch, 1, h, w, device=dev, dtype=dtype)
                    x = x.contiguous(memory_format=fmt)
                    variants: dict[str, Callable[[], object]] = {}
                    with torch.no_grad():
                        variants["eager"] = lambda net=net, x=x: net(x)
                        if fmt == torch.channels_last:
                            comp = torch.compile(net, mode="max-autotune-no-cudagraphs")
                            variants["compile"] = lambda comp=comp, x=x: comp(x)
                            try:
                                variants["cuda graph"] = _graphed(net, x)
                            except RuntimeError as exc:
                                print(f"cuda ×{s} CUDA graph {dtype} skipped: {exc}")
                        for name, fn in variants.items():
                            try:
                                with torch.no_grad():
                                    sec = timed(fn)
                            except Exception as exc:  # a variant this GPU/stack cannot run
                                print(f"cuda ×{s} {name} {dtype} skipped: {exc}")
                                continue
                            rows.append(
                                {
                                    "scale": s,
                                    "batch": batch,
                                    "dtype": str(dtype).replace("torch.", ""),
                                    "format": "channels_last"
                                    if fmt == torch.channels_last
                                    else "NCHW",
                                    "variant": name,
                                    "ms_per_frame": sec * 1e3 / batch,
                                    "fps": batch / sec,
                                    "weights": source,
                                }
                            )
        up = FastUpscaler(model, pipeline=_Pipe(), device=dev)
        img = torch.from_numpy(_image(s)).to(dev)
        sec = timed(lambda up=up, img=img: up.upscale_tensor(img))
        rows.append(
            {
                "scale": s,
                "batch": 1,
                "dtype": "float32",
                "format": "channels_last",
                "variant": "fused uint8 pipeline (full)",
                "ms_per_frame": sec * 1e3,
                "fps": 1 / sec,
                "weights": source,
            }
        )
    return rows


def _copy(model: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(model).eval()


def _graphed(net: nn.Module, x: torch.Tensor) -> Callable[[], object]:
    """Replay ``net(x)`` as a CUDA graph (static input and output buffers)."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream), torch.no_grad():
        for _ in range(3):
            net(x)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph), torch.no_grad():
        net(x)
    return graph.replay


def print_cpu(rows: list[dict], threads: int) -> None:
    print(f"\nCPU, {threads} thread(s): frames/s for 1920×1080 output (median)\n")
    print("| scale | input | variant | ms/frame | frames/s | × OpenCV |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        ratio = f"{r['vs_opencv']:.2f}" if r["vs_opencv"] else "–"
        print(
            f"| ×{r['scale']} | {r['input']} | {r['variant']} | {r['ms']:.1f} | "
            f"{r['fps']:.2f} | {ratio} |"
        )


def print_cuda(rows: list[dict]) -> None:
    if not rows:
        print("\nno CUDA device: GPU variants not measured")
        return
    print(f"\nCUDA ({torch.cuda.get_device_name()}): frames/s for 1920×1080 output\n")
    print("| scale | batch | dtype | format | variant | ms/frame | frames/s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| ×{r['scale']} | {r['batch']} | {r['dtype']} | {r['format']} | {r['variant']} | "
            f"{r['ms_per_frame']:.2f} | {r['fps']:.1f} |"
        )


def plot(rows: list[dict], path: Path, title: str) -> None:
    """Grouped bars: frames/s by scale, full pipeline and network, ours vs OpenCV."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = [
        ("opencv", "OpenCV dnn_superres", "#999999"),
        ("ours fp32", "subpixel fp32", "#1f77b4"),
        ("ours int8", "subpixel int8", "#ff7f0e"),
    ]
    scales = sorted({r["scale"] for r in rows})
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=False)
    for ax, kind in zip(axes, ("full", "net"), strict=True):
        width = 0.8 / len(variants)
        for k, (prefix, label, color) in enumerate(variants):
            vals = []
            for s in scales:
                hit = [r for r in rows if r["scale"] == s and r["variant"] == f"{prefix} {kind}"]
                vals.append(hit[0]["fps"] if hit else 0.0)
            xs = [i + (k - 1) * width for i in range(len(scales))]
            bars = ax.bar(xs, vals, width, label=label, color=color)
            ax.bar_label(bars, fmt="%.1f", fontsize=7)
        ax.set_xticks(range(len(scales)), [f"×{s}" for s in scales])
        ax.set_title("full RGB pipeline" if kind == "full" else "network alone")
        ax.set_ylabel("frames/s, 1920×1080 output")
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.part.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def accuracy(scales: list[int], weights: list[Path], test_set: str = "Set5") -> list[dict]:
    """Test-set PSNR (SR protocol, Y, shave = scale) of fp32 and int8 against the plain model."""
    from subpixel.evaluate import evaluate_folder
    from subpixel.models import get_model

    root = os.environ.get("SUBPIXEL_DATA")
    if not root:
        print(f"accuracy needs SUBPIXEL_DATA ({test_set})")
        return []
    set5 = Path(root) / "sr" / test_set

    class Wrap(nn.Module):  # evaluate_folder wants a module with parameters
        def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
            super().__init__()
            self.fn = fn
            self.anchor = nn.Parameter(torch.zeros(1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fn(x)

    models: list[tuple[str, nn.Module]] = []
    for s in scales:
        if _pb(s) is not None:
            models.append((f"OpenCV ESPCN_x{s}.pb", _model(s)[0]))
    for path in weights:
        models.append((str(path), get_model("espcn", weights=path).eval()))
    rows = []
    for name, model in models:
        scale = int(getattr(model, "scale", 0))
        plain = evaluate_folder(model, set5, scale=scale)["psnr"]
        row = {"weights": name, "scale": scale, "plain": plain}
        for prec in ("fp32", "int8"):
            fast = optimize_for_inference(model, precision=prec)
            row[prec] = evaluate_folder(Wrap(fast), set5, scale=scale)["psnr"]
            row[f"{prec} backend"] = fast.backend
        rows.append(row)
    print(f"\n{test_set} PSNR (dB): plain model, fast fp32, fast int8, int8 loss\n")
    print("| weights | scale | plain | fp32 | int8 | int8 loss | int8 backend |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['weights']} | ×{r['scale']} | {r['plain']:.4f} | {r['fp32']:.4f} | "
            f"{r['int8']:.4f} | {r['plain'] - r['int8']:.3f} | {r['int8 backend']} |"
        )
    return rows


def breakdown(scale: int) -> None:
    """CPU time per stage of one frame, 1 thread (``time.thread_time``, best of 9)."""
    torch.set_num_threads(1)
    model, _ = _model(scale)
    w, h = SIZES[scale]
    img = _image(scale)
    out = np.empty((h * scale, w * scale, 3), np.uint8)
    y = torch.rand(h, w)

    def best(fn: Callable[[], object], k: int = 9) -> float:
        fn()
        return min(_cpu_time(fn) for _ in range(k)) * 1e3

    print(f"\nCPU time per stage, ×{scale}, 1 thread (ms, best of 9)\n")
    for prec in ("fp32", "int8"):
        up = FastUpscaler(model, pipeline=_Pipe(), precision=prec)
        full, net = best(lambda up=up: up(img, out)), best(lambda up=up: up.net.phases(y))
        print(
            f"{prec} ({up.net.backend}): full {full:.1f}, network {net:.1f}, rest {full - net:.1f}"
        )
    try:
        import cv2
    except ImportError:
        return
    pb = _pb(scale)
    if pb is not None:
        cv2.setNumThreads(1)
        sr = cv2.dnn_superres.DnnSuperResImpl_create()
        sr.readModel(str(pb))
        sr.setModel("espcn", scale)
        bgr = np.ascontiguousarray(img[..., ::-1])
        print(f"opencv: full {best(lambda: sr.upsample(bgr)):.1f}")


def _cpu_time(fn: Callable[[], object]) -> float:
    t0 = time.thread_time()
    fn()
    return time.thread_time() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--threads", type=int, default=2, help="CPU threads for both (default 2)")
    p.add_argument("--scales", type=int, nargs="+", default=[2, 3, 4], choices=(2, 3, 4))
    p.add_argument("--rounds", type=int, default=20, help="interleaved rounds (default 20)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--no-cuda", action="store_true", help="skip the CUDA table")
    p.add_argument("--json", type=Path, help="also write the rows as JSON")
    p.add_argument("--plot", type=Path, help="also draw the CPU rows (PNG)")
    p.add_argument(
        "--accuracy",
        nargs="*",
        type=Path,
        metavar="WEIGHTS",
        help="instead of timing: Set5 PSNR of fp32/int8 for OpenCV's models and these files",
    )
    p.add_argument("--test-set", default="Set5", help="for --accuracy: $SUBPIXEL_DATA/sr/NAME")
    p.add_argument(
        "--breakdown", type=int, choices=(2, 3, 4), help="instead: CPU time per stage, 1 thread"
    )
    args = p.parse_args(argv)
    if args.accuracy is not None:
        accuracy(args.scales, args.accuracy, args.test_set)
        return 0
    if args.breakdown:
        breakdown(args.breakdown)
        return 0
    torch.set_num_threads(args.threads)  # before any kernel: NNPACK sizes its pool once
    started = datetime.datetime.now().astimezone()
    cpu = bench_cpu(args.scales, args.threads, args.rounds, args.warmup)
    cuda = [] if args.no_cuda else bench_cuda(args.scales, args.rounds, args.warmup)
    meta = {
        "date": started.isoformat(timespec="seconds"),
        "cpu": _cpu_name(),
        "threads": args.threads,
        "torch": torch.__version__,
        "rounds": args.rounds,
        "loadavg_at_start": os.getloadavg(),
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
        "nnpack": bool(torch._nnpack_available()),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }
    try:
        import cv2

        meta["opencv"] = cv2.__version__
    except ImportError:
        pass
    print(json.dumps(meta))
    print_cpu(cpu, args.threads)
    print_cuda(cuda)
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "cpu": cpu, "cuda": cuda}, indent=1))
    if args.plot and cpu:
        title = (
            f"ESPCN, 1080p output — {meta['cpu']}, {args.threads} threads, torch "
            f"{torch.__version__}, OpenCV {meta.get('opencv', '?')}, {started:%Y-%m-%d}"
        )
        plot(cpu, args.plot, title)
        print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
