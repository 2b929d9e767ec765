"""Atomic file writes, the one implementation: a temporary name in the same folder, then renamed.

Everything subpixel writes (upscaled images and videos, weights, ONNX/TFLite exports, run
logs) goes through :func:`atomic_path` (a temporary path to write, fsynced and renamed on
success) or :func:`atomic_write_bytes` (bytes, through it). The temporary name is hidden
and says whose it is: ``.<name>.<pid>.<random>.part<ext>``. A run killed mid-write
(SIGKILL, power loss) leaves such a file, never a partial output; :func:`remove_stale_temps`
deletes those whose process is gone, and folder scans skip hidden files, so a leftover is
never taken for an input or an output.

Example:
    >>> import os, tempfile
    >>> d = tempfile.mkdtemp()
    >>> with atomic_path(os.path.join(d, "a.txt")) as tmp:
    ...     _ = open(tmp, "w").write("hi")
    >>> sorted(os.listdir(d))
    ['a.txt']
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

__all__ = [
    "atomic_path",
    "atomic_write_bytes",
    "check_output",
    "output_of",
    "remove_stale_temps",
    "same_file",
]

#: ``.<name>.<pid>.<8 random chars from mkstemp>.part<ext>``
_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[a-z0-9_]{8}\.part(?P<ext>\.[^.]*)?$")

_UMASK_LOCK = threading.Lock()


def _default_mode() -> int:
    """``0o666`` less the process umask: what ``open(path, "w")`` would have created."""
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return 0o666 & ~mask


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(
    path: str | os.PathLike[str], *, parents: bool = True, what: str = "the output"
) -> Iterator[str]:
    """Yield a temporary path next to ``path``; on success fsync it and rename it to ``path``.

    The temporary name is hidden (leading dot), carries the process id and keeps the
    extension, so encoders that look at it pick the right format. On any exception it is
    removed, nothing is left and an existing ``path`` stays as it was; an ``OSError``
    (disk full, quota, I/O error...) is raised again as one naming ``path``, with the same
    ``errno``: ``"<path>: cannot write <what> (<reason>)"``.

    Args:
        path: the file to write.
        parents: create missing folders above it (else their absence is the error).
        what: how the message names the file (``""``: ``"<path>: cannot write (...)"``).

    Raises:
        OSError: the folder cannot be created or the file cannot be written, with ``path``
            named.
    """
    p = Path(path)
    try:
        if parents:
            p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{p.name}.{os.getpid()}.", suffix=f".part{p.suffix}", dir=p.parent
        )
    except OSError as exc:
        raise _named(exc, p, None, what) from None
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, _default_mode())
        _fsync(tmp)
        os.replace(tmp, p)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and not str(exc).startswith(f"{p}: "):
            raise _named(exc, p, tmp, what) from None
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (:func:`atomic_path`; the folder must exist).

    On failure (disk full, quota...) the temporary file is removed, an existing ``path`` is
    left as it was, and the ``OSError`` names ``path`` (same ``errno``):
    ``"<path>: cannot write (<reason>)"``.

    Example:
        >>> import os, tempfile
        >>> d = tempfile.mkdtemp()
        >>> atomic_write_bytes(os.path.join(d, "a.bin"), b"ab")
        >>> os.listdir(d), open(os.path.join(d, "a.bin"), "rb").read()
        (['a.bin'], b'ab')
    """
    with atomic_path(path, parents=False, what="") as tmp, open(tmp, "wb") as fh:
        fh.write(data)


def _named(exc: OSError, path: Path, tmp: str | None, what: str) -> OSError:
    """``exc`` as ``OSError("<path>: cannot write <what> (<reason>)")``, errno kept."""
    reason = exc.strerror if exc.errno is not None and exc.strerror else str(exc)
    if tmp is not None:
        reason = reason.removeprefix(f"{tmp}: ").replace(tmp, str(path))
    reason = reason.strip().splitlines()[0] if reason.strip() else type(exc).__name__
    err = OSError(f"{path}: cannot write {what + ' ' if what else ''}({reason})")
    err.errno = exc.errno
    return err


def output_of(path: str | os.PathLike[str]) -> Path:
    """The output a temporary path of :func:`atomic_path` stands for (others unchanged).

    Example:
        >>> str(output_of("out/.a.png.12.abcdefgh.part.png"))
        'out/a.png'
    """
    p = Path(path)
    m = _TEMP.match(p.name)
    return p.with_name(m["name"]) if m else p


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temps(outputs: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Delete the temporary files :func:`atomic_path` left for ``outputs`` when killed.

    Only files named as :func:`atomic_path` names them, for one of ``outputs``, whose
    process no longer runs, are removed: a concurrent run's temporary files stay.

    Returns:
        The removed paths.

    Example:
        >>> import os, tempfile
        >>> d = tempfile.mkdtemp()
        >>> stale = os.path.join(d, ".a.png.999999999.abcdefgh.part.png")
        >>> open(stale, "w").close()
        >>> [p.name for p in remove_stale_temps([os.path.join(d, "a.png")])], os.listdir(d)
        (['.a.png.999999999.abcdefgh.part.png'], [])
    """
    wanted: dict[Path, set[str]] = {}
    for out in outputs:
        o = Path(out)
        wanted.setdefault(o.parent, set()).add(o.name)
    removed = []
    for folder, names in wanted.items():
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            m = _TEMP.match(entry.name)
            if m is None or m["name"] not in names or _alive(int(m["pid"])):
                continue
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether ``a`` and ``b`` name the same file (through symlinks, relative paths, links)."""
    pa, pb = Path(a), Path(b)
    try:
        if pa.exists() and pb.exists():
            return os.path.samefile(pa, pb)
    except OSError:
        pass
    return pa.resolve() == pb.resolve()


def check_output(
    src: str | os.PathLike[str], dst: str | os.PathLike[str], *, overwrite: bool
) -> None:
    """Refuse an output ``dst`` that is the input ``src`` (always) or exists (unless asked).

    The one check of both, for images, videos and the command line's jobs.

    Raises:
        ValueError: ``dst`` is ``src`` (whether or not ``overwrite``).
        FileExistsError: ``dst`` exists and not ``overwrite``.

    Example:
        >>> check_output("a.png", "./a.png", overwrite=True)
        Traceback (most recent call last):
        ...
        ValueError: a.png: the output would overwrite the input
    """
    if same_file(src, dst):
        raise ValueError(f"{dst}: the output would overwrite the input")
    if not overwrite and Path(dst).exists():
        raise FileExistsError(f"{dst}: exists (use --overwrite / overwrite=True)")
