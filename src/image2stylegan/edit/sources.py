"""Which generator a latent file was made with, as its metadata records it.

The editing commands and the web UI's edit tabs render latents with the generator they were
embedded with unless told otherwise; `common_generator` finds it for a set of latents.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..checkpoints.registry import is_registry_name
from ..latents import LatentFile

__all__ = ["common_generator", "recorded_generator", "tuned_generator"]


def recorded_generator(latent: LatentFile) -> str | None:
    """The generator `latent` records (registry name, random: source or checkpoint path), or
    None. A relative path recorded from another working directory is looked up beside the file.

    A pivotally tuned latent (`embed --pti-steps`) records its tuned generator under "pti"
    (a path relative to the latent file, and its sha256): that one renders it. Raises
    `ValueError` when that file is missing or is not the one recorded (changed since)."""
    tuned = tuned_generator(latent)
    if tuned is not None:
        return tuned
    g = latent.metadata.get("generator")
    if isinstance(g, dict):  # tolerate {"name": ...} / {"path": ...} records
        g = g.get("name") or g.get("path") or g.get("source")
    if not isinstance(g, str) or not g:
        return None
    if is_registry_name(g) or Path(g).exists() or latent.path is None:
        return g
    beside = latent.path.parent / g
    return str(beside) if beside.exists() else g


def tuned_generator(latent: LatentFile) -> str | None:
    """The pivotally tuned generator `latent` records (checked against its sha256), or None."""
    pti = latent.metadata.get("pti")
    if not isinstance(pti, dict) or not isinstance(pti.get("generator"), str):
        return None
    name = latent.path or "the latent"
    rel = Path(pti["generator"])
    path = rel if rel.is_absolute() or latent.path is None else latent.path.parent / rel
    if not path.is_file():
        raise ValueError(
            f"{name} was pivotally tuned: it renders with {path}, which is missing (keep the "
            "tuned generator beside the latent file, or pass --generator)"
        )
    expected = pti.get("generator_sha256")
    if isinstance(expected, str) and expected:
        from ..fileio import sha256_file

        actual = sha256_file(path)
        if actual != expected:
            raise ValueError(
                f"{name} was tuned with another {path} (sha256 {expected[:12]}..., the file has "
                f"{actual[:12]}...); pass --generator to render with this one anyway"
            )
    return str(path)


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
