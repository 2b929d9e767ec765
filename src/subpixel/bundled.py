"""The weights that ship with subpixel, by name: one table and one lookup.

Every place that accepts weights (``subpixel.upscale(img, weights=...)``, ``get_model``,
``subpixel upscale/eval/export --weights``, the Keras models) takes either a path or one of
these names (case-insensitive). ``"DEFAULT"`` is an alias decided here and only here.

Each bundle is a family of ``.safetensors`` files in ``subpixel/weights/`` named
``{name}_x{scale}.safetensors``, each with its model card beside it (``.md``) and inside it
(metadata): the command that trained it and its evaluation table.

Example:
    >>> from subpixel.bundled import find, weights_path
    >>> find("default") is find(DEFAULT)
    True
    >>> weights_path("espcn", 3).name
    'espcn_x3.safetensors'
    >>> find("model.safetensors") is None
    True
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from subpixel.serialization import WeightsError

__all__ = ["BUNDLES", "DEFAULT", "Bundle", "describe", "find", "names", "weights_path"]


@dataclass(frozen=True)
class Bundle:
    """A named family of bundled weights.

    Attributes:
        name: what users type (``weights="espcn"``).
        scales: the factors that ship.
        default_scale: the factor used when none is given.
        summary: one line for ``--help`` and error messages: what it is, when to pick it.
    """

    name: str
    scales: tuple[int, ...]
    default_scale: int
    summary: str

    def path(self, scale: int) -> Path:
        """The file for ``scale`` (whether or not it ships)."""
        root = resources.files("subpixel") / "weights" / f"{self.name}_x{scale}.safetensors"
        return Path(str(root))


BUNDLES: dict[str, Bundle] = {
    b.name: b
    for b in (
        Bundle(
            "espcn",
            (2, 3, 4),
            3,
            "ESPCN (Shi et al. 2016; 3 layers, ReLU, bicubic residual) trained on T91 + "
            "BSDS200: the 2016 baseline",
        ),
        Bundle(
            "fast",
            (2, 3, 4),
            3,
            "the real-time family's fast tier: 9 plain 3×3 convolutions of 16 channels (trained "
            "re-parameterised, RepSR M8C16), ReLU, bicubic residual; clean images, renders, "
            "screenshots",
        ),
        Bundle(
            "photo",
            (2, 3, 4),
            3,
            "the fast architecture trained on web-JPEG inputs (subpixel.degrade.JPEG: JPEG "
            "30-95, light noise, mostly bicubic downscaling; 30-50 % clean): camera and web "
            "photos; it does not sharpen JPEG blocks and noise",
        ),
        Bundle(
            "faces",
            (4,),
            4,
            "×4 RGB face model (9 plain 3×3 convolutions of 32 channels, trained as RepSR M8C32 "
            "on LFW people, split by person): a roughly centred face crop, 32×32 -> 128×128; "
            "not for other content",
        ),
    )
}

#: What ``weights="DEFAULT"`` means: the best model that keeps >= 2x OpenCV ESPCN's speed.
DEFAULT = "fast"


def names() -> tuple[str, ...]:
    """The accepted names: ``"DEFAULT"`` then every bundle.

    Example:
        >>> names()[0]
        'DEFAULT'
    """
    return ("DEFAULT", *BUNDLES)


def find(name: object) -> Bundle | None:
    """The bundle called ``name`` (case-insensitive; ``"DEFAULT"`` included), else ``None``.

    Anything that is not such a name (a path, a module) gives ``None``.
    """
    if not isinstance(name, str):
        return None
    key = name.lower()
    if key == "default":
        key = DEFAULT
    return BUNDLES.get(key)


def weights_path(name: str, scale: int | None = None) -> Path:
    """The bundled file for ``name`` at ``scale`` (``None``: the bundle's default factor).

    Raises:
        WeightsError: ``name`` is not bundled, or not at that scale; the message lists what is.
    """
    bundle = find(name)
    if bundle is None:
        raise WeightsError(f"no bundled weights called {name!r}; bundled: {', '.join(names())}")
    scale = bundle.default_scale if scale is None else scale
    if scale not in bundle.scales:
        shipped = ", ".join(f"×{s}" for s in bundle.scales)
        raise WeightsError(f"bundled weights {bundle.name!r} ship at {shipped}, not ×{scale}")
    return bundle.path(scale)


def describe() -> str:
    """One line per name, for ``--help`` texts.

    Example:
        >>> describe().splitlines()[0].startswith("DEFAULT")
        True
    """
    lines = [f"DEFAULT = {DEFAULT}"]
    for b in BUNDLES.values():
        factors = "/".join(f"×{s}" for s in b.scales)
        lines += textwrap.wrap(f"{b.name} ({factors}): {b.summary}", 86, subsequent_indent="  ")
    return "\n".join(lines)
