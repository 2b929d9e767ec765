"""Shared fixtures: deterministic seeding and the shared data directory."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _seed() -> Iterator[None]:
    random.seed(0)
    np.random.seed(0)  # noqa: NPY002 - seeds legacy global state some libraries use
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared data directory named by ``SUBPIXEL_DATA``; skips the test when absent."""
    root = os.environ.get("SUBPIXEL_DATA")
    if not root:
        pytest.skip("SUBPIXEL_DATA is not set: shared data tests skipped")
    path = Path(root)
    if not path.is_dir():
        pytest.skip(f"SUBPIXEL_DATA={root} is not a directory: shared data tests skipped")
    return path


@pytest.fixture(scope="module")
def tiny_espcn_x2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small random ESPCN ×2 weights file, for tests where the result's quality does not
    matter (faults, fuzzing)."""
    from subpixel.models import get_model
    from subpixel.serialization import save_weights

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "tiny_x2.safetensors"
    model = get_model("espcn", scale=2, features=(8, 4))
    save_weights(path, model.state_dict(), model="espcn", config={"scale": 2, "features": [8, 4]})
    return path
