"""ICNR for Keras: sub-pixel convolutions that start free of checkerboard artefacts.

The Keras twin of :func:`subpixel.init.icnr_` (Aitken et al. 2017). A Keras convolution
kernel is ``(*k, C_in/groups, C·∏r)``: the output channel axis is the **last** one, so ICNR
draws a sub-kernel ``(*k, C_in/groups, C)`` with the base initializer and gives it to all
``∏r`` channels that the shuffle sends to the block of channel ``c``. Then
``pixel_shuffle(conv(x))`` is exactly nearest-neighbour upsampling of a plain convolution
with the sub-kernel. The same initializer on a bias ``(C·∏r,)`` makes it block-constant.

Example:
    >>> import keras
    >>> from subpixel.keras.initializers import ICNR
    >>> w = keras.ops.convert_to_numpy(ICNR((2, 2), order="chw", seed=1)((3, 3, 8, 4 * 2)))
    >>> w.shape
    (3, 3, 8, 8)
    >>> blocks = w.reshape(3, 3, 8, 2, 4)                   # "chw": c outer, 4 offsets
    >>> bool((blocks == blocks[..., :1]).all())
    True
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from subpixel.ops import TORCH_ORDERS, Factor, ShuffleSpec, order_permutation

__all__ = ["ICNR", "TORCH_ORDERS"]  # TORCH_ORDERS: subpixel.ops's table, re-exported


@keras.saving.register_keras_serializable(package="subpixel")
class ICNR(keras.initializers.Initializer):
    """Initializer for a sub-pixel convolution's kernel (or bias), shuffled by ``order``.

    Args:
        factor: the shuffle factor, an int for every spatial axis or one per axis.
        order: the shuffle's channel order (or an alias); ``None`` is PyTorch's order for the
            kernel's dimension (``"cw"``, ``"chw"``, ``"cdhw"``), as in
            :func:`subpixel.init.icnr_`. With a 1-D shape (a bias) and ``order=None``, give
            ``factor`` as a tuple so the number of spatial axes is known.
        initializer: the base initializer for the sub-kernel (anything
            ``keras.initializers.get`` takes); ``"he_normal"`` by default, as in the paper.
        seed: optional seed for the base initializer (which must take one).

    Raises:
        ValueError: the shape's last axis is not a multiple of ``∏r``, or the shape does not
            fit the factor/order.

    Example:
        >>> import keras
        >>> b = ICNR((3,), order="wc", initializer="random_normal", seed=0)((2 * 3,))
        >>> blocks = keras.ops.convert_to_numpy(b).reshape(3, 2)     # "wc": c inner
        >>> bool((blocks == blocks[:1]).all())
        True
    """

    def __init__(
        self,
        factor: Factor,
        order: str | None = None,
        initializer: Any = "he_normal",
        seed: int | None = None,
    ) -> None:
        if isinstance(factor, bool) or not isinstance(factor, (int, tuple, list)):
            raise TypeError(f"ICNR: factor must be an int or a tuple of ints, got {factor!r}")
        self.factor: int | tuple[int, ...] = factor if isinstance(factor, int) else tuple(factor)
        if order is not None:
            ShuffleSpec.make(self.factor, order)  # validate early
        self.order = order
        self.seed = seed
        base = keras.initializers.get(initializer)
        if seed is not None:
            config = base.get_config()
            if "seed" not in config:
                raise ValueError(f"ICNR: the initializer {initializer!r} takes no seed")
            base = type(base).from_config({**config, "seed": seed})
        self.initializer: keras.initializers.Initializer = base

    def spec_for(self, shape: tuple[int, ...]) -> ShuffleSpec:
        """The shuffle for a kernel ``(*k, C_in, C·∏r)`` or bias ``(C·∏r,)`` of ``shape``."""
        shape = tuple(int(s) for s in shape)
        if len(shape) == 1:
            n = len(self.factor) if isinstance(self.factor, tuple) else None
        elif len(shape) - 2 in TORCH_ORDERS:
            n = len(shape) - 2
        else:
            raise ValueError(
                f"ICNR: shape {shape} is neither a 1-, 2- or 3-D convolution kernel "
                "(*kernel, C_in, C_out) nor a bias (C_out,)"
            )
        order = self.order
        if order is None:
            if n is None:
                raise ValueError(
                    f"ICNR: for the 1-D shape {shape} (a bias) give factor as a tuple or an "
                    "explicit order, so the number of spatial axes is known"
                )
            order = TORCH_ORDERS[n]
        factor = (self.factor,) * n if isinstance(self.factor, int) and n else self.factor
        spec = ShuffleSpec.make(factor, order)
        if n is not None and spec.ndim != n:
            raise ValueError(
                f"ICNR: factor {spec.factors} / order {spec.order!r} are for {spec.ndim} "
                f"spatial axes but the kernel of shape {shape} has {n}"
            )
        if shape[-1] % spec.block:
            raise ValueError(
                f"ICNR: shape {shape}: the output channels ({shape[-1]}) must be a multiple of "
                f"the product of the factors {spec.factors} ({spec.block})"
            )
        return spec

    def __call__(self, shape: Any, dtype: Any = None) -> Any:
        shape = tuple(int(s) for s in shape)
        spec = self.spec_for(shape)
        total = shape[-1]
        sub = self.initializer((*shape[:-1], total // spec.block), dtype=dtype)
        # PyTorch order: channel (c, offsets) is c·∏r + offset, so repeating each sub-kernel
        # ∏r times fills the blocks; the permutation then moves them to ``order``.
        full = keras.ops.repeat(sub, spec.block, axis=-1)
        perm = order_permutation(total, spec.factors, src=TORCH_ORDERS[spec.ndim], dst=spec.order)
        return keras.ops.take(full, keras.ops.convert_to_tensor(perm.astype(np.int32)), axis=-1)

    def get_config(self) -> dict[str, Any]:
        factor = list(self.factor) if isinstance(self.factor, tuple) else self.factor
        return {
            "factor": factor,
            "order": self.order,
            "initializer": keras.initializers.serialize(self.initializer),
            "seed": None,  # the seed lives in the serialised base initializer
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ICNR:
        config = dict(config)
        factor = config.pop("factor")
        factor = tuple(factor) if isinstance(factor, list) else factor
        return cls(factor, **config)
