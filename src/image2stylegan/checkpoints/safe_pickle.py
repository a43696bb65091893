"""A restricted unpickler: checkpoints are data, never code (SPEC section 2, STYLE habit 7).

Official StyleGAN pickles reference a handful of globals. Each one we accept is mapped here to an
inert stand-in or to a function that only builds arrays/tensors; any other global (`os.system`,
`builtins.eval`, `subprocess.Popen`, NVIDIA's own classes that would `exec` their embedded
source text, ...) raises `CheckpointError` before anything is called.

Formats covered (layouts in shared/notes/checkpoint-formats.md):
- TF pickles of NVlabs/stylegan and NVlabs/stylegan2: `dnnlib.tflib.network.Network` objects
  restored through `__setstate__` -> `TFNetworkStub` (keeps `variables`, ignores
  `build_module_src`);
- stylegan2-ada-pytorch pickles: `torch_utils.persistence._reconstruct_persistent_obj(meta)` ->
  `PersistentObjectStub` (keeps `meta["state"]`, ignores `module_src`); tensors inside arrive as
  legacy `torch.save` byte streams, which are read with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import _codecs
import collections
import importlib
import io
import os
import pickle
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from ..errors import CheckpointError

__all__ = [
    "ALLOWED_GLOBALS",
    "EasyDictStub",
    "InertObject",
    "PersistentObjectStub",
    "RefusedGlobalError",
    "TFNetworkStub",
    "inspect_refused_pickle",
    "refused_torch_global",
    "safe_pickle_load",
    "weights_only_refusal",
]


class TFNetworkStub:
    """Inert stand-in for `dnnlib.tflib.network.Network` (TF pickles of StyleGAN 1 and 2).

    The official `__setstate__` imports `build_module_src` as a Python module (running it); this
    one only keeps the data: `name`, `static_kwargs`, `components` (name -> TFNetworkStub),
    `build_func_name` and `variables` (local variable name -> np.ndarray).
    """

    name: str
    version: int
    static_kwargs: dict[str, Any]
    components: dict[str, TFNetworkStub]
    build_func_name: str
    variables: dict[str, np.ndarray]

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict) or "variables" not in state:
            raise pickle.UnpicklingError("a TF Network state must be a dict with 'variables'")
        self.version = int(state.get("version", 0))
        self.name = str(state.get("name", ""))
        self.static_kwargs = dict(state.get("static_kwargs") or {})
        self.build_func_name = str(state.get("build_func_name", ""))
        components = dict(state.get("components") or {})
        for key, comp in components.items():
            if not isinstance(comp, TFNetworkStub):
                raise pickle.UnpicklingError(f"component {key!r} is not a TF Network")
        self.components = components
        variables: dict[str, np.ndarray] = {}
        for item in state["variables"]:
            name, value = item
            variables[str(name)] = np.asarray(value)
        self.variables = variables

    def __repr__(self) -> str:
        return f"TFNetworkStub(name={self.name!r}, build_func_name={self.build_func_name!r})"


class PersistentObjectStub:
    """Inert stand-in for a stylegan2-ada-pytorch persistent object (a pickled nn.Module).

    `class_name` is the bare class name the official persistence records (e.g. 'Generator', the
    same for every family: see families.py); `state` is the module's `__dict__`
    (`_parameters`, `_buffers`, `_modules`, `_init_kwargs`, ...). `module_src` is never kept.
    """

    def __init__(self, class_name: str, state: dict[str, Any]) -> None:
        self.class_name = class_name
        self.state = state

    @property
    def init_kwargs(self) -> dict[str, Any]:
        return dict(self.state.get("_init_kwargs") or {})

    @property
    def submodules(self) -> dict[str, Any]:
        return dict(self.state.get("_modules") or {})

    def named_tensors(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """All parameters and buffers, recursively, named like `nn.Module.state_dict()`."""
        out: dict[str, torch.Tensor] = {}
        for group in ("_parameters", "_buffers"):
            for key, value in (self.state.get(group) or {}).items():
                if value is not None:
                    out[prefix + key] = value.detach() if isinstance(value, torch.Tensor) else value
        for key, module in self.submodules.items():
            if isinstance(module, PersistentObjectStub):
                out.update(module.named_tensors(f"{prefix}{key}."))
        return out

    def __repr__(self) -> str:
        return f"PersistentObjectStub({self.class_name})"


class EasyDictStub(dict):
    """`dnnlib.util.EasyDict` (a dict with attribute access) as plain data."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _reconstruct_persistent_obj(meta: Any) -> PersistentObjectStub:
    if not isinstance(meta, dict) or meta.get("type") != "class":
        raise pickle.UnpicklingError("unsupported persistent object (expected type 'class')")
    state = meta.get("state")
    if not isinstance(state, dict):
        raise pickle.UnpicklingError("persistent object without a dict state")
    return PersistentObjectStub(str(meta.get("class_name", "")), state)


def _load_torch_bytes(data: bytes) -> Any:
    """`torch.storage._load_from_bytes`, but with torch's own weights-only unpickler."""
    try:
        return torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as e:
        name = refused_torch_global(e)
        if name is not None:
            raise _RefusedGlobal(name) from None
        raise pickle.UnpicklingError(
            f"an embedded tensor stream was refused ({weights_only_refusal(e)})"
        ) from None


def refused_torch_global(e: BaseException) -> str | None:
    """The global (e.g. 'posix.system') that torch's weights-only unpickler refused, if named."""
    found = re.search(r"GLOBAL ([\w.]+)", str(e))
    return found[1] if found else None


def weights_only_refusal(e: BaseException) -> str:
    """One line on what torch's weights-only unpickler refused, without its advice to turn the
    check off (`weights_only=False`)."""
    name = refused_torch_global(e)
    if name is not None:
        return f"it asks for '{name}'"
    lines = [
        line.strip()
        for line in str(e).splitlines()
        if line.strip()
        and not line.startswith("Weights only load failed")
        and "weights_only" not in line
    ]
    return lines[0] if lines else type(e).__name__


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _codecs_encode(text: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """Protocol-2 pickles spell `bytes` as `_codecs.encode(str, 'latin1')`; allow only that."""
    if encoding.lower().replace("-", "").replace("_", "") not in ("latin1", "iso88591"):
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {encoding!r}")
    return _codecs.encode(text, encoding, errors)


def _no_hooks(hooks: Any) -> None:
    if hooks:  # an official file pickles an empty OrderedDict; hooks would be callables
        raise pickle.UnpicklingError("refusing a tensor with backward hooks")


def _rebuild_tensor_v2(storage: Any, offset: Any, size: Any, stride: Any, *rest: Any) -> Any:
    """`torch._utils._rebuild_tensor_v2` for tensors without backward hooks (the 6th argument)."""
    if len(rest) >= 2:
        _no_hooks(rest[1])
    return torch._utils._rebuild_tensor_v2(storage, offset, size, stride, *rest)


def _rebuild_parameter(data: Any, requires_grad: Any, backward_hooks: Any = None) -> Any:
    """`torch._utils._rebuild_parameter` for parameters without backward hooks."""
    _no_hooks(backward_hooks)
    return torch._utils._rebuild_parameter(data, requires_grad, backward_hooks or {})


def _rebuild_from_type_v2(func: Callable, new_type: type, args: tuple, state: Any) -> Any:
    """`torch._tensor._rebuild_from_type_v2` limited to plain tensors and parameters."""
    if new_type not in (torch.Tensor, torch.nn.Parameter):
        raise pickle.UnpicklingError(f"refusing tensor subclass {new_type!r}")
    out = func(*args)
    if type(out) is not new_type:
        out = out.as_subclass(new_type)
    return out


def _numpy_global(name: str) -> Any:
    # numpy 2 moved the internals to numpy._core (numpy 1.26 has a bare `_core` stub, so the
    # version decides, not hasattr)
    core = importlib.import_module(
        "numpy._core" if int(np.__version__.split(".")[0]) >= 2 else "numpy.core"
    )
    table = {
        "multiarray._reconstruct": core.multiarray._reconstruct,
        "multiarray.scalar": core.multiarray.scalar,
        "numeric._frombuffer": core.numeric._frombuffer,
    }
    return table[name]


# (module, name) -> the object the unpickler hands out instead of importing anything. Exactly the
# globals that official files hold (tests/test_official_files.py checks each one against the files
# made by the official code), plus the numpy-2 spellings of the numpy ones and protocol-2 bytes.
ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    # dnnlib / TensorFlow containers
    ("dnnlib.tflib.network", "Network"): TFNetworkStub,
    ("dnnlib.util", "EasyDict"): EasyDictStub,
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    # numpy arrays, dtypes and scalars (numpy 1 and numpy 2 spellings)
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    **{
        (f"numpy.{core}.{mod}", fn): _numpy_global(f"{mod}.{fn}")
        for core in ("core", "_core")
        for mod, fn in (
            ("multiarray", "_reconstruct"),
            ("multiarray", "scalar"),
            ("numeric", "_frombuffer"),
        )
    },
    # torch tensors pickled with plain `pickle` (a tensor with Python attributes: from_type_v2)
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    ("torch.storage", "_load_from_bytes"): _load_torch_bytes,
    # plain containers (`set`: a module's `_non_persistent_buffers_set` below protocol 4)
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("_codecs", "encode"): _codecs_encode,  # bytes in a protocol-2 pickle
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: IO[bytes], allowed: Mapping[tuple[str, str], Any]) -> None:
        super().__init__(file)
        self._allowed = allowed

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise _RefusedGlobal(f"{module}.{name}") from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not part of a plain pickle checkpoint")


class _RefusedGlobal(pickle.UnpicklingError):
    pass


class RefusedGlobalError(CheckpointError):
    """A pickle asked for a global outside the allow-list (`.global_name`, e.g. 'os.system')."""

    def __init__(self, message: str, global_name: str) -> None:
        super().__init__(message)
        self.global_name = global_name


class InertObject:
    """What an unknown global becomes in `inspect_refused_pickle`: called or built, it only keeps
    its arguments and state; it has no behaviour."""

    global_name = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> InertObject:
        obj = object.__new__(cls)
        obj.__dict__["_args"] = args
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self.__dict__["_state"] = state

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def append(self, value: Any) -> None:
        pass

    def extend(self, values: Any) -> None:
        pass

    def __repr__(self) -> str:
        return f"InertObject({self.global_name})"


class _InspectingUnpickler(_RestrictedUnpickler):
    """The allow-list as usual; any other global becomes an inert `InertObject` class."""

    def __init__(self, file: IO[bytes], allowed: Mapping[tuple[str, str], Any]) -> None:
        super().__init__(file, allowed)
        self.unknown: dict[str, type] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._allowed:
            return self._allowed[(module, name)]
        key = f"{module}.{name}"
        if key not in self.unknown:
            self.unknown[key] = type(name, (InertObject,), {"global_name": key})
        return self.unknown[key]


def inspect_refused_pickle(path: str | os.PathLike) -> tuple[Any, list[str]] | None:
    """Read a pickle that `safe_pickle_load` refused, to name what it is: every global outside
    the allow-list becomes an inert object (nothing is imported, called or executed; a torch
    stream inside still goes through torch's weights-only unpickler). Returns (object, the
    unknown globals asked for), or None if even that fails. Never use the result as a network:
    only to identify one for an error message."""
    try:
        with open(Path(path), "rb") as f:
            unpickler = _InspectingUnpickler(f, ALLOWED_GLOBALS)
            obj = unpickler.load()
    except Exception:
        return None
    return obj, sorted(unpickler.unknown)


def safe_pickle_load(
    source: str | os.PathLike | IO[bytes],
    extra_allowed: Mapping[tuple[str, str], Any] | None = None,
    label: str | None = None,
) -> Any:
    """Unpickle `source` with the allow-list above (plus `extra_allowed`); never runs file code.

    Raises `CheckpointError` naming the file (`label`) for refused globals, truncated or corrupt
    data.
    """
    allowed = dict(ALLOWED_GLOBALS)
    if extra_allowed:
        allowed.update(extra_allowed)
    if isinstance(source, (str, os.PathLike)):
        label = label or str(source)
        with open(Path(source), "rb") as f:
            return _load(f, allowed, label)
    return _load(source, allowed, label or "<stream>")


def _load(f: IO[bytes], allowed: Mapping[tuple[str, str], Any], label: str) -> Any:
    try:
        return _RestrictedUnpickler(f, allowed).load()
    except _RefusedGlobal as e:
        raise RefusedGlobalError(
            f"{label}: refused to load: the pickle asks for '{e}', which no known StyleGAN "
            "checkpoint format uses (loading never executes code from a file)",
            str(e),
        ) from None
    except EOFError:
        raise CheckpointError(f"{label}: the file ends early (truncated download?)") from None
    except pickle.UnpicklingError as e:
        if "truncated" in str(e):  # "pickle data was truncated"
            raise CheckpointError(f"{label}: the file ends early (truncated download?)") from None
        raise CheckpointError(
            f"{label}: corrupt or unsupported pickle data ({_first_line(e)})"
        ) from None
    except CheckpointError:
        raise
    except Exception as e:  # corrupt data surfaces as many exception types inside pickle
        raise CheckpointError(
            f"{label}: corrupt or unsupported pickle data ({_first_line(e)})"
        ) from None
