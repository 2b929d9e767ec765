"""Weights between PyTorch and Keras: kernel layouts, shuffle orders, ESPCN state dicts.

Two differences separate a PyTorch sub-pixel model's weights from a Keras one's:

* the **layout**: PyTorch stores a convolution kernel as ``(O, I, *k)``, Keras as
  ``(*k, I, O)`` (:func:`kernel_from_torch`, :func:`kernel_to_torch`; a transposed
  convolution's ``(I, O, *k)`` and Keras's ``(*k, O, I)`` are covered by the same
  functions, which move the first two axes to the end reversed);
* the **shuffle order** of the last convolution's output channels: PyTorch's
  ``pixel_shuffle`` is ``"chw"``, TensorFlow's ``depth_to_space`` ``"hwc"``. They differ
  whenever the model has more than one output channel; :func:`subpixel.convert_order` moves
  between them.

:func:`load_torch_state` and :func:`torch_state` do both for an ESPCN (any depth, any kernel
sizes, PReLU slopes included); :func:`save_torch` writes a subpixel ``.safetensors`` file that
``subpixel.models.get_model("espcn", weights=path)`` loads in PyTorch.

Example:
    >>> import keras, numpy as np, torch
    >>> from subpixel.keras.models import espcn
    >>> from subpixel.models import get_model
    >>> keras_model = espcn(2, weights="espcn")
    >>> state, config = torch_state(keras_model)
    >>> torch_model = get_model("espcn", **config)
    >>> _ = torch_model.load_state_dict(state)
    >>> x = np.random.default_rng(0).random((1, 9, 11, 1), dtype=np.float32)
    >>> ours = keras.ops.convert_to_numpy(keras_model(x))[..., 0]
    >>> theirs = torch_model(torch.from_numpy(x).permute(0, 3, 1, 2)).detach()[:, 0].numpy()
    >>> bool(np.abs(ours - theirs).max() < 1e-5)
    True
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import keras
import numpy as np
import torch

from subpixel.ops import convert_order
from subpixel.serialization import WeightsError, save_weights

if TYPE_CHECKING:
    from subpixel.keras.models import ESPCN

__all__ = ["kernel_from_torch", "kernel_to_torch", "load_torch_state", "save_torch", "torch_state"]

_KERAS_ORDER = "hwc"  # what subpixel.keras.models.ESPCN shuffles with


def _numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(keras.ops.convert_to_numpy(x))


def kernel_from_torch(weight: Any) -> np.ndarray:
    """A PyTorch convolution weight ``(O, I, *k)`` as a Keras kernel ``(*k, I, O)``.

    Example:
        >>> import torch
        >>> kernel_from_torch(torch.zeros(8, 3, 5, 4)).shape
        (5, 4, 3, 8)
    """
    w = _numpy(weight)
    if w.ndim < 3:
        raise ValueError(f"expected a convolution weight (O, I, *k), got shape {w.shape}")
    return np.ascontiguousarray(np.transpose(w, (*range(2, w.ndim), 1, 0)))


def kernel_to_torch(kernel: Any) -> np.ndarray:
    """A Keras kernel ``(*k, I, O)`` as a PyTorch convolution weight ``(O, I, *k)``.

    Example:
        >>> import numpy as np
        >>> kernel_to_torch(np.zeros((5, 4, 3, 8))).shape
        (8, 3, 5, 4)
    """
    k = _numpy(kernel)
    if k.ndim < 3:
        raise ValueError(f"expected a convolution kernel (*k, I, O), got shape {k.shape}")
    n = k.ndim - 2
    return np.ascontiguousarray(np.transpose(k, (n + 1, n, *range(n))))


def _torch_key(layer_name: str) -> str:
    """``features_2`` -> ``features.2``: the PyTorch parameter prefix of a Keras layer."""
    return layer_name.replace("_", ".") if layer_name.startswith("features_") else layer_name


def _weighted_layers(model: keras.Model) -> list[keras.layers.Layer]:
    return [layer for layer in model.layers if layer.weights]


def load_torch_state(
    model: ESPCN,
    state: Mapping[str, Any],
    *,
    order: str = "chw",
    source: str = "state dict",
) -> ESPCN:
    """Copy a PyTorch ESPCN ``state_dict`` into a Keras :class:`ESPCN` of the same shape.

    Args:
        model: the Keras model (its configuration must match the state dict's).
        state: the PyTorch tensors (``features.0.weight``, ..., ``upsample.bias``, PReLU
            ``features.1.weight``/``output.weight``), torch tensors or numpy arrays.
        order: the PyTorch model's shuffle order (its ``order`` option; ``"chw"`` unless it
            was trained otherwise).
        source: named in error messages (e.g. the file).

    Returns:
        ``model``, with its weights replaced.

    Raises:
        WeightsError: a tensor is missing, left over, or of the wrong shape.
    """
    remaining = dict(state)
    scale = model.scale
    for layer in _weighted_layers(model):
        prefix = _torch_key(layer.name)
        values = []
        names = ["kernel", "bias"] if isinstance(layer, keras.layers.Conv2D) else ["alpha"]
        torch_names = ["weight", "bias"] if names[0] == "kernel" else ["weight"]
        for var, torch_name in zip(layer.weights, torch_names, strict=True):
            key = f"{prefix}.{torch_name}"
            if key not in remaining:
                raise WeightsError(f"{source}: missing tensor {key!r} for Keras layer {layer.name}")
            value = _numpy(remaining.pop(key)).astype(np.float32)
            if layer.name == "upsample":
                value = convert_order(value, scale, src=order, dst=_KERAS_ORDER, dim=0)
            if torch_name == "weight" and names[0] == "kernel":
                value = kernel_from_torch(value)
            elif names[0] == "alpha":
                value = value.reshape(tuple(var.shape)) if value.size == 1 else value
            if tuple(value.shape) != tuple(var.shape):
                raise WeightsError(
                    f"{source}: tensor {key!r} of shape {tuple(value.shape)} does not fit "
                    f"Keras layer {layer.name} ({var.path}: {tuple(var.shape)})"
                )
            values.append(value)
        layer.set_weights(values)
    if remaining:
        raise WeightsError(
            f"{source}: unexpected tensors {sorted(remaining)} for the model's layers "
            f"{[layer.name for layer in _weighted_layers(model)]}"
        )
    return model


def torch_state(
    model: ESPCN, *, order: str = "chw"
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The PyTorch ``state_dict`` and ``ESPCN`` options of a Keras :class:`ESPCN`.

    Args:
        model: the Keras model.
        order: the shuffle order of the PyTorch model to build (``"chw"``: PyTorch's).

    Returns:
        ``(state_dict, config)``: ``subpixel.models.get_model("espcn", **config)`` builds
        the PyTorch model and ``load_state_dict(state_dict)`` fills it.
    """
    state: dict[str, torch.Tensor] = {}
    scale = model.scale
    for layer in _weighted_layers(model):
        prefix = _torch_key(layer.name)
        if isinstance(layer, keras.layers.Conv2D):
            kernel, bias = (_numpy(v) for v in layer.weights)
            weight = kernel_to_torch(kernel)
            if layer.name == "upsample":
                weight = convert_order(weight, scale, src=_KERAS_ORDER, dst=order, dim=0)
                bias = convert_order(bias, scale, src=_KERAS_ORDER, dst=order, dim=0)
            state[f"{prefix}.weight"] = torch.from_numpy(np.ascontiguousarray(weight))
            state[f"{prefix}.bias"] = torch.from_numpy(np.ascontiguousarray(bias))
        else:  # PReLU: one shared slope
            (alpha,) = (_numpy(v) for v in layer.weights)
            state[f"{prefix}.weight"] = torch.from_numpy(alpha.reshape(-1).copy())
    config = dict(model.get_config())
    config.pop("name", None)
    if order != "chw":
        config["order"] = order
    return state, config


def save_torch(
    model: ESPCN,
    path: str | os.PathLike[str],
    *,
    order: str = "chw",
    card: Mapping[str, Any] | None = None,
) -> None:
    """Write a Keras :class:`ESPCN`'s weights as a subpixel (PyTorch) ``.safetensors`` file.

    The file carries ``subpixel.model = "espcn"`` and the configuration, so
    ``subpixel.models.get_model("espcn", weights=path)`` (and ``subpixel upscale
    --weights path``) load it in PyTorch, and :func:`subpixel.keras.models.espcn` back in
    Keras.

    Example:
        >>> import os, tempfile
        >>> from subpixel.keras.models import espcn
        >>> from subpixel.models import get_model
        >>> path = os.path.join(tempfile.mkdtemp(), "x2.safetensors")
        >>> save_torch(espcn(2, features=(8, 4)), path)
        >>> get_model("espcn", weights=path).upsample.weight.shape
        torch.Size([4, 4, 3, 3])
    """
    state, config = torch_state(model, order=order)
    save_weights(path, state, model="espcn", config=config, card=card)
