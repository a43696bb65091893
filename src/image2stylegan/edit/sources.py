"""Which generator a latent file was made with, as its metadata records it.

The editing commands and the web UI's edit tabs render latents with the generator they were
embedded with unless told otherwise; `common_generator` finds it for a set of latents.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..checkpoints.registry import is_registry_name
from ..latents import LatentFile

__all__ = ["common_generator", "recorded_generator"]


def recorded_generator(latent: LatentFile) -> str | None:
    """The generator `latent` records (registry name, random: source or checkpoint path), or
    None. A relative path recorded from another working directory is looked up beside the file."""
    g = latent.metadata.get("generator")
    if isinstance(g, dict):  # tolerate {"name": ...} / {"path": ...} records
        g = g.get("name") or g.get("path") or g.get("source")
    if not isinstance(g, str) or not g:
        return None
    if is_registry_name(g) or Path(g).exists() or latent.path is None:
        return g
    beside = latent.path.parent / g
    return str(beside) if beside.exists() else g


def _same(source: str) -> str:
    p = Path(source)
    return str(p.resolve()) if p.exists() else source


def common_generator(latents: Sequence[LatentFile]) -> str:
    """The one generator all `latents` record. Raises `ValueError` naming the latent that
    records none, or the different generators recorded."""
    recorded = [(lat, recorded_generator(lat)) for lat in latents]
    for lat, g in recorded:
        if g is None:
            name = lat.path if lat.path is not None else "a latent"
            raise ValueError(f"{name} records no generator in its metadata")
    names = [g for _, g in recorded if g is not None]
    if len({_same(g) for g in names}) > 1:
        pairs = "; ".join(f"{lat.path or 'latent'}: {g}" for lat, g in recorded)
        raise ValueError(f"the latent files were made with different generators ({pairs})")
    if not names:
        raise ValueError("no latent files given")
    return names[0]
