"""Upscale images, folders of images, and videos with a super-resolution model (ESPCN).

RGB images go through the model on their Y channel with bicubic chroma, as in the ESPCN
paper; grey stays grey, alpha is kept (bicubic), 16-bit PNG/TIFF stay 16-bit, EXIF
orientation is applied, ICC profile and DPI (×scale) are kept. The output format follows
the output's extension (PNG, JPEG, BMP, TIFF, WebP). Large images are processed in tiles
(the result does not depend on --tile); PNG outputs are streamed, so an 8000×8000 photo
needs well under 2 GB of memory. Videos (.mp4 .mkv .mov .webm .avi; needs
'subpixel[video]') keep their frame rate, timestamps and audio.

A folder INPUT is searched recursively and mirrored under OUTPUT (then a folder).
Existing outputs are skipped unless --overwrite; an output that is an input is refused
(with or without --overwrite); a file that fails is reported and the
run goes on; the exit status is 1 if any file failed. Outputs are written atomically and
inputs are never modified.

examples:
  subpixel upscale photo.jpg -o photo_x3.png
  subpixel upscale photo.jpg -o big.png --scale 2 --compare
  subpixel upscale small.png -o sr.png --compare --reference original.png   # with PSNR
  subpixel upscale photos/ -o photos_x3/ --jobs 2
  subpixel upscale clip.mp4 -o clip_x3.mp4 --scale 3
  subpixel upscale clip.mp4 -o clip_fast.mp4 --precision int8    # CPU: model ~2× faster, ≤ 0.05 dB
  subpixel upscale scan.tif -o big.tif --weights runs/x2/model.safetensors
  subpixel upscale photo.jpg -o sr.png --weights ESPCN_x3.pb   # OpenCV's model, no OpenCV needed
  subpixel upscale huge.png -o out.png --max-pixels 200000000 --tile 256
  subpixel upscale photo.jpg -o sr.png --verbose    # which backend runs, and why
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from subpixel.bundled import describe as describe_bundled
from subpixel.bundled import names as bundled_names
from subpixel.cli import CliError

if TYPE_CHECKING:
    from subpixel._upscale.batch import Job
    from subpixel._upscale.images import Decoded, Sink


_BUNDLED = ", ".join(bundled_names())


def _positive(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = "bundled weights (--weights NAME):\n" + "\n".join(
        "  " + line for line in describe_bundled().splitlines()
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image, video or folder")
    p.add_argument("-o", "--output", required=True, metavar="OUTPUT", help="output file or folder")
    p.add_argument(
        "--scale",
        type=int,
        choices=(2, 3, 4),
        help="upscaling factor (default: the weights file's; bundled weights: 3, faces 4)",
    )
    p.add_argument(
        "--weights",
        default="DEFAULT",
        metavar="NAME|PATH",
        help=f"bundled weights by name ({_BUNDLED}; default DEFAULT), a .safetensors "
        "file, or an OpenCV dnn_superres graph (ESPCN_x3.pb, FSRCNN_x2.pb...: imported on the "
        "fly, with OpenCV's processing)",
    )
    p.add_argument(
        "--tile",
        type=_positive,
        default=512,
        metavar="N",
        help="tile size in input pixels, 0 for none (default 512)",
    )
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16", "int8"),
        default="auto",
        help="auto (default: exact fp32, or bf16 where the CPU has AMX), fp32 (exact), bf16 "
        "or int8 (CPU only: faster, approximate); --verbose shows the choice",
    )
    p.add_argument(
        "--compare",
        action="store_true",
        help="also write OUT.compare.png: input | bicubic | model [| original]",
    )
    p.add_argument(
        "--reference",
        metavar="REF",
        help="the original high-resolution image (or folder mirroring the inputs): "
        "added to the comparison, with PSNR on Y",
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument(
        "--jobs", type=int, default=1, metavar="J", help="decode/encode threads (default 1)"
    )
    p.add_argument(
        "--max-pixels",
        type=int,
        default=None,
        metavar="N",
        help="refuse images with more pixels (default: Pillow's limit, 89478485; 0: no limit)",
    )
    p.add_argument("--batch", type=int, default=8, help="video frames per model call (default 8)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--verbose",
        action="store_true",
        help="print which backend runs the model and why the faster ones declined",
    )


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from subpixel._upscale.batch import plan_jobs, run_jobs
    from subpixel.fast import tune_process
    from subpixel.upscale import Upscaler

    if args.jobs < 1:
        raise CliError(f"--jobs must be >= 1, got {args.jobs}")
    if args.reference is not None and not args.compare:
        raise CliError("--reference is used by the comparison figure: add --compare")
    jobs = plan_jobs(args.inputs, args.output, reference=args.reference)
    tune_process()  # the command owns its process: malloc thresholds and NNPACK's pool
    up = Upscaler(
        args.weights,
        args.scale,
        device=args.device,
        tile=args.tile,
        max_pixels=args.max_pixels,
        precision=args.precision,
    )
    if args.verbose:
        print(up.backend.describe())
    progress = False if args.no_progress else None
    debug = bool(getattr(args, "debug", False))

    def report(msg: str) -> None:
        tqdm.write(f"subpixel upscale: error: {msg}", file=sys.stderr)

    def image_fn(job: Job, decoded: Decoded | None, wrap: Callable[[Sink], Sink] | None) -> None:
        up._upscale_file(  # the public upscale_file with the batch's plumbing
            job.src,
            job.dst,
            overwrite=args.overwrite,
            compare=args.compare,
            reference=job.reference,
            decoded=decoded,
            wrap_sink=wrap,
        )

    def video_fn(job: Job) -> None:
        if args.compare:
            tqdm.write(f"{job.src}: --compare is for images; no figure for a video")
        result = up.upscale_video(
            job.src, job.dst, overwrite=args.overwrite, batch=args.batch, progress=progress
        )
        tqdm.write(
            f"{job.dst}: {result.frames} frames at {result.fps:.1f} frames/s"
            + (f", {result.audio_streams} audio stream(s) copied" if result.audio_streams else "")
        )

    summary = run_jobs(
        jobs,
        image_fn=image_fn,
        video_fn=video_fn,
        overwrite=args.overwrite,
        threads=args.jobs,
        max_pixels=args.max_pixels,
        report=report,
        progress=progress,
        debug=debug,
    )
    if len(jobs) == 1 and summary.done == 1:
        print(f"wrote {jobs[0].dst}")
    print(summary.line())
    if summary.skipped and not summary.done and not summary.failed:
        print("(existing outputs were skipped; use --overwrite to replace them)")
    return 1 if summary.failed else 0
