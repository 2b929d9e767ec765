"""Model registry: explicit, no folder scanning.

Example:
    >>> from subpixel.models import get_model, list_models
    >>> "espcn" in list_models()
    True
    >>> get_model("espcn", scale=2).scale
    2
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from torch import nn

from subpixel.bundled import find, weights_path
from subpixel.models.autoencoder import build_autoencoder
from subpixel.models.dcgan import build_dcgan
from subpixel.models.espcn import ESPCN
from subpixel.models.faces import build_subpixel_faces
from subpixel.models.fsrcnn import FSRCNN
from subpixel.models.reparam import RepSR
from subpixel.serialization import WeightsError, WeightsMeta, load_weights

__all__ = ["Loaded", "ModelEntry", "WeightsError", "get_model", "list_models", "load_model"]


class Loaded(NamedTuple):
    """What :func:`load_model` returns."""

    model: nn.Module
    name: str  # the registered architecture
    meta: WeightsMeta


@dataclass(frozen=True)
class ModelEntry:
    """A registered architecture: its builder and a one-line description."""

    name: str
    builder: Callable[..., nn.Module]
    summary: str


_REGISTRY: dict[str, ModelEntry] = {}


def register(entry: ModelEntry) -> None:
    """Add ``entry`` to the registry (names are unique)."""
    if entry.name in _REGISTRY:
        raise ValueError(f"model {entry.name!r} is already registered")
    _REGISTRY[entry.name] = entry


register(ModelEntry("espcn", ESPCN, "ESPCN super-resolution (Shi et al. 2016), Y channel"))
register(ModelEntry("fsrcnn", FSRCNN, "FSRCNN super-resolution (Dong et al. 2016), Y channel"))
register(
    ModelEntry("repsr", RepSR, "ESPCN trained with re-parameterisable blocks; collapses to espcn")
)
register(ModelEntry("autoencoder", build_autoencoder, "MNIST autoencoder, sub-pixel/transposed"))
register(ModelEntry("dcgan", build_dcgan, "28×28 DCGAN, sub-pixel/transposed generator"))
register(ModelEntry("subpixel-faces", build_subpixel_faces, "original project's 4× RGB faces"))


def list_models() -> list[str]:
    """Names accepted by :func:`get_model`, sorted."""
    return sorted(_REGISTRY)


def _entry(name: str) -> ModelEntry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(list_models())}") from None


def _check_config(entry: ModelEntry, config: dict[str, Any]) -> None:
    params = inspect.signature(entry.builder).parameters
    accepted = [p for p in params if p != "self"]
    unknown = sorted(set(config) - set(accepted))
    if unknown:
        raise ValueError(
            f"model {entry.name!r} got unknown option(s) {unknown}; accepted: {accepted}"
        )


def get_model(
    name: str, *, weights: str | os.PathLike[str] | None = None, **config: Any
) -> nn.Module:
    """Build a registered model, optionally loading weights.

    Args:
        name: a name from :func:`list_models`.
        weights: ``None`` (random init), a ``.safetensors`` path, or the name of bundled
            weights (``"DEFAULT"``, ``"espcn"``...: :mod:`subpixel.bundled`) for ``scale``.
        **config: the builder's options (e.g. ``scale=3``); unknown keys raise.

    When a weights file carries a config, options not given are taken from it and given
    ones must agree with it, so a file of another model or scale is refused.

    Raises:
        ValueError: unknown model or option; :class:`WeightsError` for unusable weights.
    """
    entry = _entry(name)
    _check_config(entry, config)
    if weights is None:
        return entry.builder(**config)
    return load_model(weights, model=name, **config).model


def load_model(
    weights: str | os.PathLike[str], *, model: str | None = None, **config: Any
) -> Loaded:
    """The model a weights file holds, its name and metadata, the file opened once.

    The file's header names the architecture (``model`` overrides it; files that name none
    are ``"espcn"``, the first format); its config fills the options not given in
    ``config``, and given ones must agree with it. What ``subpixel upscale``, ``eval`` and
    ``export`` load a file with.

    Args:
        weights: a ``.safetensors`` path or the name of bundled weights for ``scale``.
        model: the architecture, if the file should be read as that one.
        **config: the builder's options (e.g. ``scale=3``).

    Raises:
        ValueError: unknown model or option; :class:`WeightsError` for unusable weights
            (missing, not safetensors, another model or scale, tensors that do not fit).

    Example:
        >>> model, name, meta = load_model("espcn", scale=2)   # bundled weights by name
        >>> type(model).__name__, name, meta.config["scale"]
        ('ESPCN', 'espcn', 2)
    """
    if find(weights) is not None:
        path = weights_path(str(weights), config.get("scale"))
        if not path.exists():
            raise WeightsError(f"{path}: bundled weights missing from this installation")
    else:
        path = Path(weights)
    tensors, meta = load_weights(path)
    name = model or meta.model or "espcn"
    entry = _entry(name)
    _check_config(entry, config)
    if meta.model is not None and meta.model != name:
        raise WeightsError(f"{path}: weights are for model {meta.model!r}, not {name!r}")
    merged = dict(meta.config)
    for key, value in config.items():
        if key in merged and merged[key] != value:
            raise WeightsError(
                f"{path}: weights were trained with {key}={merged[key]!r}, asked for {value!r}"
            )
        merged[key] = value
    _check_config(entry, merged)
    built = entry.builder(**merged)
    try:
        built.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise WeightsError(
            f"{path}: tensors do not fit model {name!r} {merged}: "
            f"{' '.join(line.strip() for line in first[:3])}"
        ) from exc
    built.eval()
    return Loaded(built, name, meta)
