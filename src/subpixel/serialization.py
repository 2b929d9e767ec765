"""Safe weights files: safetensors only, never pickle.

A subpixel weights file is a ``.safetensors`` file whose string metadata holds
``subpixel.model`` (the registry name), ``subpixel.config`` (JSON of the builder's keyword
arguments) and optionally ``subpixel.card`` (JSON model card). Files that are not
safetensors (pickles, ``.pt``/``.pth`` archives, truncated downloads) are refused with a
one-line :class:`WeightsError` before anything in them is interpreted.

Example:
    >>> import tempfile, torch, os
    >>> path = os.path.join(tempfile.mkdtemp(), "w.safetensors")
    >>> save_weights(path, {"w": torch.ones(2)}, model="espcn", config={"scale": 3})
    >>> tensors, meta = load_weights(path)
    >>> meta.model, meta.config
    ('espcn', {'scale': 3})
"""

from __future__ import annotations

import json
import os
import struct
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from subpixel._files import atomic_write_bytes

__all__ = [
    "WeightsError",
    "WeightsMeta",
    "load_weights",
    "read_weights_meta",
    "save_weights",
]

_MAX_HEADER = 100 * 1024 * 1024


class WeightsError(ValueError):
    """A weights file that cannot be used: not safetensors, corrupt, or for another model."""


@dataclass(frozen=True)
class WeightsMeta:
    """What a weights file says about itself."""

    model: str | None
    config: dict[str, Any] = field(default_factory=dict)
    card: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)
    raw: dict[str, str] = field(default_factory=dict)  # the header's metadata, every key


def _require_safetensors() -> Any:
    try:
        import safetensors.torch
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "reading weights needs the 'safetensors' package: pip install 'subpixel[sr]'"
        ) from exc
    return safetensors.torch


def sniff_weights(path: str | os.PathLike[str]) -> None:
    """Raise :class:`WeightsError` unless ``path`` looks like a well-formed safetensors file.

    Only the first bytes are read; a pickle or zip (``torch.save``) file is named as such.
    """
    p = Path(path)
    if not p.exists():
        raise WeightsError(f"{p}: no such weights file")
    if p.is_dir():
        raise WeightsError(f"{p}: is a directory, not a .safetensors weights file")
    size = p.stat().st_size
    with p.open("rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise WeightsError(f"{p}: empty or truncated weights file ({size} bytes)")
        (n,) = struct.unpack("<Q", head)
        header = fh.read(n) if 0 < n <= min(_MAX_HEADER, size - 8) else b""
    parsed: object = None
    if header:
        try:
            parsed = json.loads(header)
        except (UnicodeDecodeError, json.JSONDecodeError):
            parsed = None
    if not isinstance(parsed, dict):
        # Not safetensors: name the usual suspects without interpreting them.
        if head[:1] == b"\x80" or zipfile.is_zipfile(p):
            raise WeightsError(
                f"{p}: is a pickle/torch.save file; subpixel loads only .safetensors weights "
                "and never unpickles (convert it yourself if you trust its source)"
            )
        raise WeightsError(f"{p}: not a valid .safetensors file (unreadable header)")
    end = 0
    for key, info in parsed.items():
        if key == "__metadata__":
            continue
        try:
            end = max(end, int(info["data_offsets"][1]))
        except (TypeError, KeyError, IndexError, ValueError) as exc:
            raise WeightsError(f"{p}: not a valid .safetensors file (bad entry {key!r})") from exc
    if 8 + n + end > size:
        raise WeightsError(
            f"{p}: truncated .safetensors file ({size} bytes, header promises {8 + n + end})"
        )


def _meta(path: str | os.PathLike[str], raw: Mapping[str, str]) -> WeightsMeta:
    try:
        config = json.loads(raw.get("subpixel.config", "{}"))
        card = json.loads(raw.get("subpixel.card", "{}"))
    except json.JSONDecodeError as exc:
        raise WeightsError(f"{path}: corrupt subpixel metadata ({exc})") from exc
    extra = {k: v for k, v in raw.items() if not k.startswith("subpixel.")}
    return WeightsMeta(raw.get("subpixel.model"), config, card, extra, dict(raw))


def read_weights_meta(path: str | os.PathLike[str]) -> WeightsMeta:
    """What a ``.safetensors`` file says about itself (which model, its config...), from its
    header alone: no tensor is read.

    Example:
        >>> import tempfile, torch, os
        >>> path = os.path.join(tempfile.mkdtemp(), "w.safetensors")
        >>> save_weights(path, {"w": torch.ones(2)}, model="espcn", config={"scale": 2})
        >>> read_weights_meta(path).model
        'espcn'
    """
    sniff_weights(path)
    _require_safetensors()
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            raw: dict[str, str] = fh.metadata() or {}
    except Exception as exc:
        raise WeightsError(f"{path}: corrupt .safetensors file ({exc})") from exc
    return _meta(path, raw)


def load_weights(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], WeightsMeta]:
    """Read tensors and subpixel metadata from a ``.safetensors`` file (never unpickles),
    opening it once."""
    sniff_weights(path)
    _require_safetensors()
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            raw: dict[str, str] = fh.metadata() or {}
            tensors: dict[str, torch.Tensor] = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
    except Exception as exc:
        raise WeightsError(f"{path}: corrupt .safetensors file ({exc})") from exc
    return tensors, _meta(path, raw)


def save_weights(
    path: str | os.PathLike[str],
    tensors: Mapping[str, torch.Tensor],
    *,
    model: str | None = None,
    config: Mapping[str, Any] | None = None,
    card: Mapping[str, Any] | None = None,
    extra: Mapping[str, str] | None = None,
) -> None:
    """Write ``tensors`` and metadata to ``path`` atomically as safetensors."""
    st = _require_safetensors()
    meta: dict[str, str] = dict(extra or {})
    if model is not None:
        meta["subpixel.model"] = model
    if config is not None:
        meta["subpixel.config"] = json.dumps(dict(config), sort_keys=True)
    if card is not None:
        meta["subpixel.card"] = json.dumps(dict(card), sort_keys=True)
    clean = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    atomic_write_bytes(path, st.save(clean, metadata=meta))
