"""Writing generators for other code: rosinality `.pt` files, and delta files against a base.

rosinality/stylegan2-pytorch (and e4e / pSp, which load its files the same way) reads
`torch.load(f)["g_ema"]` into `Generator(size, style_dim, n_mlp, channel_multiplier)` and
`["latent_avg"]` as the mean w. `rosinality_state` is our reader's name table
(`rosinality.rosinality_rules`) run backwards: each of our tensors reshaped to the stored shape
its rule's `Layout.source_shape` names, plus the buffers rosinality's modules hold and we do not
(the [1, 3, 3, 1] blur / upsample kernels, times the upsampling gain 4). Only generators that
network can represent are written: StyleGAN2 'skip', lrelu, [1, 3, 3, 1] filter, mapping lr
multiplier 0.01, z_dim == w_dim, RGB, unconditional, no clamp, channels min(base / r, max).

A delta file holds only the tensors of a (fine-tuned) generator that differ from a base
checkpoint's, each stored whole (not as a difference: applying it is exact), in a
`.safetensors` file whose header metadata (all strings) is:
  format = "image2stylegan-delta", format_version = "1",
  architecture, config = the generator's (equal to the base's: checked on both ends),
  source = the tuned generator's own `source` record (JSON),
  base = JSON {"name": registry name / random: source as given, else the file's name,
               "path": a base file's path relative to the delta's folder (else null),
               "sha256": the base file's sha256 (null for random: sources),
               "tensors_sha256": `tensors_sha256` of the base's state}.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ..errors import CheckpointError, short_repr
from ..fileio import atomic_path, sha256_file
from ..models.base import Generator
from ..models.stylegan2 import StyleGAN2Config, StyleGAN2Generator, setup_filter
from .rosinality import config_from_rosinality, rosinality_rules

__all__ = [
    "DELTA_FORMAT",
    "BaseRecord",
    "DeltaHeader",
    "apply_delta",
    "base_record",
    "changed_tensors",
    "check_rosinality_exportable",
    "is_delta_file",
    "load_delta",
    "read_delta_header",
    "rosinality_arguments",
    "rosinality_state",
    "save_delta",
    "save_rosinality",
    "tensors_sha256",
]

DELTA_FORMAT = "image2stylegan-delta"
DELTA_VERSION = "1"
# rosinality's state-dict order: top-level modules as its Generator registers them, then the
# tensors inside each (a module's own tensors before its submodules').
_ROSINALITY_ORDER = ("style.", "input.", "conv1.", "to_rgb1.", "convs.", "to_rgbs.", "noises.")
_STYLED_CONV = ("conv.weight", "conv.blur.kernel", "conv.modulation.weight",
                "conv.modulation.bias", "noise.weight", "activate.bias")  # fmt: skip
_TO_RGB = ("bias", "upsample.kernel", "conv.weight", "conv.modulation.weight",
           "conv.modulation.bias")  # fmt: skip

# --- rosinality .pt -----------------------------------------------------------------------------


def _rosinality_problem(G: Generator) -> str | None:
    """Why rosinality's Generator cannot hold `G` (None when it can)."""
    if not isinstance(G, StyleGAN2Generator):
        return f"rosinality's Generator is StyleGAN2 only; this is a {G.architecture} generator"
    c: StyleGAN2Config = G.config
    if c.architecture != "skip":
        return f"its '{c.architecture}' architecture is not rosinality's 'skip' (config-e/f)"
    checks = [
        (c.c_dim == 0, f"it is conditional (c_dim {c.c_dim}); rosinality's is unconditional"),
        (c.z_dim == c.w_dim, f"z_dim {c.z_dim} != w_dim {c.w_dim} (rosinality: one style_dim)"),
        (
            c.mapping_layer_features in (None, c.w_dim),
            f"its mapping layers are {c.mapping_layer_features} wide, not style_dim {c.w_dim}",
        ),
        (c.img_channels == 3, f"it makes {c.img_channels}-channel images, not RGB"),
        (
            c.activation == "lrelu" and c.mapping_activation == "lrelu",
            f"activations {c.mapping_activation!r} / {c.activation!r}, not lrelu",
        ),
        (
            c.mapping_lr_multiplier == 0.01,
            f"mapping lr multiplier {c.mapping_lr_multiplier}, not rosinality's lr_mlp 0.01",
        ),
        (
            tuple(c.resample_filter) == (1, 3, 3, 1),
            f"resample filter {list(c.resample_filter)}, not [1, 3, 3, 1]",
        ),
        (c.use_noise, "it has no noise inputs"),
        (c.conv_clamp is None, f"it clamps conv outputs (conv_clamp {c.conv_clamp})"),
    ]
    return next((why for ok, why in checks if not ok), None)


def check_rosinality_exportable(G: Generator, label: str) -> None:
    """Raise `CheckpointError` (one line naming `label` and why) unless rosinality's
    `Generator(size, style_dim, n_mlp, channel_multiplier)` can represent `G`."""
    problem = _rosinality_problem(G)
    if problem:
        raise CheckpointError(f"{label}: cannot be written as a rosinality .pt: {problem}")


def _stored_shape(key: str, shape: tuple[int, ...]) -> tuple[str, tuple[int, ...]]:
    """rosinality's name and shape for our state-dict `key` (the reader's rule, inverted)."""
    for rule in rosinality_rules():
        match = re.fullmatch(rule.target, key)
        if match:
            return rule.source_name(match), tuple(rule.layout.source_shape(shape))
    raise AssertionError(f"no rosinality rule for {key!r}")  # a table bug


def _rank(name: str) -> tuple[int, int, int]:
    """Sort key putting a `g_ema` key where rosinality's `state_dict()` has it."""
    top = next(i for i, prefix in enumerate(_ROSINALITY_ORDER) if name.startswith(prefix))
    rest = name[len(_ROSINALITY_ORDER[top]) :]
    index, _, suffix = rest.partition(".") if top in (0, 4, 5) else ("0", "", rest)
    if top == 6:  # noises.noise_{i}
        index = rest.removeprefix("noise_")
    within = {2: _STYLED_CONV, 4: _STYLED_CONV, 3: _TO_RGB, 5: _TO_RGB}.get(top, ("weight",))
    return top, int(index), within.index(suffix) if suffix in within else len(within)


def rosinality_state(G: StyleGAN2Generator, label: str = "generator") -> dict[str, torch.Tensor]:
    """`G` as the `g_ema` state dict of rosinality's Generator (float32, CPU, its key order).

    Every layout in the reader's table is a reshape (no transpose, no offset), so each tensor is
    stored bit for bit. Also checks the channel table: the reader must infer the same widths.
    """
    check_rosinality_exportable(G, label)
    state: dict[str, torch.Tensor] = {}
    for key, value in G.state_dict().items():
        if key == "w_avg":
            continue  # saved beside g_ema as latent_avg
        name, shape = _stored_shape(key, tuple(value.shape))
        state[name] = value.detach().to("cpu", torch.float32).reshape(shape).clone()
    kernel = setup_filter(G.config.resample_filter) * 4  # [4, 4], with the upsampling gain
    for k in range(int(math.log2(G.img_resolution)) - 2):  # one per block above 4 px
        state[f"convs.{2 * k}.conv.blur.kernel"] = kernel.clone()
        state[f"to_rgbs.{k}.upsample.kernel"] = kernel.clone()
    sizes = _resolutions(G.img_resolution)
    try:
        inferred: StyleGAN2Config | None = config_from_rosinality(state, label)
    except CheckpointError:
        inferred = None  # the widths fit no min(base / r, max) table the reader infers
    if inferred is None or any(inferred.channels(r) != G.config.channels(r) for r in sizes):
        widths = {r: G.config.channels(r) for r in sizes}
        raise CheckpointError(
            f"{label}: cannot be written as a rosinality .pt: its channel widths {widths} are "
            "not a min(base / r, max) table the file can describe"
        )
    return dict(sorted(state.items(), key=lambda kv: _rank(kv[0])))


def _resolutions(size: int) -> list[int]:
    return [2**i for i in range(2, int(math.log2(size)) + 1)]  # 4, 8, ..., size


def rosinality_arguments(G: StyleGAN2Generator) -> dict[str, int | None]:
    """`Generator(size, style_dim, n_mlp, channel_multiplier)` for `G`; channel_multiplier is
    None when the widths are not rosinality's stock table (512 up to 32 px, then
    256 * channel_multiplier at 64 px, halving): its model.py's `self.channels` must then be
    edited to match."""
    c = G.config
    sizes = _resolutions(c.img_resolution)
    # train.py's default 2 when every width is 512 (any multiplier then gives the same table)
    multiplier = c.channels(64) // 256 if c.img_resolution >= 64 else 2
    stock = {r: 512 if r <= 32 else 16384 * multiplier // r for r in sizes}
    fits = c.img_resolution <= 1024 and multiplier >= 1  # rosinality's table stops at 1024
    fits = fits and all(c.channels(r) == stock[r] for r in sizes)
    return {
        "size": c.img_resolution,
        "style_dim": c.w_dim,
        "n_mlp": c.mapping_layers,
        "channel_multiplier": multiplier if fits else None,
    }


def save_rosinality(G: Generator, path: str | os.PathLike, label: str = "generator") -> Path:
    """Write `G` atomically as `torch.save({"g_ema": state, "latent_avg": w_avg})`, the layout
    of rosinality's convert_weight.py (its train.py saves `g_ema` the same way)."""
    check_rosinality_exportable(G, label)
    assert isinstance(G, StyleGAN2Generator)
    ckpt = {
        "g_ema": rosinality_state(G, label),
        "latent_avg": G.w_avg.detach().to("cpu", torch.float32).clone(),  # [style_dim]
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)
    return path


# --- delta files --------------------------------------------------------------------------------


def tensors_sha256(state: Mapping[str, torch.Tensor]) -> str:
    """Hex SHA-256 over a state dict: each key, dtype, shape and raw bytes, in key order."""
    digest = hashlib.sha256()
    for key, value in state.items():
        t = value.detach().to("cpu").contiguous()
        digest.update(f"{key}\0{t.dtype}\0{list(t.shape)}\0".encode())
        digest.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


@dataclass(frozen=True)
class BaseRecord:
    """What a delta file records about its base checkpoint."""

    name: str  # registry name / random: source as given, else the base file's name
    path: str | None  # a base file's path relative to the delta's folder
    sha256: str | None  # the base file's sha256 (None: a random: source, no file)
    tensors_sha256: str  # `tensors_sha256` of the base generator's state

    def describe(self) -> str:
        digest = self.sha256 or f"tensors {self.tensors_sha256}"
        return f"'{self.name}' (sha256 {digest})"


def base_record(
    source: str, file: str | os.PathLike | None, G: Generator, delta: str | os.PathLike
) -> BaseRecord:
    """The record of base `G`, named by the user as `source` and read from `file` (None for a
    `random:` source), for a delta written to `delta`."""
    from .random_generators import is_random_source
    from .registry import is_registry_name

    named = is_random_source(source) or (is_registry_name(source) and not Path(source).exists())
    path = None
    if file is not None and not named:
        target = Path(delta).absolute().parent
        path = Path(os.path.relpath(Path(file).absolute(), target)).as_posix()
    return BaseRecord(
        name=source if named else Path(source).name,
        path=path,
        sha256=None if file is None else sha256_file(file),
        tensors_sha256=tensors_sha256(G.state_dict()),
    )


def _config_json(G: Generator) -> dict[str, Any]:
    config: dict[str, Any] = json.loads(json.dumps(G.config_dict(), sort_keys=True))
    return config


def _check_same_network(G: Generator, architecture: str, config: Any, label: str) -> None:
    if G.architecture != architecture or _config_json(G) != config:
        raise CheckpointError(
            f"{label}: the base is a different network ({G.architecture} "
            f"{short_repr(_config_json(G), 200)}) from the delta's ({architecture} "
            f"{short_repr(config, 200)}); a delta applies only to the generator it was made from"
        )


def changed_tensors(tuned: Generator, base: Generator, label: str) -> dict[str, torch.Tensor]:
    """The tensors of `tuned` that differ from `base`'s (same architecture and config), whole."""
    _check_same_network(base, tuned.architecture, _config_json(tuned), label)
    theirs = base.state_dict()
    return {
        key: value.detach().to("cpu").contiguous()
        for key, value in tuned.state_dict().items()
        if value.dtype != theirs[key].dtype or not torch.equal(value, theirs[key].to(value.device))
    }


def save_delta(
    tuned: Generator,
    base: Generator,
    base_info: BaseRecord,
    path: str | os.PathLike,
    source: str,  # the tuned generator's source record (JSON text)
) -> tuple[Path, int]:
    """Write the delta of `tuned` against `base` atomically; returns (path, tensors stored)."""
    tensors = changed_tensors(tuned, base, str(path))
    metadata = {
        "format": DELTA_FORMAT,
        "format_version": DELTA_VERSION,
        "architecture": tuned.architecture,
        "config": json.dumps(tuned.config_dict(), sort_keys=True),
        "source": source,
        "base": json.dumps(base_info.__dict__, sort_keys=True),
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return path, len(tensors)


@dataclass(frozen=True)
class DeltaHeader:
    """A delta file's header metadata, parsed."""

    architecture: str
    config: dict[str, Any]
    source: str  # the tuned generator's source record (JSON text)
    base: BaseRecord


def _metadata(path: str | os.PathLike) -> dict[str, str]:
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: corrupt or truncated .safetensors file ({e})") from None


def is_delta_file(path: str | os.PathLike) -> bool:
    """Whether `path` is a .safetensors file whose header says it is a delta file."""
    return _metadata(path).get("format") == DELTA_FORMAT


def read_delta_header(path: str | os.PathLike) -> DeltaHeader:
    """The header of a delta file (`CheckpointError` if it is not one or is malformed)."""
    metadata = _metadata(path)
    if metadata.get("format") != DELTA_FORMAT:
        raise CheckpointError(f"{path}: not an image2stylegan delta file")
    if metadata.get("format_version") != DELTA_VERSION:
        raise CheckpointError(
            f"{path}: delta format version {short_repr(metadata.get('format_version'))} is not "
            f"supported (this version reads {DELTA_VERSION!r}); upgrade image2stylegan"
        )
    try:
        config = json.loads(metadata["config"])
        base = json.loads(metadata["base"])
        record = BaseRecord(
            name=str(base["name"]),
            path=None if base.get("path") is None else str(base["path"]),
            sha256=None if base.get("sha256") is None else str(base["sha256"]),
            tensors_sha256=str(base["tensors_sha256"]),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: invalid delta header ({type(e).__name__}: {e})") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: invalid delta header (config is not an object)")
    return DeltaHeader(
        architecture=metadata.get("architecture", ""),
        config=config,
        source=metadata.get("source", ""),
        base=record,
    )


def _check_base(header: DeltaHeader, base: Generator, base_file: Path | None, label: str) -> None:
    """The base must be the delta's: the same file (sha256) or the same tensors."""
    record = header.base
    if (
        base_file is not None
        and record.sha256 is not None
        and sha256_file(base_file) == record.sha256
    ):
        return
    actual = tensors_sha256(base.state_dict())
    if actual == record.tensors_sha256:
        return  # the same weights in another file (e.g. the base converted to .safetensors)
    if base_file is not None and record.sha256 is not None:
        found = f"{base_file} has sha256 {sha256_file(base_file)}"
    else:
        found = f"the given base has tensors sha256 {actual}"
    raise CheckpointError(
        f"{label}: made against base {record.describe()}, but {found}; give the base it was "
        "made from"
    )


def apply_delta(
    path: str | os.PathLike, base: Generator, base_file: str | os.PathLike | None = None
) -> Generator:
    """The generator delta file `path` describes, from `base` (read from `base_file`, if a file);
    `base` is not modified. Raises `CheckpointError` for a wrong base or a damaged delta."""
    label = str(path)
    header = read_delta_header(path)
    _check_base(header, base, None if base_file is None else Path(base_file), label)
    _check_same_network(base, header.architecture, header.config, label)
    state = {k: v.detach().clone() for k, v in base.state_dict().items()}
    try:
        with safe_open(str(path), framework="pt") as f:
            for key in f.keys():  # noqa: SIM118
                stored = f.get_tensor(key)
                if key not in state or stored.shape != state[key].shape:
                    raise CheckpointError(
                        f"{label}: tensor {short_repr(key)} {list(stored.shape)} does not fit "
                        "the base generator"
                    )
                state[key] = stored.to(state[key].dtype)
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{label}: corrupt or truncated .safetensors file ({e})") from None
    G = copy.deepcopy(base)
    G.load_state_dict(state, strict=True)
    return G


def _apply_hint(path: str | os.PathLike) -> str:
    return f"apply it with `image2stylegan convert {path} --base BASE --out G.safetensors`"


def _find_base(path: Path, record: BaseRecord) -> tuple[str | Path, Path | None]:
    """(source for `load_generator`, base file or None) of a delta's base, from its header."""
    from .random_generators import is_random_source
    from .registry import is_registry_name, resolve_weights

    if is_random_source(record.name):
        return record.name, None
    if is_registry_name(record.name) and record.path is None:
        file = resolve_weights(record.name, kind="generator")
        return file, file
    candidates = [path.parent / p for p in dict.fromkeys((record.path, record.name)) if p]
    for candidate in candidates:
        if candidate.is_file():
            digest = sha256_file(candidate)
            if digest == record.sha256:
                return candidate, candidate
            raise CheckpointError(
                f"{path}: a delta file made against base {record.describe()}, but {candidate} "
                f"has sha256 {digest}; {_apply_hint(path)}"
            )
    where = candidates[0] if candidates else record.name
    raise CheckpointError(
        f"{path}: a delta file; its base {record.describe()} is not at {where}; {_apply_hint(path)}"
    )


def load_delta(path: str | os.PathLike) -> Generator:
    """A delta file applied to the base its header names (a registry name, a `random:` source,
    or the recorded file if it is still there with the recorded sha256)."""
    from .loader import load_generator

    path = Path(path)
    header = read_delta_header(path)
    source, file = _find_base(path, header.base)
    base = load_generator(source)
    return apply_delta(path, base, file)
