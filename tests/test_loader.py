"""`load_generator` on hostile and broken files: one clear `CheckpointError` line each.

- Malicious pickles (top level, hidden in a TF variable, in an ADA persistent object's state, in
  a torch stream inside an ADA pickle, in torch zip / legacy files) are refused and their payload
  never runs: each payload would create a marker file, and the marker must not exist afterwards.
  A control test runs the same payloads with plain `pickle.loads` to show they are live.
- Truncated (every format cut in half), empty, wrong-type and mismatched files.
- The format comes from the content, never from the file name.
"""

from __future__ import annotations

import collections
import io
import json
import os
import pickle
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import image2stylegan as i2s
from image2stylegan.checkpoints import detect_format
from image2stylegan.checkpoints.native import read_native_header, save_native
from image2stylegan.errors import CheckpointError
from tests.fixtures.official_pickles import persistent_module, write_ada_pickle
from tests.fixtures.stylegan1_fixtures import (
    tf_static_kwargs,
    tf_variables_from_generator,
    tiny_stylegan1,
    write_lernapparat_pt,
    write_stylegan1_tf_pickle,
    write_tiny_stylegan1_pickle,
)
from tests.fixtures.stylegan2_fixtures import (
    ada_init_kwargs,
    ada_tensors_from_generator,
    tiny_stylegan2,
    write_ada_pickle_file,
    write_reference_checkpoint,
)


def load_error(path: Path) -> str:
    """The message of the CheckpointError that loading `path` raises (always one line)."""
    with pytest.raises(CheckpointError) as info:
        i2s.load_generator(path)
    message = str(info.value)
    assert "\n" not in message, message
    assert str(path) in message, message
    return message


# --- malicious pickles -----------------------------------------------------------------------


def reduce_pickle(module: str, name: str, args: tuple) -> bytes:
    """A protocol-2 pickle of `module.name(*args)` (GLOBAL + REDUCE), written by hand so the
    global can be spelled as an attacker would (`os.system`, not its real home `posix.system`)."""
    args_ops = pickle.dumps(args, protocol=2)[2:-1]  # without PROTO and STOP
    return b"\x80\x02c" + f"{module}\n{name}\n".encode() + args_ops + b"R."


def touch_code(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').close()"


# id -> (module, name, args that create `marker`)
PAYLOADS: dict[str, Callable[[Path], tuple[str, str, tuple]]] = {
    "os.system": lambda m: ("os", "system", (f"touch '{m}'",)),
    "posix.system": lambda m: ("posix", "system", (f"touch '{m}'",)),
    "builtins.eval": lambda m: ("builtins", "eval", (touch_code(m),)),
    "builtins.exec": lambda m: ("builtins", "exec", (touch_code(m),)),
    "subprocess.Popen": lambda m: ("subprocess", "Popen", (["touch", str(m)],)),
}


class Payload:
    """An object that pickles as `func(*args)` (nested inside an otherwise valid layout)."""

    def __init__(self, func: Callable, args: tuple) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Callable, tuple]:
        return self.func, self.args


def shell_payload(marker: Path) -> Payload:
    return Payload(os.system, (f"touch '{marker}'",))  # pickles as posix.system


@pytest.mark.skipif(os.name != "posix", reason="the payloads use `touch`")
@pytest.mark.parametrize("kind", PAYLOADS)
def test_payloads_are_live(kind: str, tmp_path: Path) -> None:
    """Control: plain pickle runs each payload (so the refusals below are meaningful)."""
    marker = tmp_path / "pwned"
    result = pickle.loads(reduce_pickle(*PAYLOADS[kind](marker)))  # our own payload
    if isinstance(result, subprocess.Popen):
        result.wait(timeout=10)
    assert marker.exists()


@pytest.mark.parametrize("kind", PAYLOADS)
def test_malicious_pickle_is_refused_and_never_runs(kind: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "network-snapshot.pkl"
    path.write_bytes(reduce_pickle(*PAYLOADS[kind](marker)))
    message = load_error(path)
    assert f"refused to load: the pickle asks for '{kind}'" in message
    assert not marker.exists()


def test_payload_in_a_tf_variable(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    G = tiny_stylegan1(8)
    variables = tf_variables_from_generator(G)
    variables["synthesis"]["noise0"] = shell_payload(marker)  # an object array holding it
    path = write_stylegan1_tf_pickle(tmp_path / "tf.pkl", variables, tf_static_kwargs(G.config))
    assert b"dnnlib.tflib.network" in path.read_bytes()  # the official container around it
    assert "asks for 'posix.system'" in load_error(path)
    assert not marker.exists()


def test_payload_in_an_ada_persistent_state(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    state = {
        "training": False,
        "_parameters": collections.OrderedDict(),
        "_buffers": collections.OrderedDict(w_avg=shell_payload(marker)),
        "_modules": collections.OrderedDict(),
        "_init_kwargs": {"z_dim": 16},
    }
    G_ema = persistent_module("Generator", state)
    path = write_ada_pickle(tmp_path / "ada.pkl", {"G": G_ema, "D": None, "G_ema": G_ema})
    assert "asks for 'posix.system'" in load_error(path)
    assert not marker.exists()


def test_payload_in_a_torch_stream_inside_an_ada_pickle(tmp_path: Path) -> None:
    """ADA tensors arrive as `torch.storage._load_from_bytes(legacy torch.save bytes)`: a payload
    inside those bytes meets torch's weights-only unpickler, and the refusal names it."""
    marker = tmp_path / "pwned"
    inner = io.BytesIO()
    torch.save(shell_payload(marker), inner, _use_new_zipfile_serialization=False)
    storage = Payload(torch.storage._load_from_bytes, (inner.getvalue(),))
    state = {
        "_parameters": collections.OrderedDict(weight=storage),
        "_buffers": collections.OrderedDict(),
        "_modules": collections.OrderedDict(),
        "_init_kwargs": {},
    }
    path = write_ada_pickle(tmp_path / "ada.pkl", {"G_ema": persistent_module("Generator", state)})
    message = load_error(path)
    assert "asks for 'posix.system'" in message and "weights_only" not in message
    assert not marker.exists()


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_malicious_torch_file_is_refused(zip_format: bool, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "stylegan2-ffhq.pt"
    ckpt = {"g_ema": {"style.1.weight": torch.zeros(2, 2)}, "latent_avg": shell_payload(marker)}
    torch.save(ckpt, path, _use_new_zipfile_serialization=zip_format)
    message = load_error(path)
    assert "refused to load" in message and "'posix.system'" in message
    assert "weights_only" not in message  # never advise turning the safety check off
    assert not marker.exists()


# --- truncated, empty, wrong-type and mismatched files ---------------------------------------


def _sg1_pickle(folder: Path) -> Path:
    return write_tiny_stylegan1_pickle(folder / "sg1.pkl", 8, seed=1)[0]


def _lernapparat(folder: Path) -> Path:
    return write_lernapparat_pt(folder / "g_all.pt", tf_variables_from_generator(tiny_stylegan1(8)))


def _ada(folder: Path) -> Path:
    G = tiny_stylegan2(8)
    return write_ada_pickle_file(
        folder / "ada.pkl", ada_tensors_from_generator(G), ada_init_kwargs(G.config)
    )


def _sg2_tf(folder: Path) -> Path:
    return write_reference_checkpoint("tf_revised16", folder / "sg2.pkl")


def _rosinality(folder: Path) -> Path:
    return write_reference_checkpoint("rosinality_64", folder / "ros.pt")


def _native(folder: Path) -> Path:
    return save_native(tiny_stylegan1(8), folder / "g.safetensors")


WRITERS: dict[str, Callable[[Path], Path]] = {
    "stylegan1-tf": _sg1_pickle,
    "lernapparat": _lernapparat,
    "ada": _ada,
    "stylegan2-tf": _sg2_tf,
    "rosinality": _rosinality,
    "native": _native,
}


@pytest.fixture(scope="module")
def good_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("good")
    return {name: write(folder) for name, write in WRITERS.items()}


@pytest.mark.parametrize("fmt", WRITERS)
def test_truncated_file(fmt: str, good_files: dict[str, Path], tmp_path: Path) -> None:
    data = good_files[fmt].read_bytes()
    path = tmp_path / f"cut{good_files[fmt].suffix}"
    path.write_bytes(data[: len(data) // 2])
    message = load_error(path)
    assert "truncated" in message or "ends early" in message


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "ffhq.pkl"
    path.write_bytes(b"")
    assert "the file is empty (0 bytes)" in load_error(path)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    assert "no such file" in load_error(tmp_path / "nothing.pkl")
    assert "is a folder" in load_error(tmp_path)


def _png(path: Path) -> None:
    from PIL import Image

    Image.new("RGB", (4, 4)).save(path, format="PNG")


def _jpeg(path: Path) -> None:
    from PIL import Image

    Image.new("RGB", (4, 4)).save(path, format="JPEG")


def _hdf5(path: Path) -> None:
    import h5py

    with h5py.File(path, "w") as f:
        f["block1_conv1/kernel"] = np.zeros((3, 3, 3, 4), np.float32)


def _plain_safetensors(path: Path) -> None:
    save_file({"weight": torch.zeros(2)}, str(path), metadata={"format": "pt"})


def _pickle_of(obj: Any) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(pickle.dumps(obj, protocol=4))


def _torch_of(obj: Any) -> Callable[[Path], None]:
    return lambda path: torch.save(obj, path)


QUOTA_PAGE = (
    b"<!DOCTYPE html><html><head><title>Google Drive - Quota exceeded</title></head>"
    b"<body>Too many users have viewed or downloaded this file recently.</body></html>"
)

# id -> (file name, writer, expected message part)
WRONG_FILES: dict[str, tuple[str, Callable[[Path], None], str]] = {
    "png": ("face.pkl", _png, "is a PNG image, not a generator checkpoint"),
    "jpeg": ("face.pkl", _jpeg, "is a JPEG image, not a generator checkpoint"),
    "hdf5": ("vgg16.pkl", _hdf5, "is an HDF5 file (VGG-16 weights?), not a generator"),
    "safetensors": (
        "model.safetensors",
        _plain_safetensors,
        "a .safetensors file without image2stylegan generator metadata",
    ),
    "list-pickle": (
        "g.pkl",
        _pickle_of([1, 2, 3]),
        "a pickle, but not a StyleGAN checkpoint (a list)",
    ),
    "dict-pickle": (
        "snapshot.pkl",
        _pickle_of({"G": None, "D": None}),
        "not a StyleGAN checkpoint (a dict with keys 'G', 'D')",
    ),
    "torch-keys": (
        "g.pt",
        _torch_of({"model": {"fc.weight": torch.zeros(2)}, "epoch": 3}),
        "a PyTorch file, but not a known generator layout (a dict with keys 'model', 'epoch')",
    ),
    "html": (
        "karras2019stylegan-ffhq-1024x1024.pkl",
        lambda p: p.write_bytes(QUOTA_PAGE),
        "is an HTML page, not a checkpoint",
    ),
    "text": ("g.pkl", lambda p: p.write_bytes(b"hello"), "first bytes: b'hello'"),
}


@pytest.mark.parametrize("kind", WRONG_FILES)
def test_wrong_type_file(kind: str, tmp_path: Path) -> None:
    name, write, expected = WRONG_FILES[kind]
    path = tmp_path / name
    write(path)
    assert expected in load_error(path)


def _rewrite_native(src: Path, dst: Path, metadata=None, tensors=None) -> Path:
    from safetensors import safe_open

    with safe_open(str(src), framework="pt") as f:
        header = dict(f.metadata())
        state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    header.update(metadata or {})
    state.update(tensors or {})
    save_file(state, str(dst), metadata=header)
    return dst


def test_native_tensors_do_not_match_config(good_files: dict[str, Path], tmp_path: Path) -> None:
    src = good_files["native"]  # tiny StyleGAN1, 8 px
    config = json.loads(read_native_header(src)["config"])
    bigger = json.dumps({**config, "resolution": 16})
    path = _rewrite_native(src, tmp_path / "res.safetensors", metadata={"config": bigger})
    assert "tensors do not match the stylegan1 config (missing synthesis_net." in load_error(path)

    wrong = {"synthesis_net.layers.1.bias": torch.zeros(5)}
    path = _rewrite_native(src, tmp_path / "shape.safetensors", tensors=wrong)
    assert "tensor synthesis_net.layers.1.bias has shape [5], the config needs [16]" in load_error(
        path
    )

    path = _rewrite_native(src, tmp_path / "arch.safetensors", metadata={"architecture": "sg9"})
    assert "unknown architecture 'sg9'" in load_error(path)

    path = _rewrite_native(src, tmp_path / "cfg.safetensors", metadata={"config": "{not json"})
    assert "invalid generator config in the header" in load_error(path)


def test_tf_pickle_with_a_wrong_shape(tmp_path: Path) -> None:
    G = tiny_stylegan1(8)
    variables = tf_variables_from_generator(G)
    variables["synthesis"]["8x8/Conv1/weight"] = np.zeros((3, 3, 8, 7), np.float32)
    path = write_stylegan1_tf_pickle(tmp_path / "tf.pkl", variables, tf_static_kwargs(G.config))
    message = load_error(path)
    assert "synthesis/8x8/Conv1/weight has shape [3, 3, 8, 7]" in message
    assert "8 px config read from the file needs [3, 3, 8, 8]" in message


# --- format from content -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "name", "detected"),
    [
        ("stylegan1-tf", "weights.pt", "pickle"),
        ("stylegan2-tf", "weights.safetensors", "pickle"),
        ("ada", "ffhq.pt", "pickle"),
        ("native", "generator.pkl", "safetensors"),
        ("rosinality", "550000.pkl", "torch"),
        ("lernapparat", "g_all.safetensors", "torch"),
    ],
)
def test_format_is_detected_from_content(
    fmt: str, name: str, detected: str, good_files: dict[str, Path], tmp_path: Path
) -> None:
    renamed = tmp_path / name
    renamed.write_bytes(good_files[fmt].read_bytes())
    assert detect_format(renamed) == detected
    G, H = i2s.load_generator(good_files[fmt]), i2s.load_generator(renamed)
    assert type(G) is type(H) and G.config == H.config
    for key, value in G.state_dict().items():
        assert torch.equal(value, H.state_dict()[key]), key
