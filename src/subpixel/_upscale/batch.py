"""Many inputs: where each output goes, what to skip, threads for decode/encode, a summary.

Rules for ``INPUT ... -o OUTPUT``:

* one input file and an ``OUTPUT`` with an image/video extension that is not an existing
  folder: ``OUTPUT`` is the output file;
* otherwise ``OUTPUT`` is a folder: a file goes to ``OUTPUT/<name>``, a folder's images and
  videos (recursive, hidden files skipped) to ``OUTPUT/<relative path>`` (with several
  folders, ``OUTPUT/<folder name>/<relative path>``). An ``OUTPUT`` inside an input folder
  is not scanned as input.

An output that would be an input is refused (a single one raises: nothing to do; in a
batch, that job fails), with or without ``overwrite``; an existing output is skipped unless
``overwrite``. Every failure is reported as one line and the run goes on. Outputs are
written atomically, so a run that was killed is completed by running it again: finished
outputs are skipped and the killed run's hidden temporary files are removed.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from subpixel._files import check_output, remove_stale_temps, same_file
from subpixel._upscale.images import IMAGE_EXTENSIONS, Decoded, Sink, read_image

__all__ = ["VIDEO_EXTENSIONS", "Job", "Summary", "ThreadedSink", "plan_jobs", "run_jobs"]

#: Video containers recognised by extension (lower case).
VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi")


@dataclass(frozen=True)
class Job:
    """One input and its output; ``error`` is set when it cannot be run at all."""

    src: Path
    dst: Path
    kind: str  # "image" or "video"
    reference: Path | None = None
    error: str | None = None


@dataclass
class Summary:
    """Counts of a run."""

    done: int = 0
    images: int = 0
    skipped: int = 0
    failed: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)

    def line(self) -> str:
        """``done N, skipped N, failed N in T s (R images/s)`` (the rate counts images)."""
        text = (
            f"done {self.done}, skipped {self.skipped}, failed {self.failed} "
            f"in {self.seconds:.1f} s"
        )
        if self.images and self.seconds > 0:
            text += f" ({self.images / self.seconds:.3g} images/s)"
        return text


def kind_of(path: Path) -> str | None:
    """``"image"``, ``"video"`` or ``None`` from the extension."""
    ext = path.suffix.lower()
    if ext in IMAGE_EXTENSIONS:
        return "image"
    if ext in VIDEO_EXTENSIONS:
        return "video"
    return None


def _scan(root: Path, exclude: Path | None) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(
            d
            for d in dirnames
            if not d.startswith(".") and not (exclude and same_file(here / d, exclude))
        )
        for name in sorted(filenames):
            if not name.startswith(".") and kind_of(Path(name)):
                found.append(here / name)
    return found


def _find_reference(reference: Path | None, rel: Path) -> Path | None:
    if reference is None or not reference.is_dir():
        return reference
    exact = reference / rel
    if exact.exists():
        return exact
    matches = sorted((reference / rel.parent).glob(f"{rel.stem}.*"))
    return matches[0] if matches else exact


def plan_jobs(
    inputs: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    reference: str | os.PathLike[str] | None = None,
) -> list[Job]:
    """The jobs for ``inputs`` → ``output`` (see the module docstring).

    Raises:
        ValueError: nothing to do (no input found at all), an unusable ``output``, or one
            input whose output is itself.
    """
    out = Path(output)
    ref = Path(reference) if reference is not None else None
    paths = [Path(p) for p in inputs]
    single = (
        len(paths) == 1
        and not paths[0].is_dir()
        and not out.is_dir()
        and not str(output).endswith(os.sep)
        and kind_of(out) is not None
    )
    if single:
        src = paths[0]
        kind = kind_of(src) or "image"
        if kind_of(out) != kind:
            raise ValueError(f"{out}: a {kind} input needs a {kind} output extension")
        check_output(src, out, overwrite=True)  # the input as output: refused before anything
        return [Job(src, out, kind, ref)]
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a folder (several inputs need a folder)")
    if out.suffix.lower() in IMAGE_EXTENSIONS + VIDEO_EXTENSIONS and len(paths) > 1:
        raise ValueError(f"{out}: several inputs need an output folder, not a file name")
    folders = [p for p in paths if p.is_dir()]
    jobs: list[Job] = []
    for p in paths:
        if p.is_dir():
            base = out / p.resolve().name if len(folders) > 1 else out
            found = _scan(p, out)
            if not found:
                jobs.append(
                    Job(p, base, "none", error=f"{p}: no images or videos found in this folder")
                )
            for f in found:
                rel = f.relative_to(p)
                kind = kind_of(f) or "image"
                jobs.append(Job(f, base / rel, kind, _find_reference(ref, rel)))
        elif not p.exists() and not p.is_symlink():
            jobs.append(Job(p, out, "none", error=f"{p}: no such file or folder"))
        else:
            jobs.append(
                Job(p, out / p.name, kind_of(p) or "image", _find_reference(ref, Path(p.name)))
            )
    is_input = _InputSet(j.src for j in jobs if j.error is None)
    checked: list[Job] = []
    seen: dict[Path, Path] = {}
    for j in jobs:
        if j.error is None:
            key = j.dst.resolve()
            if key in seen:
                j = Job(
                    j.src,
                    j.dst,
                    j.kind,
                    j.reference,
                    f"{j.src}: same output {j.dst} as {seen[key]}",
                )
            elif is_input(j.dst):
                j = Job(
                    j.src,
                    j.dst,
                    j.kind,
                    j.reference,
                    f"{j.dst}: the output would overwrite an input",
                )
            else:
                seen[key] = j.src
        checked.append(j)
    return checked


class _InputSet:
    """``is_input(path)``: :func:`same_file` against every input, in O(1) per query.

    ``same_file`` compares inodes when both files exist and resolved paths otherwise; this
    keeps both as sets (checking each output against each input was quadratic: 20 s of
    planning for 500 files, hours for 10 000).
    """

    def __init__(self, inputs: Iterable[Path]) -> None:
        self.inodes: set[tuple[int, int]] = set()
        self.missing: set[Path] = set()  # resolved paths of inputs that do not exist
        self.resolved: set[Path] = set()  # resolved paths of all inputs
        for p in inputs:
            key = p.resolve()
            self.resolved.add(key)
            inode = _inode(p)
            if inode is None:
                self.missing.add(key)
            else:
                self.inodes.add(inode)

    def __call__(self, path: Path) -> bool:
        inode = _inode(path)
        if inode is None:
            return path.resolve() in self.resolved
        return inode in self.inodes or path.resolve() in self.missing


def _inode(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except (OSError, ValueError):
        return None
    return (st.st_dev, st.st_ino)


class ThreadedSink:
    """Runs another :class:`Sink`'s encoding in a thread, overlapping it with the model."""

    def __init__(self, sink: Sink, depth: int = 2) -> None:
        self._sink = sink
        self._queue: queue.Queue[np.ndarray | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while True:
            rows = self._queue.get()
            if rows is None:
                return
            if self._error is None:
                try:
                    self._sink.write(rows)
                except BaseException as exc:  # re-raised in the caller's thread
                    self._error = exc

    def write(self, rows: np.ndarray) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(rows)

    def _join(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def close(self) -> None:
        self._join()
        if self._error is not None:
            getattr(self._sink, "abort", lambda: None)()  # its threads and file, unfinished
            raise self._error
        self._sink.close()

    def abort(self) -> None:
        self._join()
        getattr(self._sink, "abort", lambda: None)()


def _message(exc: BaseException, src: Path, dst: Path | None = None) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    named = [str(src), src.name] + ([str(dst)] if dst is not None else [])
    if not any(n in text for n in named):
        text = f"{src}: {text}"
    return text


def run_jobs(
    jobs: Sequence[Job],
    *,
    image_fn: Callable[[Job, Decoded | None, Callable[[Sink], Sink] | None], None],
    video_fn: Callable[[Job], None],
    overwrite: bool,
    threads: int = 1,
    max_pixels: int | None = None,
    report: Callable[[str], None],
    progress: bool | None = None,
    debug: bool = False,
) -> Summary:
    """Run ``jobs`` in order; images are decoded up to ``threads`` ahead in a pool.

    ``image_fn(job, decoded, wrap_sink)`` upscales one image; ``video_fn(job)`` one video.
    Failures go to ``report`` as one line each (re-raised when ``debug``). Temporary files
    that a killed run left for these outputs (and their comparison figures) are removed
    first.
    """
    from tqdm import tqdm

    from subpixel._upscale.compare import compare_path

    summary = Summary()
    start = time.perf_counter()
    outputs = [j.dst for j in jobs if j.error is None]
    remove_stale_temps([*outputs, *(compare_path(o) for o in outputs)])
    todo: list[Job] = []
    for j in jobs:
        if j.error is not None:
            summary.failed += 1
            summary.failures.append(j.error)
            report(j.error)
        elif j.dst.exists() and not overwrite:
            summary.skipped += 1
        else:
            todo.append(j)
    pool = ThreadPoolExecutor(max_workers=max(1, threads)) if threads > 1 else None
    wrap = (lambda s: ThreadedSink(s)) if pool is not None else None

    def decode(j: Job) -> Decoded:
        return read_image(j.src, max_pixels=max_pixels)

    pending: dict[int, Future[Decoded]] = {}

    def prefetch(i: int) -> None:
        if pool is None:
            return
        for k in range(i, min(len(todo), i + threads)):
            if k not in pending and todo[k].kind == "image":
                pending[k] = pool.submit(decode, todo[k])

    bar: Iterator[int] | Any = tqdm(
        range(len(todo)), unit="file", disable=None if progress is None else not progress
    )
    try:
        for i in bar:
            job = todo[i]
            prefetch(i)
            try:
                if job.kind == "video":
                    video_fn(job)
                else:
                    fut = pending.pop(i, None)
                    decoded = fut.result() if fut is not None else None
                    image_fn(job, decoded, wrap)
                    summary.images += 1
                summary.done += 1
            except KeyboardInterrupt:
                raise
            except Exception as exc:
                if debug:
                    raise
                msg = _message(exc, job.src, job.dst)
                summary.failed += 1
                summary.failures.append(msg)
                report(msg)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        if hasattr(bar, "close"):
            bar.close()
    summary.seconds = time.perf_counter() - start
    return summary
