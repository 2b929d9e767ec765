"""The inference stack's layers import only downwards (read from the sources, nothing run).

From the bottom: the compiled kernels' wrappers (``_compiled``, ``_copy``,
``fast._kernels``), the numpy/colour helpers, :mod:`subpixel.fast`, :mod:`subpixel.backends`,
the private ``_upscale`` package, then the public :mod:`subpixel.upscale`, the applications
and :mod:`subpixel.interop`, and the command line on top. A module may import from its own
layer or below, never from above (lazily inside a function neither).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import subpixel

SRC = Path(subpixel.__file__).parent

#: Each layer's modules (paths under src/subpixel) and what they must never import.
_ABOVE_FAST = ("subpixel.backends", "subpixel._upscale", "subpixel.upscale")
_ABOVE_UPSCALE = ("subpixel.upscale", "subpixel.interop", "subpixel.commands", "subpixel.cli")
RULES = {
    "_compiled.py": ("subpixel.fast", *_ABOVE_FAST, *_ABOVE_UPSCALE),
    "_copy.py": ("subpixel.fast", *_ABOVE_FAST, *_ABOVE_UPSCALE),
    "_files.py": ("subpixel.fast", *_ABOVE_FAST, *_ABOVE_UPSCALE),
    "_cpu.py": ("subpixel.fast", *_ABOVE_FAST, *_ABOVE_UPSCALE),
    "_opencv_steps.py": ("subpixel.fast", *_ABOVE_FAST, *_ABOVE_UPSCALE),
    "fast": (*_ABOVE_FAST, *_ABOVE_UPSCALE),
    "backends.py": ("subpixel._upscale.engine", "subpixel._upscale.batch", *_ABOVE_UPSCALE),
    "_upscale": _ABOVE_UPSCALE,
    "applications": ("subpixel.commands", "subpixel.cli"),
}


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
    return found


@pytest.mark.parametrize("where", list(RULES))
def test_no_upward_imports(where: str) -> None:
    root = SRC / where
    files = sorted(root.rglob("*.py")) if root.is_dir() else [root]
    assert files
    bad = [
        f"{path.relative_to(SRC)}:{line}: {name}"
        for path in files
        for line, name in _imports(path)
        if any(name == m or name.startswith(m + ".") for m in RULES[where])
    ]
    assert bad == []
