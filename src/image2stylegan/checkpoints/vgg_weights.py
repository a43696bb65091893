"""VGG-16 and LPIPS weights: `load_vgg16`, `resolve_lpips_weights` and one strict reader per file
layout (`losses.load_lpips` builds the LPIPS module from them).

Layouts (detected from the file's bytes, never from its name):
- torchvision's ImageNet `vgg16` state dict (`vgg16-397923af.pth`): `features.{i}.weight`
  [C_out, C_in, 3, 3] / `features.{i}.bias` at the conv indices of `models.vgg16`; the
  `classifier.*` keys of the full dict are ignored. Input: RGB [0, 1], ImageNet mean/std.
- the original Caffe VGG-16 weights as converted for Keras
  (`vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5`, also the with-top file): HDF5, root
  attribute `layer_names`, one group per layer (`block1_conv1`, ...) whose attribute
  `weight_names` lists its datasets (`block1_conv1_W_1:0` kernel [3, 3, C_in, C_out] (HWIO),
  `block1_conv1_b_1:0` bias [C_out]); weight-less layers (input, pools) have empty lists.
  Full-model saves keep the same tree under `model_weights`. Input: BGR [0, 255] minus the
  Caffe means.
- LPIPS v0.1 linear layers (`lpips/weights/v0.1/vgg.pth` of the `lpips` package, a legacy
  torch pickle): `lin{k}.model.1.weight` [1, C_k, 1, 1] for k = 0..4, C = 64, 128, 256, 512, 512.

Every problem is one `CheckpointError` naming the file. No silent fallback to random weights:
"random" must be asked for by name (tests, the random-network experiment) and is recorded in
`vgg.is_random` / `vgg.source`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError
from ..models.vgg16 import (
    CONV_SHAPES,
    KERAS_NAMES,
    LAYER_NAMES,
    TORCHVISION_CONV_INDEX,
    Preprocessing,
    VGG16Features,
)
from .loader import _torch_load, detect_format

__all__ = [
    "LPIPS_CHANNELS",
    "load_vgg16",
    "random_vgg16_state",
    "read_keras_vgg16_h5",
    "read_lpips_linear",
    "read_torchvision_vgg16",
    "read_vgg16_file",
    "resolve_lpips_weights",
]

VGG16_NAMES = ("vgg16-caffe", "vgg16-torchvision")  # registry entries, for messages
LPIPS_CHANNELS: tuple[int, ...] = (64, 128, 256, 512, 512)  # relu1_2 .. relu5_3
_KERAS_CLASSIFIER = frozenset({"flatten", "fc1", "fc2", "predictions"})
_HINT = (
    "--vgg takes a registry name (vgg16-caffe, vgg16-torchvision), a torchvision vgg16 .pth "
    "state dict, a Keras vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5, or 'random'"
)

State = dict[str, torch.Tensor]  # our parameter names: conv1_1.weight [C_out, C_in, 3, 3], ...


# ---------------------------------------------------------------------------------------------
# Public loaders


def load_vgg16(
    src: str | os.PathLike = "vgg16-caffe",  # registry name, file path, or "random"
    device: str | torch.device = "cpu",
    seed: int = 0,  # only for "random": the weights are a function of the seed
    preprocessing: Preprocessing | None = None,  # only for "random"; files fix their own
) -> VGG16Features:
    """VGG-16 for the perceptual loss (SPEC section 2), in eval mode, weights frozen.

    `src` is "vgg16-caffe" (the original VGG weights, the paper's; default), "vgg16-torchvision",
    a path to either file layout (detected from its content), or "random" (He-normal weights from
    `seed`, zero biases; torchvision preprocessing unless `preprocessing` says otherwise). The
    result carries `source` (what was loaded) and `is_random` for the latent metadata.
    """
    if isinstance(src, str) and src == "random":
        vgg = VGG16Features(preprocessing or "torchvision")
        vgg.load_state_dict(random_vgg16_state(seed))
        vgg.source = f"random(seed={seed})"
        vgg.is_random = True
        return vgg.to(device)
    if preprocessing is not None:
        raise ValueError("`preprocessing` is fixed by the weight file; it applies to 'random' only")
    path = _resolve(src, kind="vgg16", hint=_HINT)
    state, prep = read_vgg16_file(path)
    vgg = VGG16Features(prep)
    vgg.load_state_dict(state, strict=True)
    vgg.source = str(src)
    vgg.is_random = False
    return vgg.to(device)


def resolve_lpips_weights(weights: str | os.PathLike = "lpips-vgg") -> Path:
    """The file of LPIPS v0.1's linear layers: a registry name or a path.

    "lpips-vgg" is read from an installed `lpips` package (`lpips/weights/v0.1/vgg.pth`, found
    without importing the package, which needs torchvision) when there is one, else from the
    weights registry.
    """
    if weights == "lpips-vgg" and not Path(weights).exists():
        return _installed_lpips_file() or _resolve(weights, kind="lpips", hint="")
    return _resolve(weights, kind="lpips", hint="pass the LPIPS v0.1 vgg.pth file")


# ---------------------------------------------------------------------------------------------
# Readers


def read_vgg16_file(path: str | os.PathLike) -> tuple[State, Preprocessing]:
    """Any supported VGG-16 weight file -> (our float32 state dict, its preprocessing)."""
    path = Path(path)
    fmt = detect_format(path)
    if fmt == "hdf5":
        return read_keras_vgg16_h5(path), "caffe"
    if fmt == "torch":
        obj = _torch_load(path)
        if isinstance(obj, Mapping) and set(obj) == {"state_dict"}:
            obj = obj["state_dict"]
        if isinstance(obj, Mapping) and any(str(k).startswith("lin0.") for k in obj):
            raise CheckpointError(
                f"{path}: holds LPIPS linear layers, not VGG-16 weights; pass it as the LPIPS "
                "weights and give the VGG-16 weights separately"
            )
        return read_torchvision_vgg16(obj, str(path)), "torchvision"
    raise CheckpointError(
        f"{path}: a {fmt} file, not VGG-16 weights; expected torchvision's vgg16 .pth state dict "
        "or Keras's vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
    )


def read_torchvision_vgg16(obj: Any, label: str) -> State:
    """torchvision `vgg16` state dict (features only, or with `classifier.*`) -> our names."""
    if not isinstance(obj, Mapping):
        raise CheckpointError(
            f"{label}: expected a torchvision vgg16 state dict, got a {type(obj)}"
        )
    keys = {str(k) for k in obj}
    features = {k for k in keys if k.startswith("features.")}
    if not features:
        shown = ", ".join(sorted(keys)[:6])
        raise CheckpointError(
            f"{label}: not a torchvision vgg16 state dict (no 'features.*' keys; keys: {shown})"
        )
    if any(k.endswith(("running_mean", "running_var")) for k in features):
        raise CheckpointError(
            f"{label}: a VGG with batch normalisation (vgg16_bn); the paper's loss uses plain "
            "VGG-16 (torchvision's vgg16)"
        )
    expected = {
        f"features.{TORCHVISION_CONV_INDEX[name]}.{p}": f"{name}.{p}"
        for name in LAYER_NAMES
        for p in ("weight", "bias")
    }
    other = sorted(k for k in keys - features if not k.startswith("classifier."))
    unexpected = sorted(features - expected.keys(), key=_natural) + other
    missing = sorted(expected.keys() - features, key=_natural)
    if unexpected or missing:
        n_convs = len({k.rsplit(".", 1)[0] for k in features if k.endswith(".weight")})
        raise CheckpointError(
            f"{label}: not torchvision's VGG-16 layout ({n_convs} conv layers, VGG-16 has 13); "
            f"unexpected keys: {_short(unexpected)}; missing keys: {_short(missing)}"
        )
    state: State = {}
    for key, ours in expected.items():
        tensor = obj[key]
        if not isinstance(tensor, torch.Tensor):
            raise CheckpointError(f"{label}: {key} is a {type(tensor).__name__}, not a tensor")
        state[ours] = _check_shape(tensor.detach().float().cpu(), ours, label, key)
    return state


def read_keras_vgg16_h5(path: str | os.PathLike) -> State:
    """Keras VGG16 weights (.h5, TF dim ordering: kernels HWIO) -> our names, kernels OIHW."""
    import h5py

    path = Path(path)
    label = str(path)
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise CheckpointError(f"{label}: corrupt or unreadable HDF5 file ({e})") from None
    with f:
        root = f.get("model_weights", f)
        if "layer_names" in root.attrs:
            layer_names = _decode(root.attrs["layer_names"])
        else:
            layer_names = [k for k in root if isinstance(root[k], h5py.Group)]
        arrays: dict[str, list[np.ndarray]] = {}
        for lname in layer_names:
            if lname not in root:
                raise CheckpointError(f"{label}: layer {lname!r} is listed but has no group")
            found = _keras_layer_arrays(root[lname], label, lname)
            if found:
                arrays[lname] = found
    ours_by_keras = {keras: ours for ours, keras in KERAS_NAMES.items()}
    unexpected = sorted(set(arrays) - ours_by_keras.keys() - _KERAS_CLASSIFIER)
    missing = sorted(ours_by_keras.keys() - set(arrays))
    if unexpected or missing:
        raise CheckpointError(
            f"{label}: not Keras's VGG16 weight layout; layers with weights not in VGG-16: "
            f"{_short(unexpected)}; VGG-16 layers missing: {_short(missing)}"
        )
    state: State = {}
    for keras, ours in ours_by_keras.items():
        found = arrays[keras]
        kernels = [a for a in found if a.ndim == 4]
        biases = [a for a in found if a.ndim == 1]
        if len(found) != 2 or len(kernels) != 1 or len(biases) != 1:
            shapes = ", ".join(str(a.shape) for a in found)
            raise CheckpointError(
                f"{label}: layer {keras} should hold a 4-D kernel and a bias, found {shapes}"
            )
        kernel, bias = kernels[0], biases[0]
        cin, cout = CONV_SHAPES[ours]
        if kernel.shape == (cout, cin, 3, 3) and kernel.shape != (3, 3, cin, cout):
            raise CheckpointError(
                f"{label}: layer {keras} has a channels-first kernel {kernel.shape} (Theano "
                "ordering); use vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
            )
        if kernel.shape != (3, 3, cin, cout):
            raise CheckpointError(
                f"{label}: layer {keras} kernel has shape {kernel.shape}, expected "
                f"{(3, 3, cin, cout)} (kernel H, W, C_in, C_out)"
            )
        w = torch.from_numpy(np.ascontiguousarray(kernel, dtype=np.float32))
        state[f"{ours}.weight"] = w.permute(3, 2, 0, 1).contiguous()  # HWIO -> OIHW
        b = torch.from_numpy(np.ascontiguousarray(bias, dtype=np.float32))
        state[f"{ours}.bias"] = _check_shape(b, f"{ours}.bias", label, f"{keras} bias")
    return state


def read_lpips_linear(path: str | os.PathLike) -> list[torch.Tensor]:
    """LPIPS v0.1 VGG linear layers -> five float32 weight vectors [C_k] (C = 64 ... 512)."""
    path = Path(path)
    label = str(path)
    if detect_format(path) != "torch":
        raise CheckpointError(f"{label}: not a PyTorch file; expected LPIPS's weights/v0.1/vgg.pth")
    obj = _torch_load(path)
    if not isinstance(obj, Mapping) or not any(str(k).startswith("lin") for k in obj):
        raise CheckpointError(
            f"{label}: not LPIPS linear weights (expected keys lin0.model.1.weight ... "
            f"lin4.model.1.weight; found {_describe_keys(obj)})"
        )
    keys = {str(k) for k in obj}
    if "lin5.model.1.weight" in keys or "lin5.model.0.weight" in keys:
        raise CheckpointError(f"{label}: LPIPS weights for SqueezeNet (7 layers), not VGG")
    weights: list[torch.Tensor] = []
    used: set[str] = set()
    for k, channels in enumerate(LPIPS_CHANNELS):
        # `model.1` when the layer was built with dropout (the released files), else `model.0`
        key = next(
            (c for c in (f"lin{k}.model.1.weight", f"lin{k}.model.0.weight") if c in keys), None
        )
        if key is None:
            raise CheckpointError(f"{label}: missing LPIPS linear layer lin{k}.model.1.weight")
        used.add(key)
        w = obj[key]
        if not isinstance(w, torch.Tensor) or tuple(w.shape) != (1, channels, 1, 1):
            shape = tuple(w.shape) if isinstance(w, torch.Tensor) else type(w).__name__
            net = (
                " (these look like AlexNet LPIPS weights)"
                if k == 1 and shape == (1, 192, 1, 1)
                else ""
            )
            raise CheckpointError(
                f"{label}: {key} has shape {shape}, expected {(1, channels, 1, 1)} for the VGG "
                f"variant{net}"
            )
        weights.append(w.detach().float().cpu().reshape(channels))
    if keys - used:
        raise CheckpointError(
            f"{label}: unexpected keys in LPIPS weights: {_short(sorted(keys - used))}"
        )
    return weights


def random_vgg16_state(seed: int = 0) -> State:
    """Seeded random weights: He-normal (fan-out, as torchvision initialises VGG), zero biases."""
    gen = torch.Generator().manual_seed(seed)
    state: State = {}
    for name in LAYER_NAMES:
        cin, cout = CONV_SHAPES[name]
        std = math.sqrt(2.0 / (cout * 9))
        state[f"{name}.weight"] = torch.randn(cout, cin, 3, 3, generator=gen) * std
        state[f"{name}.bias"] = torch.zeros(cout)
    return state


# ---------------------------------------------------------------------------------------------
# Helpers


def _resolve(src: str | os.PathLike, kind: str, hint: str) -> Path:
    """Registry name -> cached (downloaded, verified) file; otherwise an existing path."""
    if isinstance(src, str) and not Path(src).exists():
        from .registry import is_registry_name, resolve_weights

        if is_registry_name(src):
            return resolve_weights(src, kind=kind)
    path = Path(src)
    if not path.exists():
        raise CheckpointError(f"{path}: no such file" + (f"; {hint}" if hint else ""))
    return path


def _installed_lpips_file() -> Path | None:
    """`lpips/weights/v0.1/vgg.pth` of an installed lpips package, located without importing it."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("lpips")
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / "weights" / "v0.1" / "vgg.pth"
        if candidate.is_file():
            return candidate
    return None


def _check_shape(t: torch.Tensor, ours: str, label: str, key: str) -> torch.Tensor:
    name, kind = ours.split(".")
    cin, cout = CONV_SHAPES[name]
    expected = (cout, cin, 3, 3) if kind == "weight" else (cout,)
    if tuple(t.shape) != expected:
        raise CheckpointError(
            f"{label}: {key} ({name}) has shape {tuple(t.shape)}, expected {expected}"
        )
    return t


def _keras_layer_arrays(group: Any, label: str, lname: str) -> list[np.ndarray]:
    """The datasets of one Keras layer group, in `weight_names` order (or file order)."""
    import h5py

    if "weight_names" in group.attrs:
        names = _decode(group.attrs["weight_names"])
        out = []
        for n in names:
            if n not in group:
                raise CheckpointError(
                    f"{label}: layer {lname} lists weight {n!r} but has no such data"
                )
            out.append(np.asarray(group[n]))
        return out
    found: list[np.ndarray] = []
    group.visititems(
        lambda _, obj: found.append(np.asarray(obj)) if isinstance(obj, h5py.Dataset) else None
    )
    return found


def _decode(values: Any) -> list[str]:
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in np.atleast_1d(values)]


def _natural(key: str) -> tuple[int, str]:
    """Sort 'features.10.weight' after 'features.2.weight'."""
    parts = key.split(".")
    return (int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else -1, key)


def _short(items: Sequence[str], limit: int = 6) -> str:
    if not items:
        return "none"
    return ", ".join(items[:limit]) + (f", ... ({len(items)} in all)" if len(items) > limit else "")


def _describe_keys(obj: Any) -> str:
    if isinstance(obj, Mapping):
        return "keys " + _short([str(k) for k in obj])
    return f"a {type(obj).__name__}"
