"""The images of an experiment: files with a unique name and one of the paper's categories.

Categories (Sec. 3.1: face, cat, dog, car, painting) come from file-name prefixes (`face_01.jpg`,
`cats-3.png`) or folder names (`dogs/x.jpg`); tables list them in the paper's order (Fig. 17).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from .paper_numbers import CATEGORY_ORDER

__all__ = [
    "NON_FACE_CATEGORIES",
    "ImageItem",
    "category_of",
    "category_rank",
    "collect_items",
    "faces_or_all",
    "sort_items",
]

# Sec. 3.1: only the face images are aligned ("We use the code provided by StyleGAN to
# preprocess the face images"); images of these categories are only fitted to the frame.
NON_FACE_CATEGORIES = frozenset({"cat", "dog", "car", "painting"})

# File-name prefixes / folder names -> the paper's five categories (Sec. 3.1).
_CATEGORY_ALIASES = {
    "face": "face",
    "faces": "face",
    "human": "face",
    "humans": "face",
    "person": "face",
    "people": "face",
    "portrait": "face",
    "cat": "cat",
    "cats": "cat",
    "dog": "dog",
    "dogs": "dog",
    "car": "car",
    "cars": "car",
    "painting": "painting",
    "paintings": "painting",
    "art": "painting",
}


@dataclass(frozen=True)
class ImageItem:
    """One image of an experiment: its file, a unique name and its category."""

    path: Path  # the image file
    name: str  # unique within the experiment (output folders are named by it)
    category: str  # "face", "cat", "dog", "car", "painting" or another word (see category_of)


def category_of(path: str | Path) -> str:
    """The image's category: its file-name prefix if that names one of the paper's categories
    (`face_01.jpg`, `cats-3.png`), else its folder's name if that does (`dogs/x.jpg`), else the
    file-name prefix as it is, else "other". Plurals and a few synonyms map to the paper's five
    (face, cat, dog, car, painting)."""
    path = Path(path)
    match = re.match(r"[A-Za-z]+", path.stem)
    prefix = match.group(0).lower() if match else ""
    if prefix in _CATEGORY_ALIASES:
        return _CATEGORY_ALIASES[prefix]
    folder = path.parent.name.lower()
    if folder in _CATEGORY_ALIASES:
        return _CATEGORY_ALIASES[folder]
    return prefix or "other"


def collect_items(paths: Iterable[str | Path]) -> list[ImageItem]:
    """ImageItems for image files in the given order; names are the file stems made safe and
    unique as the embed runner makes them (`photo`; `x-jpg`, `x-png` for a shared stem)."""
    from ..embed.folders import unique_names

    files = [Path(p) for p in paths]
    return [
        ImageItem(p, name, category_of(p))
        for p, name in zip(files, unique_names(files), strict=True)
    ]


def category_rank(category: str) -> tuple[int, str]:
    """Sort key: the paper's category order (Fig. 17), then other categories alphabetically."""
    if category in CATEGORY_ORDER:
        return (CATEGORY_ORDER.index(category), "")
    return (len(CATEGORY_ORDER), category)


class _Categorised(Protocol):
    @property
    def category(self) -> str: ...

    @property
    def name(self) -> str: ...


T = TypeVar("T", bound=_Categorised)


def sort_items(items: Iterable[T]) -> list[T]:
    """Items (anything with `.category` and `.name`) grouped by category in the paper's order."""
    return sorted(items, key=lambda it: (category_rank(it.category), it.name))


def faces_or_all(items: Sequence[ImageItem], all_images: bool) -> tuple[list[ImageItem], str]:
    """The face images (or all when asked or when there are none) and a note saying which."""
    if all_images:
        return list(items), "All images are used (all_images=true)."
    faces = [it for it in items if it.category == "face"]
    if faces:
        return faces, f"{len(faces)} face image(s) used (the paper uses faces)."
    return list(items), "No face images (file names face_*) given: all images are used instead."
