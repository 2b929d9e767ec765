"""Using the library leaves its host process as it was; the command line opts in.

``subpixel.upscale`` must not change glibc's malloc thresholds, NNPACK's thread pool or
PyTorch's thread count (:func:`subpixel.fast.tune_process` does, when asked). Each check
runs in a fresh interpreter, so that nothing else in the test session has touched them.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# Whether glibc serves a 64 MiB malloc with mmap: yes with its default thresholds (at most
# 32 MiB), no once tune_malloc raised them to 1 GiB. mallinfo2().hblks counts mmap'ed blocks.
_PROBE = """
import ctypes, sys
try:
    libc = ctypes.CDLL("libc.so.6")
    class _Info(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in (
            "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"
        ).split()]
    libc.mallinfo2.restype = _Info
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
except (OSError, AttributeError):
    print("SKIP no glibc mallinfo2"); sys.exit(0)

def big_blocks_mmapped():
    before = libc.mallinfo2().hblks
    p = libc.malloc(64 << 20)
    mmapped = libc.mallinfo2().hblks > before
    libc.free(p)
    return mmapped
"""


def _run(code: str) -> str:
    script = _PROBE + textwrap.dedent(code)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    if done.stdout.startswith("SKIP"):
        pytest.skip(done.stdout.strip())
    return done.stdout


def test_the_library_leaves_the_process_alone() -> None:
    out = _run(
        """
        import numpy as np, torch
        import subpixel
        from subpixel.fast._kernels import winograd
        import subpixel.fast._process as process
        assert big_blocks_mmapped()
        torch.set_num_threads(2)
        torch._nnpack_available = lambda: (_ for _ in ()).throw(AssertionError("NNPACK set up"))
        img = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
        subpixel.upscale(img, scale=3)
        subpixel.upscale(img[..., 0], scale=2, tile=16)
        subpixel.upscale.Upscaler(scale=2, precision="int8")(img)
        winograd.simd = lambda: False  # as where the SIMD kernel is missing
        subpixel.upscale(img, scale=4)
        assert big_blocks_mmapped(), "malloc thresholds changed"
        assert torch.get_num_threads() == 2
        assert process._NNPACK_OK is None and not process.malloc_tuned()
        print("ok")
        """
    )
    assert out.strip() == "ok"


def test_the_command_line_opts_in(tmp_path: Path) -> None:
    from PIL import Image

    src = tmp_path / "a.png"
    Image.new("RGB", (20, 16), (90, 120, 30)).save(src)
    out = _run(
        f"""
        from subpixel.cli import main
        from subpixel.fast import malloc_tuned
        assert main(["upscale", {str(src)!r}, "-o", {str(tmp_path / "b.png")!r},
                     "--scale", "2", "--no-progress"]) == 0
        assert malloc_tuned() and not big_blocks_mmapped()
        print("ok")
        """
    )
    assert out.strip().endswith("ok")
