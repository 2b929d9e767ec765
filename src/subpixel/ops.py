"""The periodic shuffle (pixel shuffle, depth-to-space) and its inverse, in every channel order.

A shuffle spreads each group of ``∏r`` channels over an ``r_1×…×r_n`` block of output
pixels. Frameworks disagree on *which* channel lands on *which* pixel; the ``order``
string says it explicitly: ``c`` for the output channel plus one letter per spatial axis
(``w``; ``h w``; ``d h w``), written outermost first, describing how the **input channel
axis** is factorised. ``order`` is independent of ``data_format`` (where the channel axis
sits in the tensor).

=============  ==========================================================================
order          who uses it
=============  ==========================================================================
``chw``        PyTorch ``pixel_shuffle``; ONNX ``DepthToSpace`` mode CRD; einops
``hwc``        TensorFlow ``depth_to_space``; ONNX ``DepthToSpace`` mode DCR; ``SpaceToDepth``
``cwh``        the original TensorFlow ``subpixel`` project's ``PS(X, r, color=True)``
``whc``        the "subpixel autoencoder" Keras article's ``_phase_shift``
=============  ==========================================================================

Aliases (the dimension comes from a tuple ``factor``; with an int factor it is 2):
``"torch"``/``"pytorch"``/``"onnx-crd"``/``"crd"``/``"einops"`` = ``c`` + spatial;
``"tensorflow"``/``"tf"``/``"onnx-dcr"``/``"dcr"`` = spatial + ``c``;
``"subpixel-tf"``/``"caffe"``/``"realsr"`` = ``c`` + reversed spatial;
``"keras-article"`` = reversed spatial + ``c``.

Example:
    >>> import torch, subpixel
    >>> x = torch.arange(8.0).reshape(1, 8, 1, 1)
    >>> subpixel.pixel_shuffle(x, 2, order="chw").shape
    torch.Size([1, 2, 2, 2])
    >>> torch.equal(subpixel.pixel_shuffle(x, 2), torch.nn.functional.pixel_shuffle(x, 2))
    True
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, TypeVar, overload

import numpy as np
import torch
import torch.nn.functional as F

from subpixel import _copy

__all__ = [
    "ORDER_ALIASES",
    "SPATIAL_LETTERS",
    "TORCH_ORDERS",
    "ShuffleSpec",
    "convert_order",
    "order_permutation",
    "pixel_shuffle",
    "pixel_unshuffle",
    "resolve_order",
]

DataFormat = Literal["channels_first", "channels_last"]
Factor = int | Sequence[int]
ArrayT = TypeVar("ArrayT", torch.Tensor, np.ndarray)

#: The spatial axes' letters of 1-, 2- and 3-D data, outermost first (orders.md).
SPATIAL_LETTERS: dict[int, str] = {1: "w", 2: "hw", 3: "dhw"}

#: Framework names accepted as ``order``, mapped to a rule building the order for n axes.
ORDER_ALIASES: dict[str, str] = {
    "torch": "c+spatial",
    "pytorch": "c+spatial",
    "onnx-crd": "c+spatial",
    "crd": "c+spatial",
    "einops": "c+spatial",
    "tensorflow": "spatial+c",
    "tf": "spatial+c",
    "onnx-dcr": "spatial+c",
    "dcr": "spatial+c",
    "subpixel-tf": "c+reversed",
    "caffe": "c+reversed",
    "realsr": "c+reversed",
    "keras-article": "reversed+c",
}


def _alias_to_order(rule: str, ndim: int) -> str:
    spatial = SPATIAL_LETTERS[ndim]
    return {
        "c+spatial": "c" + spatial,
        "spatial+c": spatial + "c",
        "c+reversed": "c" + spatial[::-1],
        "reversed+c": spatial[::-1] + "c",
    }[rule]


#: PyTorch's order (``nn.PixelShuffle``'s; alias ``"torch"``) by number of spatial axes:
#: ``{1: "cw", 2: "chw", 3: "cdhw"}``. The one table; layers, ICNR and the converter use it.
TORCH_ORDERS: dict[int, str] = {n: _alias_to_order("c+spatial", n) for n in SPATIAL_LETTERS}


@lru_cache(maxsize=256)
def resolve_order(order: str, ndim: int | None = None) -> str:
    """Return the canonical order string for ``order`` (a string or an alias).

    Args:
        order: an order string such as ``"chw"`` or an alias such as ``"tensorflow"``.
        ndim: the number of spatial axes, needed only for aliases (default 2).

    Example:
        >>> resolve_order("tensorflow")
        'hwc'
        >>> resolve_order("torch", 3)
        'cdhw'
    """
    if not isinstance(order, str):
        raise TypeError(f"order must be a string such as 'chw', got {type(order).__name__}")
    key = order.strip().lower()
    if key in ORDER_ALIASES:
        n = 2 if ndim is None else ndim
        if n not in SPATIAL_LETTERS:
            raise ValueError(f"order alias {order!r}: only 1, 2 or 3 spatial axes, got {n}")
        return _alias_to_order(ORDER_ALIASES[key], n)
    letters = set(key)
    n = len(key) - 1
    if (
        n not in SPATIAL_LETTERS
        or len(letters) != len(key)
        or letters != set("c" + SPATIAL_LETTERS[n])
    ):
        raise ValueError(
            f"unknown or malformed order {order!r}: expected 'c' plus one letter per spatial "
            "axis, each once ('cw'/'wc'; 'chw', 'hwc', 'cwh', 'whc'; any arrangement of "
            f"'cdhw'), or an alias ({', '.join(sorted(ORDER_ALIASES))})"
        )
    if ndim is not None and n != ndim:
        raise ValueError(f"order {order!r} has {n} spatial axes but {ndim} were expected")
    return key


@dataclass(frozen=True)
class ShuffleSpec:
    """A resolved shuffle: canonical order and per-axis factors (outermost spatial axis first).

    Example:
        >>> ShuffleSpec.make((2, 3), "tensorflow")
        ShuffleSpec(order='hwc', factors=(2, 3))
    """

    order: str
    factors: tuple[int, ...]

    @staticmethod
    def make(factor: Factor, order: str) -> ShuffleSpec:
        """Validate ``factor`` and ``order`` together and return the spec."""
        ndim_hint: int | None = None
        if isinstance(factor, (int, np.integer)) and not isinstance(factor, bool):
            factors_in: tuple[int, ...] | None = None
        elif isinstance(factor, Sequence) and not isinstance(factor, str):
            factors_in = tuple(factor)
            if not all(
                isinstance(f, (int, np.integer)) and not isinstance(f, bool) for f in factors_in
            ):
                raise TypeError(f"factor must be an int or a tuple of ints, got {factor!r}")
            ndim_hint = len(factors_in)
        else:
            raise TypeError(f"factor must be an int or a tuple of ints, got {factor!r}")
        key = order.strip().lower() if isinstance(order, str) else order
        if ndim_hint is not None and ndim_hint not in SPATIAL_LETTERS and key in ORDER_ALIASES:
            raise ValueError(
                f"factor {factor!r} has {ndim_hint} entries; only 1, 2 or 3 spatial axes exist"
            )
        # Under torch.compile, call the function itself: Dynamo warns about lru_cache.
        resolve = resolve_order.__wrapped__ if torch.compiler.is_compiling() else resolve_order
        canonical = resolve(order, ndim_hint if key in ORDER_ALIASES else None)
        n = len(canonical) - 1
        if factors_in is None:
            assert isinstance(factor, (int, np.integer))
            factors = (int(factor),) * n
        else:
            factors = tuple(int(f) for f in factors_in)
            if len(factors) != n:
                raise ValueError(
                    f"factor {factor!r} has {len(factors)} entries but order {canonical!r} "
                    f"has {n} spatial axes"
                )
        if any(f < 1 for f in factors):
            raise ValueError(f"factor must be >= 1 on every axis, got {factor!r}")
        return ShuffleSpec(canonical, factors)

    @property
    def ndim(self) -> int:
        """Number of spatial axes."""
        return len(self.factors)

    @property
    def block(self) -> int:
        """Channels per output channel: the product of the factors."""
        out = 1
        for f in self.factors:
            out *= f
        return out

    def sizes_in_order(self, channels: int) -> tuple[int, ...]:
        """Sizes of the factorised channel axis, in the order string's order."""
        spatial = SPATIAL_LETTERS[self.ndim]
        return tuple(
            channels if letter == "c" else self.factors[spatial.index(letter)]
            for letter in self.order
        )

    def letter_positions(self) -> tuple[int, tuple[int, ...]]:
        """Position of ``c`` and of each spatial letter (outermost axis first) in the order."""
        spatial = SPATIAL_LETTERS[self.ndim]
        return self.order.index("c"), tuple(self.order.index(a) for a in spatial)


def _describe(shape: Sequence[int], spec: ShuffleSpec, data_format: str) -> str:
    return (
        f"shape {tuple(shape)}, factor {spec.factors}, order {spec.order!r}, "
        f"data_format {data_format!r}"
    )


def _check_format(data_format: str) -> bool:
    if data_format == "channels_first":
        return True
    if data_format == "channels_last":
        return False
    raise ValueError(
        f"data_format must be 'channels_first' or 'channels_last', got {data_format!r}"
    )


def _resolve(
    shape: Sequence[int], factor: Factor, order: str, data_format: str
) -> tuple[ShuffleSpec, bool]:
    """Validate the arguments; a ValueError names the shape, the factor and the order."""
    try:
        return ShuffleSpec.make(factor, order), _check_format(data_format)
    except ValueError as exc:
        raise ValueError(
            f"{exc} (shape {tuple(shape)}, factor {factor!r}, order {order!r}, "
            f"data_format {data_format!r})"
        ) from None


@lru_cache(maxsize=1024)
def _shuffle_plan(
    shape: tuple[int, ...], spec: ShuffleSpec, first: bool, inverse: bool
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """(view shape, permutation, output shape) of one shuffle or unshuffle."""
    n = spec.ndim
    data_format = "channels_first" if first else "channels_last"
    if len(shape) < n + 1:
        raise ValueError(
            f"too few dimensions: {_describe(shape, spec, data_format)} needs at least "
            f"{n + 1} (channels and {n} spatial)"
        )
    nb = len(shape) - n - 1
    batch = shape[:nb]
    if first:
        chans, spatial = shape[nb], shape[nb + 1 :]
    else:
        chans, spatial = shape[-1], shape[nb:-1]
    c_pos, s_pos = spec.letter_positions()
    if not inverse:
        if chans % spec.block:
            raise ValueError(
                f"channels not divisible: {_describe(shape, spec, data_format)}; the channel "
                f"axis ({chans}) must be a multiple of the product of the factors ({spec.block})"
            )
        c_out = chans // spec.block
        sizes = spec.sizes_in_order(c_out)
        # View: (*B, f_0..f_n, *S) or (*B, *S, f_0..f_n); letters of the order become axes.
        f_base = nb if first else nb + n
        s_base = nb + n + 1 if first else nb
        view = (*batch, *sizes, *spatial) if first else (*batch, *spatial, *sizes)
        inter: list[int] = []
        for k in range(n):
            inter += [s_base + k, f_base + s_pos[k]]
        perm = (
            (*range(nb), f_base + c_pos, *inter) if first else (*range(nb), *inter, f_base + c_pos)
        )
        big = tuple(s * r for s, r in zip(spatial, spec.factors, strict=True))
        out = (*batch, c_out, *big) if first else (*batch, *big, c_out)
        return view, perm, out
    # Inverse: split each spatial axis into (S/r, r), move the r's into the channel axis.
    for s, r in zip(spatial, spec.factors, strict=True):
        if s % r:
            raise ValueError(
                f"spatial size not divisible: {_describe(shape, spec, data_format)}; every "
                f"spatial size must be a multiple of its factor"
            )
    small = tuple(s // r for s, r in zip(spatial, spec.factors, strict=True))
    split: list[int] = []
    for s, r in zip(small, spec.factors, strict=True):
        split += [s, r]
    if first:
        view = (*batch, chans, *split)
        c_axis = nb
        s_axis = [nb + 1 + 2 * k for k in range(n)]
    else:
        view = (*batch, *split, chans)
        c_axis = nb + 2 * n
        s_axis = [nb + 2 * k for k in range(n)]
    spatial_letters = SPATIAL_LETTERS[n]
    factor_axes = [
        c_axis if letter == "c" else s_axis[spatial_letters.index(letter)] + 1
        for letter in spec.order
    ]
    if first:
        perm = (*range(nb), *factor_axes, *s_axis)
        out = (*batch, chans * spec.block, *small)
    else:
        perm = (*range(nb), *s_axis, *factor_axes)
        out = (*batch, *small, chans * spec.block)
    return view, perm, out


def _plan(
    shape: Sequence[int], spec: ShuffleSpec, first: bool, inverse: bool
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    # Symbolic sizes (torch.compile/export with dynamic shapes) are not hashable, and Dynamo
    # warns about lru_cache: no cache there.
    if all(type(s) is int for s in shape) and not torch.compiler.is_compiling():
        return _shuffle_plan(tuple(shape), spec, first, inverse)
    return _shuffle_plan.__wrapped__(tuple(shape), spec, first, inverse)


Plan = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]

# Copy strategy (CPU). A permuted copy runs in the output's memory order, an inner loop over
# the two innermost (merged) dimensions at a time. When those hold only a few elements
# (a channels-last "chw" unshuffle writes (..., C, r_h, r_w): 4 elements per inner loop;
# a channels-last "hcw" shuffle with C = 16 writes (..., r_w, C): 32), loop overhead
# dominates. Copying one index of the tiny dimensions at a time (r_h·r_w, or r_w, strided
# copies, each with long inner loops) took 25-45 % less time in benchmarks/bench_ops.py;
# splitting in other cases did not pay off (see docs/benchmarks.md).
_SPLIT_MIN_INNER = 64  # the two innermost dimensions hold fewer elements than this: split
_SPLIT_TINY = 4  # a dimension of this size or smaller is tiny
_SPLIT_MAX_PIECES = 16  # at most this many copies


def _split_dims(shape: Sequence[int], stride: Sequence[int]) -> tuple[int, ...]:
    """Dimensions of a permuted view to copy one index at a time (empty: one plain copy).

    ``shape``/``stride`` describe the source view in the output's (contiguous) order.
    Dimensions the source walks contiguously across are merged first, as TensorIterator
    does. The split takes the run of tiny merged dimensions at the inner end if it has two or
    more, else the second dimension if it is tiny and the innermost two are short.
    """
    # (size, source stride, dimensions), innermost first
    groups: list[tuple[int, int, list[int]]] = []
    for dim in reversed(range(len(shape))):
        size, st = shape[dim], stride[dim]
        if groups and size == 1:
            groups[-1][2].append(dim)
        elif groups and (groups[-1][0] == 1 or st == groups[-1][0] * groups[-1][1]):
            g_size, g_stride, g_dims = groups[-1]
            groups[-1] = (g_size * size, st if g_size == 1 else g_stride, [*g_dims, dim])
        else:
            groups.append((size, st, [dim]))
    pieces, k = 1, 0
    while (
        k + 1 < len(groups)
        and groups[k][0] <= _SPLIT_TINY
        and pieces * groups[k][0] <= _SPLIT_MAX_PIECES
    ):
        pieces *= groups[k][0]
        k += 1
    if k >= 2:
        return tuple(sorted(d for g in groups[:k] for d in g[2]))
    if (
        len(groups) > 2
        and groups[1][0] <= _SPLIT_TINY
        and groups[0][0] * groups[1][0] < _SPLIT_MIN_INNER
    ):
        # A short run (e.g. C = 16) over a tiny dimension: take the tiny one out, so that
        # the inner loops run over the short run and the next, longer dimension.
        return tuple(sorted(groups[1][2]))
    return ()


def _fast_path_ok(x: torch.Tensor) -> bool:
    """Plain CPU tensors outside autograd, tracing and compilation."""
    return (
        type(x) is torch.Tensor
        and x.device.type == "cpu"
        and not (x.requires_grad and torch.is_grad_enabled())
        and not torch.jit.is_tracing()
        and not torch.compiler.is_compiling()
    )


def _apply_torch(
    x: torch.Tensor, spec: ShuffleSpec, first: bool, inverse: bool, plan: Plan
) -> torch.Tensor:
    view, perm, out = plan
    if not _fast_path_ok(x) or x.numel() < 1 << 16:
        return x.reshape(view).permute(perm).reshape(out)
    src = x.reshape(view).permute(perm)  # only splits dimensions: always a view
    if _copy.available():
        if src.is_contiguous():  # nothing moves (factor 1, or order "wc" channels last)
            return src.reshape(out)
        dst = torch.empty(src.shape, dtype=x.dtype)
        if _copy.copy_into(dst, src):
            return dst.view(out)
    if (
        not first
        and not inverse
        and spec.order == "chw"
        and spec.factors[0] == spec.factors[1]
        and x.is_contiguous()
    ):
        # PyTorch's own channels-last kernel (a vectorised transpose per pixel) beats a
        # permuted copy here; it is the same pure data movement, so the values are equal.
        nchw = x.reshape(-1, *x.shape[-3:]).permute(0, 3, 1, 2)
        return F.pixel_shuffle(nchw, spec.factors[0]).permute(0, 2, 3, 1).reshape(out)
    dims = _split_dims(src.shape, src.stride())
    if not dims:
        return src.reshape(out)
    dst = torch.empty(out, dtype=x.dtype, device=x.device).view(src.shape)
    index: list[int | slice] = [slice(None)] * src.ndim
    for values in itertools.product(*(range(src.shape[d]) for d in dims)):
        for d, v in zip(dims, values, strict=True):
            index[d] = v
        dst[tuple(index)].copy_(src[tuple(index)])
    return dst.view(out)


def _shuffle_any(
    x: torch.Tensor | np.ndarray, spec: ShuffleSpec, first: bool, inverse: bool
) -> torch.Tensor | np.ndarray:
    plan = _plan(x.shape, spec, first, inverse)  # validates against the caller's shape
    if isinstance(x, np.ndarray):
        view, perm, out = plan
        permuted = np.transpose(x.reshape(view), perm)
        if permuted.size >= 1 << 16 and not permuted.flags.c_contiguous:
            copied = _copy.copy_array(permuted)
            if copied is not None:
                return copied.reshape(out)
        return np.ascontiguousarray(permuted).reshape(out)
    if x.ndim > 1 and not x.is_contiguous():
        # A channels-first tensor stored channels last (memory format channels_last or
        # channels_last_3d), or the other way round: shuffle the dense view in the other
        # data format. Same values; the result keeps the input's memory layout, as
        # torch.nn.functional.pixel_shuffle does for channels_last.
        nb = x.ndim - spec.ndim - 1
        moved = x.movedim(nb, -1) if first else x.movedim(-1, nb)
        if moved.is_contiguous():
            y = _apply_torch(
                moved, spec, not first, inverse, _plan(moved.shape, spec, not first, inverse)
            )
            return y.movedim(-1, nb) if first else y.movedim(nb, -1)
    return _apply_torch(x, spec, first, inverse, plan)


def _check_array(x: object) -> None:
    if not isinstance(x, (torch.Tensor, np.ndarray)):
        raise TypeError(f"expected a torch.Tensor or numpy.ndarray, got {type(x).__name__}")


@overload
def pixel_shuffle(
    x: torch.Tensor, factor: Factor, *, order: str = ..., data_format: DataFormat = ...
) -> torch.Tensor: ...
@overload
def pixel_shuffle(
    x: np.ndarray, factor: Factor, *, order: str = ..., data_format: DataFormat = ...
) -> np.ndarray: ...
def pixel_shuffle(
    x: torch.Tensor | np.ndarray,
    factor: Factor,
    *,
    order: str = "chw",
    data_format: DataFormat = "channels_first",
) -> torch.Tensor | np.ndarray:
    """Rearrange ``(*B, C·∏r, *S)`` into ``(*B, C, *(S·r))`` (depth to space).

    Args:
        x: a torch tensor (any dtype/device; autograd works) or a numpy array.
        factor: an int for every spatial axis or a tuple, outermost axis first
            (``(r_w,)``, ``(r_h, r_w)``, ``(r_d, r_h, r_w)``).
        order: how the input channel axis is factorised (see the module docstring);
            its spatial letters set the number of spatial axes.
        data_format: ``"channels_first"`` ``(*B, C·∏r, *S)`` or ``"channels_last"``
            ``(*B, *S, C·∏r)``.

    Returns:
        The same kind of array as ``x``, ``(*B, C, *(S·r))`` or ``(*B, *(S·r), C)``.
        Like ``reshape``, the result may be a view of ``x`` when no data has to move
        (factor 1, or ``order="wc"`` on channels-last 1-D data). A torch tensor stored the
        other way round (a channels-first tensor in memory format ``channels_last`` or
        ``channels_last_3d``) gives a result stored the same way, as in PyTorch.

    Raises:
        ValueError: channels not divisible by ``∏r``, bad order/factor, too few dims.

    Example:
        >>> import numpy as np
        >>> x = np.arange(4).reshape(4, 1, 1)          # channels (0, 1, 2, 3), one pixel
        >>> pixel_shuffle(x, 2)[0].tolist()            # PyTorch order: row-major block
        [[0, 1], [2, 3]]
        >>> pixel_shuffle(x, 2, order="cwh")[0].tolist()  # original subpixel: column-major
        [[0, 2], [1, 3]]
        >>> pixel_shuffle(x, (1, 4), order="chw").shape
        (1, 1, 4)
    """
    _check_array(x)
    spec, first = _resolve(x.shape, factor, order, data_format)
    return _shuffle_any(x, spec, first, False)


@overload
def pixel_unshuffle(
    x: torch.Tensor, factor: Factor, *, order: str = ..., data_format: DataFormat = ...
) -> torch.Tensor: ...
@overload
def pixel_unshuffle(
    x: np.ndarray, factor: Factor, *, order: str = ..., data_format: DataFormat = ...
) -> np.ndarray: ...
def pixel_unshuffle(
    x: torch.Tensor | np.ndarray,
    factor: Factor,
    *,
    order: str = "chw",
    data_format: DataFormat = "channels_first",
) -> torch.Tensor | np.ndarray:
    """Rearrange ``(*B, C, *S)`` into ``(*B, C·∏r, *(S/r))`` (space to depth).

    The exact inverse of :func:`pixel_shuffle` with the same ``factor``, ``order`` and
    ``data_format``. ``order="chw"`` is ``torch.nn.functional.pixel_unshuffle``;
    ``order="hwc"`` is TensorFlow ``space_to_depth`` and ONNX ``SpaceToDepth``.

    Example:
        >>> import torch
        >>> x = torch.randn(2, 3, 4, 6)
        >>> y = pixel_unshuffle(x, (2, 3), order="hwc")
        >>> y.shape
        torch.Size([2, 18, 2, 2])
        >>> torch.equal(pixel_shuffle(y, (2, 3), order="hwc"), x)
        True
    """
    _check_array(x)
    spec, first = _resolve(x.shape, factor, order, data_format)
    return _shuffle_any(x, spec, first, True)


def order_permutation(channels: int, factor: Factor, *, src: str, dst: str) -> np.ndarray:
    """Indices ``p`` such that channel ``k`` in order ``dst`` is channel ``p[k]`` in ``src``.

    ``channels`` is the shuffled tensor's channel count ``C·∏r``.

    Example:
        >>> order_permutation(12, 2, src="hwc", dst="chw").tolist()
        [0, 3, 6, 9, 1, 4, 7, 10, 2, 5, 8, 11]
    """
    s = ShuffleSpec.make(factor, src)
    d = ShuffleSpec.make(factor, dst)
    if s.factors != d.factors:
        raise ValueError(
            f"src order {src!r} and dst order {dst!r} have different spatial axes "
            f"for factor {factor!r}"
        )
    if channels % s.block:
        raise ValueError(
            f"channels not divisible: {channels} channels, factor {s.factors}, orders "
            f"{s.order!r} -> {d.order!r}; need a multiple of {s.block}"
        )
    idx = np.arange(channels).reshape((channels,) + (1,) * s.ndim)
    block = pixel_shuffle(idx, s.factors, order=s.order)
    return pixel_unshuffle(block, d.factors, order=d.order).reshape(channels)


@overload
def convert_order(
    t: torch.Tensor, factor: Factor, *, src: str, dst: str, dim: int = ...
) -> torch.Tensor: ...
@overload
def convert_order(
    t: np.ndarray, factor: Factor, *, src: str, dst: str, dim: int = ...
) -> np.ndarray: ...
def convert_order(
    t: torch.Tensor | np.ndarray, factor: Factor, *, src: str, dst: str, dim: int = 0
) -> torch.Tensor | np.ndarray:
    """Permute axis ``dim`` of ``t`` so shuffling in ``dst`` gives what ``src`` gave before.

    Use it on a convolution's weight (``dim=0``, output channels), its bias, or on
    activations (``dim`` = the channel axis) to move trained weights between frameworks.

    Example:
        >>> import torch
        >>> conv = torch.nn.Conv2d(8, 3 * 4, 3, padding=1)      # trained for TensorFlow order
        >>> x = torch.randn(1, 8, 5, 5)
        >>> tf_out = pixel_shuffle(conv(x), 2, order="tensorflow")
        >>> with torch.no_grad():
        ...     _ = conv.weight.copy_(convert_order(conv.weight, 2, src="hwc", dst="chw"))
        ...     _ = conv.bias.copy_(convert_order(conv.bias, 2, src="hwc", dst="chw"))
        >>> torch.allclose(torch.nn.functional.pixel_shuffle(conv(x), 2), tf_out, atol=1e-6)
        True
    """
    _check_array(t)
    if not -t.ndim <= dim < t.ndim:
        raise ValueError(f"dim {dim} out of range for shape {tuple(t.shape)}")
    perm = order_permutation(int(t.shape[dim]), factor, src=src, dst=dst)
    if isinstance(t, torch.Tensor):
        return t.index_select(dim, torch.as_tensor(perm, device=t.device))
    return np.take(t, perm, axis=dim)
