"""subpixel.keras on the TensorFlow, JAX and PyTorch backends, and across them.

Keras takes its backend from ``KERAS_BACKEND`` when it is first imported, so each backend runs
``tests/keras_backend_tests.py`` in its own process (one per backend, started once per
session). This file checks that each run passes, then compares their recorded results: the
shuffles bit for bit, ESPCN to float32 rounding, and what Keras's own ``depth_to_space`` does
with ``data_format="channels_first"`` on each backend (the trap in docs/keras.md).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
RUNNER = Path(__file__).with_name("keras_backend_tests.py")
BACKENDS = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}  # backend -> module
TIMEOUT = 900


def _available(backend: str) -> bool:
    return all(importlib.util.find_spec(m) for m in ("keras", BACKENDS[backend]))


@pytest.fixture(scope="session")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Run the backend tests once per available backend: {backend: {rc, output, folder}}."""
    results: dict[str, dict[str, Any]] = {}
    for backend in BACKENDS:
        if not _available(backend):
            continue
        folder = tmp_path_factory.mktemp(f"keras-{backend}")
        env = {
            **os.environ,
            "KERAS_BACKEND": backend,
            "SUBPIXEL_KERAS_OUT": str(folder),
            "TF_CPP_MIN_LOG_LEVEL": "2",
        }
        if backend == "jax":  # compile each eager operation without LLVM's optimisations:
            env["XLA_FLAGS"] = "--xla_backend_optimization_level=0"  # 4x faster here
        cmd = [sys.executable, "-m", "pytest", str(RUNNER), "-x", "-q", "-p", "no:cacheprovider"]
        done = subprocess.run(
            cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False
        )
        results[backend] = {
            "rc": done.returncode,
            "output": done.stdout[-6000:] + done.stderr[-3000:],
            "folder": folder,
        }
    return results


def _run(runs: dict[str, dict[str, Any]], backend: str) -> dict[str, Any]:
    if backend not in runs:
        pytest.skip(f"Keras or {BACKENDS[backend]} is not installed")
    return runs[backend]


def _facts(run: dict[str, Any]) -> dict[str, Any]:
    path = Path(run["folder"]) / "facts.json"
    if not path.exists():
        pytest.fail(f"no results recorded:\n{run['output']}")
    facts: dict[str, Any] = json.loads(path.read_text())
    return facts


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_backend_suite_passes(runs: dict[str, dict[str, Any]], backend: str) -> None:
    run = _run(runs, backend)
    assert run["rc"] == 0, f"KERAS_BACKEND={backend} {RUNNER.name} failed:\n{run['output']}"


def test_every_backend_gives_the_same_results(runs: dict[str, dict[str, Any]]) -> None:
    ran = {b: r for b, r in runs.items() if r["rc"] == 0}
    if len(ran) < 2:
        pytest.skip(f"fewer than two backends passed: {sorted(ran)}")
    arrays = {b: np.load(Path(r["folder"]) / "arrays.npz") for b, r in ran.items()}
    first, *others = arrays
    keys = set(arrays[first].files)
    assert {"espcn_x2", "espcn_x3", "espcn_x4"} <= keys
    for other in others:
        common = keys & set(arrays[other].files)  # JAX runs a sample of the shuffle grid
        assert sum(k.startswith("shuffle_") for k in common) >= 50
        for key in sorted(common):
            a, b = arrays[first][key], arrays[other][key]
            if key.startswith("shuffle_") or key.endswith("_input"):
                assert a.dtype == b.dtype and np.array_equal(a, b), (key, first, other)
            else:
                assert np.abs(a - b).max() < 1e-5, (key, first, other)


#: What keras.ops.depth_to_space(x, r, data_format="channels_first") computes (Keras 3.15):
#: TensorFlow's order on the TensorFlow backend (it transposes to NHWC and calls
#: tf.nn.depth_to_space), PyTorch's on JAX and PyTorch (a reshape in NCHW).
TRAP = {"tensorflow": "hwc", "jax": "chw", "torch": "chw"}


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_keras_depth_to_space_channels_first_trap(
    runs: dict[str, dict[str, Any]], backend: str
) -> None:
    facts = _facts(_run(runs, backend))
    assert facts["backend"] == backend
    assert facts["depth_to_space_channels_last"] == "hwc"
    assert facts["depth_to_space_channels_first"] == TRAP[backend]
    assert facts["space_to_depth_channels_first"] == TRAP[backend]


def test_import_subpixel_imports_no_keras_tensorflow_or_jax() -> None:
    code = (
        "import sys, json, subpixel, subpixel.ops, subpixel.layers, subpixel.models;"
        "print(json.dumps(sorted(m for m in ('keras', 'tensorflow', 'jax') if m in sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert json.loads(done.stdout) == []
