"""The fixed person-level split of a face folder (Labeled Faces in the Wild naming).

Face files are named ``Person_Name_NNNN.ext`` (LFW's convention); the *person* is the stem
without its trailing ``_NNNN``. A face model must be scored on people it never saw, so the
split is by person, never by file, and depends on nothing but the names:

1. ``bucket(person) = int(sha256(person.encode("utf-8")).hexdigest(), 16) % 100``;
2. a person is **held out** when ``bucket < 10`` (about one person in ten) *and* the folder
   holds at most :data:`MAX_HELDOUT_IMAGES` (20) images of them; every other person is a
   **training** person. The cap keeps the held-out set from being dominated by a few very
   frequent people: in the full LFW George_W_Bush alone has 530 images (Colin_Powell 236,
   Tony_Blair 144, ...); such people always train, whatever their bucket. The shared
   ``faces/lfw`` subset holds at most 14 images of anyone, so there the cap removes nobody.

On the shared ``faces/lfw`` folder (7,701 files, 4,281 people) this holds out **856 images of
454 people** (at most 12 images of one person) and trains on 6,845 images of 3,827 people
(:data:`LFW_COUNTS`; checked by the tests when ``SUBPIXEL_DATA`` is set). Files whose name
does not end in ``_NNNN`` are each taken as a person of their own name. The rule is called
``"lfw"`` (:data:`SPLIT_RULES`) in :class:`.faces_training.FacesConfig` and on the
command line (``subpixel train ... --split lfw``).

Example:
    >>> person_of("George_W_Bush_0001.jpg")
    'George_W_Bush'
    >>> bucket("George_W_Bush"), is_heldout_person("George_W_Bush", images=530)
    (49, False)
    >>> names = [f"Person_{i}_0001.jpg" for i in range(200)]
    >>> train, held = split_names(names)
    >>> len(train) + len(held), len(held)
    (200, 15)
    >>> set(map(person_of, train)) & set(map(person_of, held))
    set()
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TypeVar

from subpixel.data import find_images

__all__ = [
    "HELDOUT_BUCKETS",
    "LFW_COUNTS",
    "MAX_HELDOUT_IMAGES",
    "SPLIT_RULES",
    "bucket",
    "describe_rule",
    "face_split",
    "is_heldout_person",
    "person_of",
    "split_names",
]

#: Names of the split rules (only one so far).
SPLIT_RULES = ("lfw",)
#: A person is held out when ``bucket(person) < HELDOUT_BUCKETS`` (of 100).
HELDOUT_BUCKETS = 10
#: People with more images than this in the folder always train.
MAX_HELDOUT_IMAGES = 20
#: What the rule gives on the shared ``faces/lfw`` folder.
LFW_COUNTS = {
    "files": 7701,
    "people": 4281,
    "train_images": 6845,
    "train_people": 3827,
    "heldout_images": 856,
    "heldout_people": 454,
    "heldout_max_per_person": 12,
}

_NUMBERED = re.compile(r"^(?P<person>.+)_\d+$")
P = TypeVar("P", str, Path)


def person_of(name: str | os.PathLike[str]) -> str:
    """The person of a file: its stem without the trailing ``_NNNN``.

    Example:
        >>> person_of("/x/lfw/Aaron_Eckhart_0001.jpg"), person_of("selfie.png")
        ('Aaron_Eckhart', 'selfie')
    """
    stem = Path(name).stem
    m = _NUMBERED.match(stem)
    return m.group("person") if m else stem


def bucket(person: str) -> int:
    """``int(sha256(person.encode("utf-8")).hexdigest(), 16) % 100``.

    Example:
        >>> bucket("Aaron_Eckhart")
        62
    """
    return int(hashlib.sha256(person.encode("utf-8")).hexdigest(), 16) % 100


def is_heldout_person(person: str, *, images: int) -> bool:
    """Whether ``person``, with ``images`` files in the folder, is held out (module rule)."""
    return bucket(person) < HELDOUT_BUCKETS and images <= MAX_HELDOUT_IMAGES


def split_names(names: Sequence[P]) -> tuple[list[P], list[P]]:
    """``(train, heldout)``: ``names`` (paths or file names) split by the module's rule.

    Order is kept within each part; every name lands in exactly one part.
    """
    counts = Counter(person_of(n) for n in names)
    held = {p for p, n in counts.items() if is_heldout_person(p, images=n)}
    train = [n for n in names if person_of(n) not in held]
    heldout = [n for n in names if person_of(n) in held]
    return train, heldout


def face_split(
    folders: Iterable[str | os.PathLike[str]], rule: str = "lfw"
) -> tuple[list[Path], list[Path]]:
    """``(train_paths, heldout_paths)`` of every image under ``folders`` (sorted, recursive).

    Args:
        folders: image folders or files, as :func:`subpixel.data.find_images` takes them.
        rule: the split rule; only ``"lfw"`` (this module's) exists.

    Raises:
        ValueError: an unknown rule, no image found, or a part left empty.
    """
    if rule not in SPLIT_RULES:
        raise ValueError(f"unknown split rule {rule!r}; choose from {SPLIT_RULES}")
    paths = find_images(folders)
    train, heldout = split_names(paths)
    if not train or not heldout:
        part = "training" if not train else "held-out"
        raise ValueError(
            f"the {rule!r} person split of {len(paths)} image(s) leaves no {part} image "
            "(too few people: the split needs files named Person_Name_NNNN of many people)"
        )
    return train, heldout


def describe_rule(rule: str = "lfw") -> str:
    """One line stating the rule, for model cards and ``result.json``."""
    if rule not in SPLIT_RULES:
        raise ValueError(f"unknown split rule {rule!r}; choose from {SPLIT_RULES}")
    return (
        "person = file stem without its trailing _NNNN; held out when "
        f"int(sha256(person).hexdigest(), 16) % 100 < {HELDOUT_BUCKETS} and the folder holds "
        f"at most {MAX_HELDOUT_IMAGES} images of that person (more frequent people always "
        "train); no person is in both parts"
    )
