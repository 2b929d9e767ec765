"""A side-by-side figure of bicubic and the models on a real, JPEG-compressed photo input.

How the input is made (every step fixed, so the figure is reproducible):

1. **Source**: frame ``--frame`` (0-based, in decoding order; default 208, t = 16.64 s, two
   parked cars) of ``$SUBPIXEL_DATA/video/car-detection.mp4`` (real street footage,
   768×432, H.264), decoded with PyAV to RGB24 (``VideoFrame.to_ndarray(format="rgb24")``,
   FFmpeg's default BT.601 conversion); or ``--image PATH`` (any RGB image, e.g. a camera
   JPEG). This frame is the reference ("original") of the figure.
2. **Downscale** ×``--scale`` (default 3) the usual way: crop at the bottom/right to a
   multiple of the scale, then MATLAB-style antialiased bicubic to 8-bit levels
   (:func:`subpixel.data.degrade`, the SR protocol's LR): 768×432 → 256×144.
3. **JPEG**: save that LR with Pillow at ``quality=--quality`` (default 70),
   ``subsampling=2`` (4:2:0, as cameras do), baseline, no ``optimize``, and decode it again
   (exactly :func:`subpixel.degrade.jpeg`). With ``--keep DIR`` the JPEG file is written there
   (``lr_q70.jpg``) with every upscaled image.
4. **Upscale** that decoded JPEG ×scale with: ``bicubic`` (MATLAB-style,
   :func:`subpixel.resize.imresize`, rounded to 8 bits) and each ``--weights NAME=WEIGHTS``
   through ``subpixel.Upscaler(WEIGHTS, scale)`` (RGB in and out; the model on Y, bicubic
   chroma). ``WEIGHTS`` is a bundled name or a ``.safetensors`` path, ``{scale}`` substituted.

The figure: an overview of the whole frame with the crop outlined, then the crop (``--crop X
Y`` and ``--crop-size``, in original pixels, snapped to multiples of the scale) of the
original, of the JPEG input (nearest-neighbour enlarged to the same size) and of every
upscaled image, each enlarged ``--zoom`` times (nearest neighbour, default 2), with labels
and the Y PSNR of each whole upscaled image against the original frame (``scale`` pixels
shaved; the frame is itself H.264-compressed, so this is a rough guide, not the protocol).
Pillow only.

Run (the lead, with the real photo weights; ~10 s):
    SUBPIXEL_DATA=/work/shared/data .venv/bin/python benchmarks/photo_figure.py \\
        docs/photo_comparison.png --weights DEFAULT=DEFAULT photo=photo
Check with stand-ins:
    ... /tmp/fig.png --weights DEFAULT=espcn photo=espcn
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see bench_espcn.py

import argparse
import io
from pathlib import Path

import numpy as np
import torch

from _common import add_weights_option, data_root, parse_specs, resolve_weights, to_uint8_hwc

DEFAULT_FRAME = 208
#: A crop of the default frame: the red car's rear (lights, plate) and the asphalt beside it.
DEFAULT_CROP = (315, 264)


def read_frame(video: Path, index: int) -> np.ndarray:
    """Frame ``index`` (0-based, decoding order) of ``video`` as uint8 RGB ``(H, W, 3)``."""
    import av

    with av.open(str(video)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i == index:
                return frame.to_ndarray(format="rgb24")
    raise SystemExit(f"{video}: has no frame {index} (only {i + 1})")


def read_image(path: Path) -> np.ndarray:
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))


def to_tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a.transpose(2, 0, 1).astype(np.float64) / 255.0)


def jpeg_bytes(rgb: np.ndarray, quality: int) -> bytes:
    """Pillow JPEG, 4:2:0, baseline, no optimize: as :func:`subpixel.degrade.jpeg`."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality, subsampling=2)
    return buf.getvalue()


def decode_jpeg(data: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def y_psnr(a: np.ndarray, b: np.ndarray, shave: int) -> float:
    from subpixel.metrics import psnr

    return psnr(to_tensor(a), to_tensor(b), shave=shave)


def _font(size: int):
    """DejaVu Sans (matplotlib's copy, else the system's: it has "×"), else Pillow's own."""
    from PIL import ImageFont

    candidates = [Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")]
    try:
        import matplotlib

        candidates.insert(0, Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf")
    except ImportError:
        pass
    for path in candidates:
        if path.exists():
            return ImageFont.truetype(str(path), size)
    return ImageFont.load_default(size=size)


def compose(
    original: np.ndarray,
    panels: list[tuple[str, str, np.ndarray]],
    crop: tuple[int, int, int],
    zoom: int,
    title: str,
):
    """The figure: overview with the crop outlined, then each ``(label, note, crop)`` panel."""
    from PIL import Image, ImageDraw

    x, y, size = crop
    side = size * zoom
    gap, label_h, title_h = 10, 52, 34
    h, w = original.shape[:2]
    ov_w = round(w * side / h)
    overview = Image.fromarray(original).resize((ov_w, side), Image.Resampling.LANCZOS)
    f = side / h
    draw = ImageDraw.Draw(overview)
    box = (x * f, y * f, (x + size) * f - 1, (y + size) * f - 1)
    draw.rectangle(box, outline=(255, 230, 0), width=3)
    width = gap + ov_w + (side + gap) * len(panels) + gap
    height = title_h + side + label_h + gap
    fig = Image.new("RGB", (width, height), (255, 255, 255))
    d = ImageDraw.Draw(fig)
    big, small = _font(19), _font(14)
    d.text((gap, 6), title, fill=(0, 0, 0), font=small)
    fig.paste(overview, (gap, title_h))
    d.text((gap, title_h + side + 4), "whole frame (crop outlined)", fill=(0, 0, 0), font=big)
    left = gap + ov_w + gap
    for label, note, img in panels:
        tile = Image.fromarray(img).resize((side, side), Image.Resampling.NEAREST)
        fig.paste(tile, (left, title_h))
        d.text((left, title_h + side + 4), label, fill=(0, 0, 0), font=big)
        d.text((left, title_h + side + 28), note, fill=(70, 70, 70), font=small)
        left += side + gap
    return fig


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("output", type=Path, help="PNG to write (e.g. docs/photo_comparison.png)")
    add_weights_option(
        p,
        "--weights",
        ["DEFAULT=DEFAULT", "photo=photo"],
        "bundled name or .safetensors path, {scale} substituted",
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--video", type=Path, help="default: $SUBPIXEL_DATA/video/car-detection.mp4")
    src.add_argument("--image", type=Path, help="an image instead of a video frame")
    p.add_argument("--frame", type=int, default=DEFAULT_FRAME, help="0-based frame index")
    p.add_argument("--scale", type=int, default=3, choices=(2, 3, 4))
    p.add_argument("--quality", type=int, default=70, help="JPEG quality of the input")
    p.add_argument("--crop", type=int, nargs=2, metavar=("X", "Y"), help="top-left, original px")
    p.add_argument("--crop-size", type=int, default=168, help="original pixels (default 168)")
    p.add_argument("--zoom", type=int, default=2, help="nearest-neighbour enlargement")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--keep", type=Path, metavar="DIR", help="also write the LR JPEG and outputs")
    args = p.parse_args(argv)

    from subpixel.data import degrade, mod_crop
    from subpixel.resize import imresize
    from subpixel.upscale import Upscaler

    torch.set_num_threads(args.threads)
    s = args.scale
    methods = parse_specs(args.weights, "--weights", taken=("bicubic",))
    if args.image is not None:
        original = read_image(args.image)
        source = f"{args.image.name}"
    else:
        video = args.video or data_root() / "video" / "car-detection.mp4"
        original = read_frame(video, args.frame)
        source = f"{video.name}, frame {args.frame}"
    hr = mod_crop(to_tensor(original), s)
    original = to_uint8_hwc(hr)
    h, w = original.shape[:2]
    lr_jpeg = jpeg_bytes(to_uint8_hwc(degrade(hr, s)), args.quality)
    lr = decode_jpeg(lr_jpeg)
    outputs = {"bicubic": to_uint8_hwc(imresize(to_tensor(lr), float(s)))}
    for name, weights in methods.items():
        outputs[name] = Upscaler(resolve_weights(weights, s), s)(lr)

    size = min(args.crop_size, h, w) // s * s
    if args.crop is not None:
        cx, cy = args.crop
    elif args.image is None and args.frame == DEFAULT_FRAME:
        cx, cy = DEFAULT_CROP
    else:
        cx, cy = (w - size) // 2, (h - size) // 2
    cx = min(max(cx // s * s, 0), w - size)
    cy = min(max(cy // s * s, 0), h - size)
    lr_crop = lr[cy // s : (cy + size) // s, cx // s : (cx + size) // s]
    lr_crop = lr_crop.repeat(s, axis=0).repeat(s, axis=1)  # nearest, to the original's size

    def crop(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a[cy : cy + size, cx : cx + size])

    panels = [
        ("original", f"{w}×{h}, the reference", crop(original)),
        (
            f"input: ×1/{s}, JPEG q{args.quality}",
            f"{w // s}×{h // s}, {len(lr_jpeg) / 1024:.1f} KiB, nearest",
            lr_crop,
        ),
    ]
    for name, out in outputs.items():
        ps = y_psnr(out, original, s)
        panels.append((f"{name} ×{s}", f"Y PSNR vs original {ps:.2f} dB", crop(out)))
        print(f"{name}: Y PSNR vs original (whole frame, shave {s}) {ps:.2f} dB")
    title = (
        f"{source}: downscaled ×{s} (MATLAB bicubic), saved as JPEG quality {args.quality} "
        f"(Pillow, 4:2:0), upscaled ×{s}. Crop {size}×{size} at ({cx}, {cy}), "
        f"shown ×{args.zoom} (nearest). Models: "
        + ", ".join(f"{n} = {wt.replace('{scale}', str(s))}" for n, wt in methods.items())
    )
    fig = compose(original, panels, (cx, cy, size), args.zoom, title)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    fig.save(args.output, optimize=True)
    print(f"wrote {args.output} ({fig.width}×{fig.height})")
    if args.keep is not None:
        from PIL import Image

        args.keep.mkdir(parents=True, exist_ok=True)
        (args.keep / f"lr_q{args.quality}.jpg").write_bytes(lr_jpeg)
        Image.fromarray(original).save(args.keep / "original.png")
        for name, out in outputs.items():
            Image.fromarray(out).save(args.keep / f"{name}_x{s}.png")
        print(f"wrote the JPEG input and the outputs to {args.keep}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
