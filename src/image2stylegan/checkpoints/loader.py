"""`load_generator`: detect a checkpoint's format from its bytes and hand it to its reader.

Formats (SPEC section 2): StyleGAN1 / StyleGAN2 TF pickles, stylegan2-ada-pytorch pickles,
NVlabs/stylegan3 alias-free snapshots,
rosinality `.pt`, lernapparat's converted StyleGAN1 state dict, our `.safetensors` (a generator,
or a delta file against a base it names: checkpoints/export.py). Detection
never trusts the file name. Every failure is one `CheckpointError` line naming the file.
"""

from __future__ import annotations

import argparse
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from ..models.base import Generator
from .safe_pickle import (
    PersistentObjectStub,
    RefusedGlobalError,
    TFNetworkStub,
    inspect_refused_pickle,
    safe_pickle_load,
    weights_only_refusal,
)

__all__ = ["detect_format", "load_generator", "read_generator_file"]

# The first bytes of the legacy (pre-1.6, non-zip) torch.save stream: a pickled magic number.
_TORCH_LEGACY_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"

# Files users mistake for checkpoints (a wrong download, a renamed image): named in the error.
_OTHER_FILES = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\x1f\x8b", "a gzip archive (unpack it first)"),
)


def detect_format(path: str | os.PathLike) -> str:
    """Classify a file by content: 'safetensors' | 'torch' | 'pickle' | 'hdf5'.

    Raises `CheckpointError` for missing/empty files, HTML pages (a download service's quota or
    login page saved in place of the checkpoint) and unknown content.
    """
    path = Path(path)
    try:
        if path.exists() and not path.is_dir() and not path.is_file():
            raise CheckpointError(f"{path}: not a regular file (a device, pipe or socket)")
        with open(path, "rb") as f:
            head = f.read(4096)
        size = path.stat().st_size
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CheckpointError(f"{path}: is a folder, not a checkpoint file") from None
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read the file ({e.strerror or e})") from None
    if size == 0:
        raise CheckpointError(f"{path}: the file is empty (0 bytes); download it again")
    stripped = head.lstrip().lower()
    if (
        stripped.startswith((b"<!doctype html", b"<html", b"<head", b"<?xml"))
        or b"<html" in stripped[:512]
    ):
        raise CheckpointError(
            f"{path}: is an HTML page, not a checkpoint: the download service returned a web page "
            "(often a 'quota exceeded' or sign-in page); delete it and use another address"
        )
    if head.startswith(b"PK\x03\x04"):
        return "torch"
    if head.startswith(_TORCH_LEGACY_MAGIC):
        return "torch"
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "hdf5"
    if len(head) >= 9:
        header_len = int.from_bytes(head[:8], "little")
        if 0 < header_len < size and head[8:9] == b"{":
            return "safetensors"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "pickle"
    for magic, what in _OTHER_FILES:
        if head.startswith(magic):
            raise CheckpointError(f"{path}: is {what}, not a generator checkpoint")
    raise CheckpointError(
        f"{path}: unknown file format (not a StyleGAN pickle, a PyTorch checkpoint or a "
        f".safetensors file); first bytes: {head[:16]!r}"
    )


class _NamespaceStub(argparse.Namespace):
    """Training `args` saved in rosinality checkpoints, as plain data."""


def _torch_load(path: Path) -> Any:
    """`torch.load(weights_only=True)`: torch's own restricted unpickler (tensors and containers),
    plus an inert stand-in for the `argparse.Namespace` that training scripts save beside."""
    with open(path, "rb") as f:
        is_zip = f.read(4) == b"PK\x03\x04"
    if is_zip and not zipfile.is_zipfile(path):  # no end-of-archive record: cut short
        raise CheckpointError(
            f"{path}: the PyTorch file ends early or is damaged (incomplete zip archive; "
            "truncated download?)"
        )
    try:
        # An open file, not the path: torch.load picks a reader from a path's suffix
        # (".safetensors"), and the format must come from the content.
        with (
            open(path, "rb") as f,
            torch.serialization.safe_globals([(_NamespaceStub, "argparse.Namespace")]),
        ):
            return torch.load(f, map_location="cpu", weights_only=True)
    except EOFError:
        raise CheckpointError(f"{path}: the file ends early (truncated download?)") from None
    except pickle.UnpicklingError as e:
        if "truncated" in str(e):
            raise CheckpointError(f"{path}: the file ends early (truncated download?)") from None
        raise CheckpointError(
            f"{path}: refused to load: the PyTorch file holds objects other than tensors "
            f"({weights_only_refusal(e)}); loading never executes code from a file"
        ) from None
    except Exception as e:  # corrupt data surfaces as many exception types inside torch.load
        raise CheckpointError(
            f"{path}: corrupt or truncated PyTorch file ({_first_line(e)})"
        ) from None


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0].split(". ")[0] if text else type(e).__name__


def read_generator_file(path: str | os.PathLike) -> Generator:
    """Read any supported generator checkpoint file into a (CPU, float32) `Generator`."""
    path = Path(path)
    label = str(path)
    fmt = detect_format(path)
    if fmt == "safetensors":
        from .export import is_delta_file, load_delta
        from .native import load_native

        return load_delta(path) if is_delta_file(path) else load_native(path)
    if fmt == "hdf5":
        raise CheckpointError(f"{path}: is an HDF5 file (VGG-16 weights?), not a generator")
    if fmt == "torch":
        obj = _torch_load(path)
        return _from_torch_object(obj, label)
    try:
        obj = safe_pickle_load(path)
    except RefusedGlobalError as refusal:
        raise _name_refused_network(path, label, refusal) from None
    return _from_pickle_object(obj, label)


# Top-level modules whose globals in a pickle mean code execution, not a network's classes.
_CODE_MODULES = frozenset(
    {
        *("os", "posix", "nt", "subprocess", "builtins", "__builtin__", "importlib", "runpy"),
        *("pickle", "_pickle", "marshal", "sys", "shutil", "socket", "ctypes", "code", "codeop"),
        *("pty", "webbrowser", "types", "functools", "operator", "io", "tempfile", "signal"),
        *("multiprocessing", "threading", "asyncio", "platform", "sysconfig", "site", "pdb"),
        *("timeit", "torch", "numpy", "dill", "cloudpickle", "joblib"),
    }
)


def _runs_code(global_name: str) -> bool:
    """Whether a global is of a module whose callables run code (torch's layer classes in
    `torch.nn` are data holders; `torch.load` is not)."""
    if global_name.startswith("torch.nn.modules."):
        return False
    return global_name.split(".")[0] in _CODE_MODULES


def _name_refused_network(path: Path, label: str, refusal: RefusedGlobalError) -> CheckpointError:
    """A refused pickle may be a snapshot of a network family we do not read yet whose modules
    pickle plain torch / third-party classes (StyleGAN-XL: a `torch.nn.Embedding` in its mapping
    network, timm models in its discriminator). Read it once more with those classes inert, only
    to name the family; anything else keeps the refusal."""
    from .families import READERS, NetworkFamily, identify_network, unsupported_family_error

    inspected = inspect_refused_pickle(path)
    if inspected is None:
        return refusal
    obj, unknown = inspected
    if any(_runs_code(name) for name in unknown):
        return refusal  # a gadget, whatever the rest of the file is
    if not (isinstance(obj, dict) and isinstance(obj.get("G_ema"), PersistentObjectStub)):
        return refusal
    family = identify_network(obj["G_ema"])
    if family is NetworkFamily.UNKNOWN or family in READERS:
        return refusal
    error = unsupported_family_error(family, "G_ema", label)
    return CheckpointError(f"{error} (it also pickles classes such as '{unknown[0]}')")


def _from_pickle_object(obj: Any, label: str) -> Generator:
    if isinstance(obj, tuple) and len(obj) == 3 and all(isinstance(n, TFNetworkStub) for n in obj):
        gs = obj[2]
        synthesis = gs.components.get("synthesis")
        if synthesis is None or "mapping" not in gs.components:
            raise CheckpointError(f"{label}: TF network {gs.name!r} has no mapping/synthesis parts")
        if synthesis.build_func_name == "G_synthesis_stylegan2" or any(
            name.endswith("mod_weight") for name in synthesis.variables
        ):
            from .stylegan2_tf import generator_from_tf as stylegan2_from_tf

            return stylegan2_from_tf(gs, label)
        from .stylegan1_tf import generator_from_tf as stylegan1_from_tf

        return stylegan1_from_tf(gs, label)
    if isinstance(obj, dict) and "G_ema" in obj:
        return _from_persistent_network(obj["G_ema"], label)
    if isinstance(obj, tuple) and all(isinstance(n, TFNetworkStub) for n in obj):
        raise CheckpointError(
            f"{label}: a TF pickle with {len(obj)} networks; expected the (G, D, Gs) tuple of a "
            "StyleGAN snapshot"
        )
    raise CheckpointError(f"{label}: a pickle, but not a StyleGAN checkpoint ({_describe(obj)})")


def _from_persistent_network(net: Any, label: str) -> Generator:
    """A snapshot's `G_ema` (NVIDIA's persistence format): identify its family, hand it to that
    family's reader or refuse it by name."""
    from .families import identify_network, reader_for

    if not isinstance(net, PersistentObjectStub):
        raise CheckpointError(
            f"{label}: 'G_ema' is {_describe(net)}, not a network pickled by NVIDIA's PyTorch code"
        )
    family = identify_network(net)
    what = f"G_ema (class '{net.class_name}')" if family.value == "unknown" else "G_ema"
    return reader_for(family, what, label)(net, family, label)


def _from_torch_object(obj: Any, label: str) -> Generator:
    if isinstance(obj, dict) and "g_ema" in obj:
        from .rosinality import generator_from_rosinality

        return generator_from_rosinality(obj, label)
    if isinstance(obj, dict) and any(str(k).startswith("g_synthesis.") for k in obj):
        from .lernapparat import generator_from_lernapparat

        return generator_from_lernapparat(obj, label)
    raise CheckpointError(
        f"{label}: a PyTorch file, but not a known generator layout ({_describe(obj)}); "
        "expected rosinality's {'g_ema': ...} or lernapparat's 'g_mapping.*/g_synthesis.*' keys"
    )


def _describe(obj: Any) -> str:
    if obj is None:
        return "None"
    if isinstance(obj, dict):
        keys = ", ".join(repr(k) for k in list(obj)[:6])
        more = ", ..." if len(obj) > 6 else ""
        return f"a dict with keys {keys}{more}"
    return f"a {type(obj).__name__}"


def load_generator(
    src: str | os.PathLike,
    device: str | torch.device = "cpu",
    **reader_options: Any,
) -> Generator:
    """Load a generator from a registry name, a checkpoint file path, or a `random:` source.

    - registry name (e.g. 'ffhq-1024'): the cached official file, downloaded when missing;
    - file path: any supported checkpoint, its format detected from the content;
    - 'random:ARCH-RES[@SEED]' (e.g. 'random:stylegan1-1024', 'random:stylegan2-256@3'): the
      official architecture (StyleGAN1 = the FFHQ configuration, StyleGAN2 = config-f) at that
      power-of-two resolution, weights initialised as the official code does from SEED (default
      0), stored noise N(0, 1), `w_avg` = the mean of 10 000 mapped z. For the paper's
      random-network experiment (Fig. 5 (b)(e)) and offline demos; see
      checkpoints/random_generators.py.

    The result is in eval mode with gradients off for its weights (embedding optimises latents,
    never weights) and records `src` in `G.source`. `reader_options` go to architectures that
    take them (e.g. `fp16=True`).
    """
    from .random_generators import is_random_source, random_generator
    from .registry import is_registry_name, resolve_weights

    if is_random_source(src):
        G = random_generator(str(src))
    else:
        if isinstance(src, str) and is_registry_name(src) and not Path(src).exists():
            path = resolve_weights(src, kind="generator")
        else:
            path = Path(src)
        G = read_generator_file(path)
    for key, value in reader_options.items():
        if not hasattr(G, key):
            raise TypeError(f"{type(G).__name__} has no option {key!r}")
        setattr(G, key, value)
    G.eval().requires_grad_(False)
    G.source = str(src)  # recorded in latent metadata
    return G.to(device)
