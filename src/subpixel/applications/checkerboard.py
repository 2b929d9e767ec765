r"""The checkerboard score: how much of an image's energy sits at the upsampler's period.

An upsampler with factor ``r`` (a transposed convolution of stride ``r``, or a convolution
followed by a shuffle of factor ``r``) computes each of the ``r×r`` output phases with its own
kernel. When those kernels disagree the output carries a pattern of period ``r``: the
checkerboard artefact. In the 2-D DFT of an ``H×W`` image such a pattern lives exactly at the
**periodic frequencies** ``(m·H/r, n·W/r)`` with ``0 ≤ m, n < r``.

Definition (per 2-D image ``x``, ``H`` and ``W`` multiples of ``r``):

.. math::

    \mathrm{score}(x) = \frac{\sum_{(m,n) \ne (0,0)} |X(mH/r,\, nW/r)|^2}
                             {\sum_{(k,l) \ne (0,0)} |X(k, l)|^2}

where ``X = fft2(x)`` (unnormalised DFT, circular). The DC term is left out of both sums, so
the score does not depend on the image's mean (it equals the same ratio for ``x - mean(x)``);
a constant image has no energy outside DC and scores ``0``. The score lies in ``[0, 1]``: ``1``
for a pure period-``r`` pattern such as ``(-1)^(y+x)`` with ``r = 2``, ``(r²-1)/(HW-1)`` on
average for white noise. For a set of images (and channels) the energies are summed before
dividing (an energy-weighted mean, so nearly blank images do not dominate).

**Block-constant images score exactly 0.** Nearest-neighbour upsampling by ``r`` (which is
what an ICNR-initialised sub-pixel convolution computes) is a zero-stuffed image, whose
spectrum is periodic, convolved with an ``r×r`` box, whose DFT along each axis
``Σ_{t<r} e^{-2πikt/H}`` vanishes at ``k = mH/r`` for ``m = 1…r-1``. Every periodic frequency
but DC has ``m ≠ 0`` or ``n ≠ 0`` and is multiplied by such a zero. (Nearest upsampling does
leave energy at *other* frequencies, the sinc-like side lobes; those are not counted.)

Computation: the periodic DFT bins are the ``r×r`` DFT of the phase sums
``S[i, j] = Σ_{y≡i, x≡j (mod r)} x[y, x]``, so by Parseval's theorem

.. math::

    \mathrm{score}(x) = \frac{r_h r_w \sum_{i,j} (S_{ij} - \bar S)^2}
                             {H W \sum_{y,x} (x_{yx} - \bar x)^2}

which is what :func:`checkerboard_energy` evaluates in float64 (no FFT; the tests check it
against ``numpy.fft.fft2``). In words: the score is the spread of the ``r²`` phase
sub-images' means, the very offset pattern that makes a checkerboard.

Example:
    >>> import torch
    >>> blocks = torch.rand(4, 1, 7, 7).repeat_interleave(2, -1).repeat_interleave(2, -2)
    >>> checkerboard_score(blocks, 2)          # nearest-neighbour upsampled: exactly 0
    0.0
    >>> y, x = torch.meshgrid(torch.arange(8), torch.arange(8), indexing="ij")
    >>> checkerboard_score(((-1.0) ** (y + x)), 2)
    1.0
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["checkerboard_energy", "checkerboard_score"]


def _factors(factor: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(factor, bool):
        raise TypeError(f"factor must be an int or a pair of ints, got {factor!r}")
    if isinstance(factor, int):
        pair: tuple[int, ...] = (factor, factor)
    else:
        pair = tuple(factor)
    if len(pair) != 2 or not all(isinstance(f, int) and not isinstance(f, bool) for f in pair):
        raise TypeError(f"factor must be an int or a pair of ints, got {factor!r}")
    if any(f < 1 for f in pair):
        raise ValueError(f"factor must be >= 1, got {factor!r}")
    return pair[0], pair[1]


def checkerboard_energy(
    x: torch.Tensor, factor: int | Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Periodic and total non-DC DFT energy of every 2-D image in ``x``.

    Args:
        x: a real tensor ``(*, H, W)``; each trailing ``H×W`` plane is one image.
        factor: the upsampling factor ``r`` or ``(r_h, r_w)``; ``H`` and ``W`` must be
            multiples of it.

    Returns:
        ``(periodic, total)``, float64 tensors of shape ``(*)``:
        ``Σ_{(m,n)≠0} |X(m·H/r_h, n·W/r_w)|²`` and ``Σ_{(k,l)≠0} |X(k,l)|²`` with
        ``X = fft2(x)``.

    Raises:
        TypeError: ``x`` is not a real tensor or ``factor`` is not an int / pair of ints.
        ValueError: fewer than 2 dimensions, or ``H``/``W`` not multiples of the factor.

    Example:
        >>> import torch
        >>> p, t = checkerboard_energy(torch.tensor([[1.0, 0.0], [0.0, 0.0]]), 2)
        >>> float(p), float(t)     # fft2 = all ones; 3 non-DC bins, all periodic
        (3.0, 3.0)
    """
    if not isinstance(x, torch.Tensor) or x.is_complex():
        raise TypeError(f"x must be a real torch.Tensor, got {type(x).__name__}")
    rh, rw = _factors(factor)
    if x.ndim < 2:
        raise ValueError(f"x must be (*, H, W), got shape {tuple(x.shape)}")
    h, w = x.shape[-2], x.shape[-1]
    if h % rh or w % rw:
        raise ValueError(
            f"image size {h}×{w} is not a multiple of the factor ({rh}, {rw}); "
            "crop the images first"
        )
    v = x.detach().to(torch.float64)
    centred = v - v.mean(dim=(-2, -1), keepdim=True)
    total = (h * w) * centred.square().sum(dim=(-2, -1))
    phases = v.reshape(*v.shape[:-2], h // rh, rh, w // rw, rw).sum(dim=(-4, -2))
    spread = phases - phases.mean(dim=(-2, -1), keepdim=True)
    periodic = (rh * rw) * spread.square().sum(dim=(-2, -1))
    return periodic, total


def checkerboard_score(x: torch.Tensor, factor: int | Sequence[int]) -> float:
    """The checkerboard score of a set of images (see the module docstring).

    Energies are summed over all leading dimensions (images, channels) before the ratio is
    taken; an input without any non-DC energy (all images constant) scores ``0.0``.

    Args:
        x: a real tensor ``(*, H, W)``: one image, ``(C, H, W)``, ``(N, C, H, W)``, ...
        factor: the upsampling factor ``r`` or ``(r_h, r_w)``.

    Returns:
        A float in ``[0, 1]``.

    Example:
        >>> import torch
        >>> noise = torch.randn(64, 32, 32, generator=torch.Generator().manual_seed(0))
        >>> round(checkerboard_score(noise, 2), 3)     # white noise: about 3 / 1023
        0.003
    """
    periodic, total = checkerboard_energy(x, factor)
    denom = float(total.sum())
    if denom <= 0.0:
        return 0.0
    return min(1.0, float(periodic.sum()) / denom)
