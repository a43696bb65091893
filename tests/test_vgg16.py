"""VGG-16: both real weight layouts give the features of a direct reference computation.

The reference is a plain `F.conv2d` chain over the raw arrays as written to the files, with each
source's own input convention written out here (channel order, scale, means) and, for Keras, its
own HWIO -> OIHW conversion.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from image2stylegan.checkpoints.vgg_weights import load_vgg16, read_vgg16_file
from image2stylegan.errors import CheckpointError, WeightsError
from image2stylegan.models.vgg16 import VGG16Features
from tests.fixtures.vgg_files import (
    BLOCK_SIZES,
    VGG16_CFG,
    write_keras_vgg16_h5,
    write_lpips_linear,
    write_torchvision_vgg16,
)

ALL = tuple(f"conv{b}_{k}" for b, n in enumerate(BLOCK_SIZES, start=1) for k in range(1, n + 1))


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict:
    d = tmp_path_factory.mktemp("vgg")
    tv = d / "vgg16-397923af.pth"
    keras = d / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
    return {
        "tv": tv,
        "tv_raw": write_torchvision_vgg16(tv, seed=1),
        "keras": keras,
        "keras_raw": write_keras_vgg16_h5(keras, seed=2),
        "dir": d,
    }


def _images(dtype: torch.dtype) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return (torch.rand(2, 3, 37, 44, generator=g, dtype=torch.float64) * 2 - 1).to(dtype)


def reference_torchvision(raw: dict[str, np.ndarray], img: torch.Tensor) -> dict[str, torch.Tensor]:
    """torchvision's Sequential walked by index: conv i, ReLU i+1; RGB [0,1], ImageNet mean/std."""
    dt = img.dtype
    mean = torch.tensor([0.485, 0.456, 0.406], dtype=dt).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225], dtype=dt).view(1, 3, 1, 1)
    x = ((img + 1) / 2 - mean) / std
    out, i, block, k = {}, 0, 1, 1
    for c in VGG16_CFG:
        if c == "M":
            x = F.max_pool2d(x, 2)
            i, block, k = i + 1, block + 1, 1
            continue
        w = torch.from_numpy(raw[f"features.{i}.weight"]).to(dt)
        b = torch.from_numpy(raw[f"features.{i}.bias"]).to(dt)
        x = torch.clamp_min(F.conv2d(x, w, b, padding=1), 0)
        out[f"conv{block}_{k}"] = x
        i, k = i + 2, k + 1
    return out


def reference_keras(raw: dict[str, tuple[np.ndarray, np.ndarray]], img: torch.Tensor) -> dict:
    """Keras VGG16 with caffe preprocessing: BGR, 0-255, minus BGR means; kernels HWIO."""
    dt = img.dtype
    rgb255 = (img + 1) * 127.5
    bgr = rgb255[:, [2, 1, 0]]
    x = bgr - torch.tensor([103.939, 116.779, 123.68], dtype=dt).view(1, 3, 1, 1)
    out = {}
    for block, n in enumerate(BLOCK_SIZES, start=1):
        for k in range(1, n + 1):
            kernel, bias = raw[f"block{block}_conv{k}"]
            w = torch.from_numpy(np.transpose(kernel, (3, 2, 0, 1)).copy()).to(dt)  # OIHW
            x = F.relu(F.conv2d(x, w, torch.from_numpy(bias).to(dt), padding=1))
            out[f"conv{block}_{k}"] = x
        x = F.max_pool2d(x, kernel_size=2, stride=2)
    return out


def _max_rel_err(a: dict, b: dict) -> float:
    return max(float((a[k] - b[k]).abs().max() / b[k].abs().max()) for k in b)


@pytest.mark.parametrize("layout", ["tv", "keras"])
def test_features_equal_reference(files: dict, layout: str) -> None:
    vgg = load_vgg16(files[layout])
    assert vgg.preprocessing == ("torchvision" if layout == "tv" else "caffe")
    assert not vgg.is_random and vgg.source == str(files[layout])
    reference = reference_torchvision if layout == "tv" else reference_keras
    # float64: the mapping (names, layout, channel order, preprocessing) must be exact
    img64 = _images(torch.float64)
    ours = vgg.double()(img64, ALL)
    ref = reference(files[f"{layout}_raw"], img64)
    assert list(ours) == list(ALL)
    for name in ALL:
        assert ours[name].shape == ref[name].shape
        assert float(ref[name].abs().max()) > 0  # not a dead layer: the comparison means something
    assert _max_rel_err(ours, ref) <= 1e-12
    # float32, as used: within 1e-5 of the largest activation
    img32 = _images(torch.float32)
    assert _max_rel_err(vgg.float()(img32, ALL), reference(files[f"{layout}_raw"], img64)) <= 1e-5


def test_both_layouts_same_weights_same_features(files: dict, tmp_path: Path) -> None:
    """The same numbers in either layout load to identical parameters."""
    tv = tmp_path / "tv.pth"
    keras = tmp_path / "keras.h5"
    write_torchvision_vgg16(tv, seed=5)
    write_keras_vgg16_h5(keras, seed=5)
    a, prep_a = read_vgg16_file(tv)
    b, prep_b = read_vgg16_file(keras)
    assert (prep_a, prep_b) == ("torchvision", "caffe")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_aliases_and_paper_default_layers(files: dict) -> None:
    vgg = load_vgg16(files["tv"])
    img = _images(torch.float32)
    default = vgg(img)
    assert list(default) == ["conv1_1", "conv1_2", "conv3_2", "conv4_2"]
    assert [tuple(t.shape[1:]) for t in default.values()] == [
        (64, 37, 44), (64, 37, 44), (256, 9, 11), (512, 4, 5),
    ]  # fmt: skip
    alias = vgg(img, ("relu3_2", "block3_conv2", "conv3_2"))
    assert torch.equal(alias["relu3_2"], default["conv3_2"])
    assert torch.equal(alias["block3_conv2"], default["conv3_2"])
    assert (default["conv1_1"] >= 0).all()  # after the ReLU
    with pytest.raises(ValueError, match="unknown VGG-16 layer 'conv6_1'"):
        vgg(img, ("conv6_1",))
    with pytest.raises(ValueError, match=r"RGB images \[N, 3, H, W\]"):
        vgg(img[:, :1])


def test_forward_stops_at_deepest_requested_layer(files: dict) -> None:
    vgg = load_vgg16(files["tv"])
    vgg.conv4_3.weight.fill_(float("nan"))  # anything past conv4_2 would poison the output
    feats = vgg(_images(torch.float32), ("conv1_1", "conv4_2"))
    assert all(torch.isfinite(f).all() for f in feats.values())
    assert torch.isnan(vgg(_images(torch.float32), ("conv4_3",))["conv4_3"]).all()


def test_full_classifier_dict_and_with_top_h5_accepted(files: dict, tmp_path: Path) -> None:
    tv_full = tmp_path / "vgg16_full.pth"
    write_torchvision_vgg16(tv_full, seed=1, classifier=True)
    keras_top = tmp_path / "vgg16_weights_tf_dim_ordering_tf_kernels.h5"
    write_keras_vgg16_h5(keras_top, seed=2, top=True)
    img = _images(torch.float32)
    assert torch.equal(load_vgg16(tv_full)(img)["conv4_2"], load_vgg16(files["tv"])(img)["conv4_2"])
    assert torch.equal(
        load_vgg16(keras_top)(img)["conv4_2"], load_vgg16(files["keras"])(img)["conv4_2"]
    )


def test_random_is_explicit_seeded_and_marked() -> None:
    a, b, c = load_vgg16("random"), load_vgg16("random"), load_vgg16("random", seed=1)
    assert a.is_random and a.source == "random(seed=0)" and a.preprocessing == "torchvision"
    assert torch.equal(a.conv3_2.weight, b.conv3_2.weight)
    assert not torch.equal(a.conv3_2.weight, c.conv3_2.weight)
    assert load_vgg16("random", preprocessing="caffe").preprocessing == "caffe"
    assert not any(p.requires_grad for p in a.parameters())
    assert isinstance(a, VGG16Features) and not a.training


# ----------------------------------------------------------------------------- error messages


def test_missing_file_names_file_and_choices(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "vgg16.pth"
    with pytest.raises(CheckpointError, match=r"vgg16\.pth: no such file; --vgg takes a registry"):
        load_vgg16(missing)
    with pytest.raises(CheckpointError, match=r"no such file.*vgg16-caffe, vgg16-torchvision"):
        load_vgg16(str(missing))


@pytest.mark.parametrize(
    ("name", "filename"),
    [
        ("vgg16-caffe", "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"),
        ("vgg16-torchvision", "vgg16-397923af.pth"),
    ],
)
def test_registry_name_offline_says_which_file_address_and_where(
    monkeypatch: pytest.MonkeyPatch, name: str, filename: str
) -> None:
    import os
    import urllib.error
    import urllib.request

    def offline(*args, **kwargs):
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(WeightsError) as info:  # the test cache (IMAGE2STYLEGAN_HOME) is empty
        load_vgg16(name)
    message = str(info.value)
    assert filename in message  # which file
    assert "https://" in message  # the official address
    assert str(Path(os.environ["IMAGE2STYLEGAN_HOME"]) / filename) in message  # where to put it


def test_registry_name_of_another_kind_is_refused() -> None:
    with pytest.raises(WeightsError, match="'ffhq-1024' names generator weights, not vgg16"):
        load_vgg16("ffhq-1024")


def _save(path: Path, obj) -> Path:
    torch.save(obj, path)
    return path


def test_wrong_torch_layouts(files: dict, tmp_path: Path) -> None:
    raw = {k: torch.from_numpy(v) for k, v in files["tv_raw"].items()}
    # VGG-19: three more convs in blocks 3-5 (indices shift); a few extra keys suffice to refuse
    vgg19 = dict(raw) | {"features.30.weight": torch.zeros(512, 512, 3, 3)}
    with pytest.raises(CheckpointError, match=r"not torchvision's VGG-16 layout.*features\.30"):
        load_vgg16(_save(tmp_path / "vgg19.pth", vgg19))
    bn = dict(raw) | {"features.1.running_mean": torch.zeros(64)}
    with pytest.raises(CheckpointError, match=r"batch normalisation \(vgg16_bn\)"):
        load_vgg16(_save(tmp_path / "bn.pth", bn))
    missing = {k: v for k, v in raw.items() if k != "features.12.bias"}
    with pytest.raises(CheckpointError, match=r"missing keys: features\.12\.bias"):
        load_vgg16(_save(tmp_path / "missing.pth", missing))
    shape = dict(raw) | {"features.12.weight": torch.zeros(256, 256, 1, 1)}
    with pytest.raises(
        CheckpointError, match=r"features\.12\.weight \(conv3_2\) has shape \(256, 256, 1, 1\)"
    ):
        load_vgg16(_save(tmp_path / "shape.pth", shape))
    extra = dict(raw) | {"head.weight": torch.zeros(3)}
    with pytest.raises(CheckpointError, match=r"unexpected keys: head\.weight"):
        load_vgg16(_save(tmp_path / "extra.pth", extra))
    with pytest.raises(CheckpointError, match=r"no 'features\.\*' keys"):
        load_vgg16(_save(tmp_path / "gen.pth", {"g_ema": torch.zeros(1)}))
    lpips_file = tmp_path / "vgg_lpips.pth"
    write_lpips_linear(lpips_file, seed=0)
    with pytest.raises(CheckpointError, match="holds LPIPS linear layers, not VGG-16 weights"):
        load_vgg16(lpips_file)


def test_wrong_files(tmp_path: Path) -> None:
    html = tmp_path / "vgg16.h5"
    html.write_text("<!DOCTYPE html><html><body>Quota exceeded</body></html>")
    with pytest.raises(CheckpointError, match="is an HTML page"):
        load_vgg16(html)
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_vgg16(empty)
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00\x01junk" * 10)
    with pytest.raises(CheckpointError, match="unknown file format"):
        load_vgg16(junk)


def _edit_h5(src: Path, dst: Path, edit) -> Path:
    dst.write_bytes(src.read_bytes())
    with h5py.File(dst, "r+") as f:
        edit(f)
    return dst


def test_wrong_h5_layouts(files: dict, tmp_path: Path) -> None:
    theano = tmp_path / "vgg16_weights_th_dim_ordering_th_kernels_notop.h5"
    write_keras_vgg16_h5(theano, seed=2, theano_order=True)
    with pytest.raises(CheckpointError, match=r"channels-first kernel \(64, 3, 3, 3\) \(Theano"):
        load_vgg16(theano)

    def drop_layer(f: h5py.File) -> None:
        names = [n for n in f.attrs["layer_names"] if n != b"block4_conv2"]
        f.attrs["layer_names"] = np.array(names)
        del f["block4_conv2"]

    with pytest.raises(CheckpointError, match="VGG-16 layers missing: block4_conv2"):
        load_vgg16(_edit_h5(files["keras"], tmp_path / "missing.h5", drop_layer))

    def wrong_shape(f: h5py.File) -> None:
        del f["block3_conv2/block3_conv2_W_1:0"]
        f["block3_conv2"].create_dataset("block3_conv2_W_1:0", data=np.zeros((1, 1, 256, 256)))

    with pytest.raises(
        CheckpointError, match=r"block3_conv2 kernel has shape \(1, 1, 256, 256\), expected"
    ):
        load_vgg16(_edit_h5(files["keras"], tmp_path / "shape.h5", wrong_shape))

    def vgg19_layer(f: h5py.File) -> None:
        f.attrs["layer_names"] = np.array([*f.attrs["layer_names"], b"block3_conv4"])
        g = f.create_group("block3_conv4")
        g.attrs["weight_names"] = np.array([b"block3_conv4_W_1:0"])
        g.create_dataset("block3_conv4_W_1:0", data=np.zeros((3, 3, 256, 256), np.float32))

    with pytest.raises(CheckpointError, match="layers with weights not in VGG-16: block3_conv4"):
        load_vgg16(_edit_h5(files["keras"], tmp_path / "vgg19.h5", vgg19_layer))

    def dangling(f: h5py.File) -> None:
        del f["block1_conv1/block1_conv1_b_1:0"]

    with pytest.raises(CheckpointError, match="lists weight 'block1_conv1_b_1:0' but has no such"):
        load_vgg16(_edit_h5(files["keras"], tmp_path / "dangling.h5", dangling))
