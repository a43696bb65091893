"""Where each input's record goes: safe, unique, stable output names, and a safe folder to write.

Names (README "Outputs"): an input's record goes to `OUT/<stem>/`, its file stem made safe
(`fileio.safe_name`: no separators, no '.'/'..', no hidden or reserved names, no control
characters). When several inputs of one run share that name, each of them is named by stem and
extension instead (`x.jpg` -> `x-jpg`, `x.png` -> `x-png`); where that is still shared (the same
file name in two folders), a short hash of the file's absolute path follows (`x-png-1a2b3c4d`).
The names depend only on the inputs, never on their order.

Reruns: a folder whose finished record (or resume checkpoint) was made from another file name is
never given to this input; a folder holding this input's earlier record is found again, so a
rerun with fewer inputs continues where the first run wrote.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from ..errors import I2SError, OutputError
from ..fileio import is_inside, safe_name
from ..latents import load_latent
from .records import Layout, OutputPaths

__all__ = ["check_output_folder", "plan_names", "record_owner", "unique_names"]

_LEVELS = 4  # stem, stem-ext, stem-ext-hash, stem-ext-hash-N (the same file given twice)


def plan_names(sources: Sequence[Path], out: Path, layout: Layout = "folder") -> list[str]:
    """One output name per input (see the module docstring), unique within the run and never a
    folder of `out` that holds another input file's record."""
    owners: dict[str, str | None] = {}

    def owner(name: str) -> str | None:
        if name not in owners:
            owners[name] = record_owner(OutputPaths.of(layout, out, name))
        return owners[name]

    return _plan([Path(s) for s in sources], owner)


def unique_names(sources: Sequence[Path]) -> list[str]:
    """The names `plan_names` gives when no earlier records exist: safe, unique, independent of
    the order (for runs that lay out their own folders, e.g. the experiments)."""
    return _plan([Path(s) for s in sources], lambda name: None)


def _plan(sources: list[Path], owner: Callable[[str], str | None]) -> list[str]:
    candidates = [_candidates(src) for src in sources]
    levels = [0] * len(sources)
    for i, src in enumerate(sources):  # this input's earlier folder, if a record names it
        for level in range(_LEVELS - 1):
            if owner(candidates[i][level]) == src.name:
                levels[i] = level
                break
    while True:
        names = _names(candidates, levels)
        counts = Counter(names)
        changed = False
        for i, src in enumerate(sources):
            if levels[i] == _LEVELS - 1:
                continue
            taken = owner(names[i]) not in (None, src.name)  # another file's record is there
            if counts[names[i]] > 1 or taken:
                levels[i] += 1
                changed = True
        if not changed:
            return names


def _candidates(src: Path) -> list[str]:
    stem = safe_name(src.stem)
    ext = safe_name(src.suffix.lstrip("."), default="")
    with_ext = f"{stem}-{ext}" if ext else stem
    digest = hashlib.sha256(os.fsencode(os.path.abspath(src))).hexdigest()[:8]
    return [stem, with_ext, f"{with_ext}-{digest}"]


def _names(candidates: list[list[str]], levels: list[int]) -> list[str]:
    """The names at each input's level; the last level numbers repeats in input order."""
    names: list[str] = []
    repeats: Counter[str] = Counter()
    for cands, level in zip(candidates, levels, strict=True):
        if level < _LEVELS - 1:
            names.append(cands[level])
        else:
            repeats[cands[-1]] += 1
            k = repeats[cands[-1]]
            names.append(cands[-1] if k == 1 else f"{cands[-1]}-{k}")
    return names


def record_owner(paths: OutputPaths) -> str | None:
    """The input file name an existing record (latent file, else resume checkpoint) was made
    from; None where there is none or it does not say."""
    try:
        if paths.latent.is_file():
            image = load_latent(paths.latent).metadata.get("image")
            return image if isinstance(image, str) else None
        if paths.checkpoint.is_file():
            ckpt = torch.load(paths.checkpoint, map_location="cpu", weights_only=True)
            image = ckpt.get("image") if isinstance(ckpt, dict) else None
            return image if isinstance(image, str) else None
    except (I2SError, OSError, RuntimeError, ValueError, EOFError):  # unreadable: says nothing
        return None
    return None


def check_output_folder(folder: Path, root: Path | None, hidden: Sequence[Path] = ()) -> None:
    """Make `folder` (an image's output folder, or the run folder of flat records) ready to write,
    or raise one `OutputError` line: it must be a real folder (not a file, not a symbolic link)
    inside `root` (the run's --out), and its hidden working folders (`hidden`) no links either."""
    if folder.is_symlink():
        raise OutputError(
            f"{folder}: is a symbolic link; outputs are never written through links "
            "(remove it or choose another --out)"
        )
    if root is not None and Path(folder) != Path(root) and not is_inside(folder, root):
        raise OutputError(f"{folder}: lies outside the output folder {root}; refused")
    if folder.exists() and not folder.is_dir():
        raise OutputError(
            f"{folder}: exists and is not a folder (move it away or choose another --out)"
        )
    for path in hidden:
        if path.is_symlink():
            raise OutputError(f"{path}: is a symbolic link; remove it to write this record")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"{folder}: cannot create the folder ({e.strerror or e})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{folder}: cannot write into the folder (permission denied)")
