"""`image2stylegan convert --to rosinality` and delta files (`--delta --base`, `--base`).

rosinality: our generator -> `.pt` -> our reader gives the same tensors and images, bit for bit;
rosinality's own train.py file (tests/data/official) loaded and exported again is that file's
`g_ema` exactly (names, order, values). That rosinality's real model.py loads the exported files
strictly and renders the same images was checked once outside the repository (tests/data/README.md,
"Export to rosinality"). Deltas: only changed tensors are stored, applying one is exact, a wrong
base is refused naming both hashes, and the base file is never written.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

import image2stylegan as i2s
from image2stylegan.checkpoints.export import read_delta_header, tensors_sha256
from image2stylegan.checkpoints.native import read_native_header, save_native
from image2stylegan.checkpoints.registry import REGISTRY, cached_path
from image2stylegan.errors import CheckpointError
from image2stylegan.fileio import sha256_file
from image2stylegan.models.base import Generator
from tests.fixtures.stylegan1_fixtures import write_tiny_stylegan1_pickle
from tests.fixtures.stylegan2_fixtures import tiny_stylegan2
from tests.test_convert import run

OFFICIAL = Path(__file__).parent / "data" / "official"


def assert_same_state_and_images(G: Generator, H: Generator) -> None:
    """Identical class, tensors (names, dtypes, values) and outputs, exactly."""
    assert type(G) is type(H)
    a, b = G.state_dict(), H.state_dict()
    assert list(a) == list(b)
    for key in a:
        assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), key
    z = torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(G.mapping(z, 0.7), H.mapping(z, 0.7))
        ws = G.mapping(z)
        for mode in ("const", "none"):
            assert torch.equal(G.synthesis(ws, noise_mode=mode), H.synthesis(ws, noise_mode=mode))


def _native(G: Generator, path: Path, source: str = "") -> Path:
    return save_native(G, path, source=source or json.dumps({"source": "test", "sha256": None}))


# --- rosinality --------------------------------------------------------------------------------


def test_rosinality_round_trip_tiny(tmp_path: Path, capsys) -> None:
    G = tiny_stylegan2(32, seed=1)
    src = _native(G, tmp_path / "G.safetensors")
    out = tmp_path / "g.pt"
    code, stdout, err = run(capsys, "convert", str(src), "--to", "rosinality", "-o", str(out))
    assert code == 0, err
    size = out.stat().st_size
    assert stdout == (
        f"wrote {out}: rosinality Generator(size=32, style_dim=16, n_mlp=2), stylegan2, 32 px, "
        f"8 x 16 ws, {size / 2**20:.1f} MiB; its channel widths are not rosinality's stock "
        "table: edit model.py's Generator.channels to match\n"
    )
    ckpt = torch.load(out, weights_only=True)
    assert sorted(ckpt) == ["g_ema", "latent_avg"] and torch.equal(ckpt["latent_avg"], G.w_avg)
    g_ema = ckpt["g_ema"]
    kernel = torch.tensor([1.0, 3, 3, 1])
    kernel = torch.outer(kernel, kernel) / 64 * 4  # make_kernel([1, 3, 3, 1]) * factor ** 2
    kernels = [k for k in g_ema if k.endswith(".kernel")]
    assert len(kernels) == 6 and all(torch.equal(g_ema[k], kernel) for k in kernels)
    assert [tuple(g_ema[f"noises.noise_{i}"].shape) for i in range(7)] == [
        (1, 1, 4, 4), (1, 1, 8, 8), (1, 1, 8, 8), (1, 1, 16, 16), (1, 1, 16, 16),
        (1, 1, 32, 32), (1, 1, 32, 32),
    ]  # fmt: skip
    H = i2s.load_generator(out)
    assert H.config_dict() == G.config_dict()
    assert_same_state_and_images(G, H)


def test_rosinality_official_file_exports_to_itself(tmp_path: Path, capsys) -> None:
    """rosinality's train.py checkpoint -> ours -> .pt: its g_ema again, name for name, bit for
    bit; the mean latent our reader estimated (the file has none) is kept as latent_avg."""
    src = OFFICIAL / "rosinality_train_32.pt"
    out = tmp_path / "g.pt"
    code, stdout, err = run(
        capsys, "convert", str(src), "--to", "rosinality", "-o", str(out), "--json"
    )
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["to"] == "rosinality" and summary["source_sha256"] == sha256_file(src)
    assert summary["rosinality"] == {
        "size": 32, "style_dim": 32, "n_mlp": 2, "channel_multiplier": None,
    }  # fmt: skip
    official = torch.load(src, weights_only=False)["g_ema"]
    written = torch.load(out, weights_only=True)["g_ema"]
    assert list(written) == list(official)
    assert all(torch.equal(written[k], official[k]) for k in official)
    G = i2s.load_generator(src)
    H = i2s.load_generator(out)
    assert H.config_dict() == G.config_dict()
    assert_same_state_and_images(G, H)


def test_rosinality_random_source_stock_table(tmp_path: Path, capsys) -> None:
    """random:stylegan2-32 (config-f widths: 512 everywhere) fits rosinality's stock
    Generator(32, 512, 8, channel_multiplier=2); the file re-reads with the same tensors and images
    (its inferred channel_base is 16384, the same widths as config-f's 32768 at 32 px)."""
    out = tmp_path / "g.pt"
    code, stdout, err = run(
        capsys, "convert", "random:stylegan2-32", "--to", "rosinality", "-o", str(out)
    )
    assert code == 0, err
    assert "rosinality Generator(size=32, style_dim=512, n_mlp=8, channel_multiplier=2)" in stdout
    assert "stock" not in stdout
    G, H = i2s.load_generator("random:stylegan2-32"), i2s.load_generator(out)
    assert all(H.config.channels(r) == 512 for r in (4, 8, 16, 32))
    assert_same_state_and_images(G, H)


def _tiny_pickle(folder: Path) -> Path:
    return write_tiny_stylegan1_pickle(folder / "sg1.pkl", 8, seed=0)[0]


REFUSALS = {
    "stylegan1": (_tiny_pickle, "rosinality's Generator is StyleGAN2 only; this is a stylegan1"),
    "stylegan3": (
        lambda d: Path(__file__).parent / "data" / "stylegan3_t32.pkl",
        "StyleGAN2 only; this is a stylegan3 generator",
    ),
    "resnet": (
        lambda d: _native(tiny_stylegan2(16, architecture="resnet"), d / "r.safetensors"),
        "its 'resnet' architecture is not rosinality's 'skip'",
    ),
    "conditional": (
        lambda d: _native(tiny_stylegan2(16, c_dim=4), d / "c.safetensors"),
        "it is conditional (c_dim 4)",
    ),
    "z_dim": (
        lambda d: _native(tiny_stylegan2(16, z_dim=8), d / "z.safetensors"),
        "z_dim 8 != w_dim 16",
    ),
    "lr": (
        lambda d: _native(tiny_stylegan2(16, mapping_lr_multiplier=1.0), d / "l.safetensors"),
        "mapping lr multiplier 1.0, not rosinality's lr_mlp 0.01",
    ),
    "gray": (
        lambda d: _native(tiny_stylegan2(16, img_channels=1), d / "g.safetensors"),
        "it makes 1-channel images, not RGB",
    ),
    "clamp": (
        lambda d: _native(tiny_stylegan2(16, conv_clamp=256), d / "k.safetensors"),
        "it clamps conv outputs (conv_clamp 256",
    ),
    # widths 4: 17, 8: 8: min(70 // r, 17); a file stores widths only, and the table rosinality's
    # reader infers from them (base = 8 * 8 = 64) gives 16 at 4 px
    "table": (
        lambda d: _native(tiny_stylegan2(8, channel_base=70, channel_max=17), d / "t.safetensors"),
        "its channel widths {4: 17, 8: 8} are not a min(base / r, max) table",
    ),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_rosinality_refusals(case: str, tmp_path: Path, capsys) -> None:
    make, reason = REFUSALS[case]
    src = make(tmp_path)
    out = tmp_path / "out.pt"
    code, stdout, err = run(capsys, "convert", str(src), "--to", "rosinality", "-o", str(out))
    assert code == 1 and stdout == ""
    assert err.startswith(f"error: {src}: cannot be written as a rosinality .pt: ")
    assert reason in err and err.count("\n") == 1
    assert not out.exists() and not list(tmp_path.glob(".out.*"))


def test_usage_errors(tmp_path: Path, capsys) -> None:
    src = _native(tiny_stylegan2(8), tmp_path / "G.safetensors")
    out = tmp_path / "d.safetensors"
    code, _, err = run(capsys, "convert", str(src), "--delta", "-o", str(out))
    assert code == 2 and "--delta needs --base BASE" in err
    code, _, err = run(
        capsys, "convert", str(src), "--delta", "--base", str(src), "--to", "rosinality",
        "-o", str(out),
    )  # fmt: skip
    assert code == 2 and "drop --to rosinality" in err
    code, _, err = run(capsys, "convert", str(src), "--base", str(src), "-o", str(out))
    assert code == 2 and f"--base applies a delta file, and '{src}' is not one" in err
    code, _, err = run(capsys, "convert", str(src), "--to", "keras", "-o", str(out))
    assert code == 2 and "'keras' is not one of 'native', 'rosinality'" in err
    assert not out.exists()
    code, out_text, _ = run(capsys, "convert", "--help")
    assert code == 0 and "--to rosinality --out g.pt" in out_text and "--delta --base" in out_text


# --- delta files -------------------------------------------------------------------------------


def _tuned(base: Generator, seed: int = 9) -> tuple[Generator, set[str]]:
    """`base` with every synthesis conv weight nudged (as fine-tuning would); mapping kept."""
    G = copy.deepcopy(base)
    gen = torch.Generator().manual_seed(seed)
    changed = set()
    with torch.no_grad():
        for name, t in G.state_dict(keep_vars=True).items():
            if name.startswith("synthesis_network.") and name.endswith(
                ("conv0.weight", "conv1.weight")
            ):
                t.add_(0.01 * torch.randn(t.shape, generator=gen))
                changed.add(name)
    return G, changed


def _base_and_tuned(folder: Path) -> tuple[Path, Path, set[str]]:
    base = tiny_stylegan2(32, seed=2, z_dim=64, w_dim=64, mapping_layers=8)
    tuned, changed = _tuned(base)
    base_file = _native(base, folder / "base" / "base.safetensors")
    record = json.dumps({"source": "pivotal-tuning", "base_sha256": sha256_file(base_file)})
    tuned_file = _native(tuned, folder / "tuned.safetensors", source=record)
    return base_file, tuned_file, changed


def test_delta_round_trip(tmp_path: Path, capsys) -> None:
    base, tuned, changed = _base_and_tuned(tmp_path)
    base_digest, base_mtime = sha256_file(base), base.stat().st_mtime_ns
    delta = tmp_path / "out" / "d.safetensors"
    code, stdout, err = run(
        capsys, "convert", str(tuned), "--delta", "--base", str(base), "-o", str(delta), "--json"
    )
    assert code == 0, err
    summary = json.loads(stdout)
    total = len(i2s.load_generator(tuned).state_dict())
    assert summary["to"] == "delta" and summary["tensors_stored"] == len(changed) == 7
    assert summary["tensors_total"] == total and summary["base_sha256"] == base_digest
    assert summary["base"] == "base.safetensors"
    # only the changed tensors are stored: much smaller than the full file
    with safe_open(str(delta), framework="pt") as f:
        assert set(f.keys()) == changed
    assert delta.stat().st_size < 0.35 * tuned.stat().st_size
    header = read_delta_header(delta)
    assert header.source == read_native_header(tuned)["source"]
    assert header.base.sha256 == base_digest and header.base.path == "../base/base.safetensors"
    assert header.base.tensors_sha256 == tensors_sha256(i2s.load_generator(base).state_dict())

    full = tmp_path / "full.safetensors"
    code, stdout, err = run(capsys, "convert", str(delta), "--base", str(base), "-o", str(full))
    assert code == 0, err
    assert read_native_header(full) == read_native_header(tuned)  # config and source record
    assert_same_state_and_images(i2s.load_generator(tuned), i2s.load_generator(full))
    # without --base: the base is found at its recorded place; the tuned record carries over
    code, _, err = run(capsys, "convert", str(delta), "-o", str(tmp_path / "again.safetensors"))
    assert code == 0, err
    assert read_native_header(tmp_path / "again.safetensors") == read_native_header(tuned)
    # load_generator (every --generator option) finds the base at its recorded place
    assert_same_state_and_images(i2s.load_generator(tuned), i2s.load_generator(delta))
    # --to rosinality straight from a delta file
    code, _, err = run(
        capsys, "convert", str(delta), "--to", "rosinality", "-o", str(tmp_path / "g.pt")
    )
    assert code == 0, err
    assert_same_state_and_images(i2s.load_generator(tuned), i2s.load_generator(tmp_path / "g.pt"))
    assert sha256_file(base) == base_digest and base.stat().st_mtime_ns == base_mtime


def test_delta_wrong_base_refused(tmp_path: Path, capsys) -> None:
    base, tuned, _ = _base_and_tuned(tmp_path)
    delta = tmp_path / "d.safetensors"
    code, _, err = run(
        capsys, "convert", str(tuned), "--delta", "--base", str(base), "-o", str(delta)
    )
    assert code == 0, err
    base_digest = sha256_file(base)
    other = _native(
        tiny_stylegan2(32, seed=3, z_dim=64, w_dim=64, mapping_layers=8), tmp_path / "o.safetensors"
    )
    other_digest = sha256_file(other)
    out = tmp_path / "full.safetensors"
    code, _, err = run(capsys, "convert", str(delta), "--base", str(other), "-o", str(out))
    assert code == 1 and err.count("\n") == 1 and not out.exists()
    assert err == (
        f"error: {delta}: made against base 'base.safetensors' (sha256 {base_digest}), but "
        f"{other} has sha256 {other_digest}; give the base it was made from\n"
    )
    # a different architecture/config: refused when making a delta
    small = _native(tiny_stylegan2(16, seed=3), tmp_path / "small.safetensors")
    code, _, err = run(
        capsys, "convert", str(tuned), "--delta", "--base", str(small), "-o", str(out)
    )
    assert code == 1 and err.count("\n") == 1 and "the base is a different network" in err
    assert not out.exists()
    # load_generator: the recorded base replaced by another file -> both hashes, how to apply
    other.replace(base)
    with pytest.raises(CheckpointError) as info:
        i2s.load_generator(delta)
    message = str(info.value)
    assert base_digest in message and other_digest in message and "\n" not in message
    assert f"apply it with `image2stylegan convert {delta} --base BASE" in message
    # ... and removed: where it looked, how to apply
    base.unlink()
    with pytest.raises(CheckpointError, match=r"is not at .*base\.safetensors; apply it with"):
        i2s.load_generator(delta)


def test_delta_against_a_random_source(tmp_path: Path, capsys) -> None:
    """A random: base has no file: the delta records the source and its tensors' sha256, and
    loads anywhere (the base is rebuilt from the seed)."""
    base = i2s.load_generator("random:stylegan2-8@1")
    tuned = copy.deepcopy(base)
    with torch.no_grad():
        tuned.synthesis_network.b8.torgb.bias.add_(0.5)
    src = _native(tuned, tmp_path / "tuned.safetensors")
    delta = tmp_path / "d.safetensors"
    code, stdout, err = run(
        capsys, "convert", str(src), "--delta", "--base", "random:stylegan2-8@1", "-o", str(delta)
    )
    assert code == 0, err
    size = delta.stat().st_size
    assert stdout == (
        f"wrote {delta}: delta of 1 of {len(base.state_dict())} tensors against "
        f"'random:stylegan2-8@1', stylegan2, 8 px, 4 x 512 ws, {size / 2**20:.1f} MiB\n"
    )
    assert size < 2000 < src.stat().st_size
    assert read_delta_header(delta).base.sha256 is None
    assert_same_state_and_images(tuned, i2s.load_generator(delta))
    code, _, err = run(
        capsys, "convert", str(delta), "--base", "random:stylegan2-8@2", "-o", str(tmp_path / "x")
    )
    assert code == 1 and "made against base 'random:stylegan2-8@1' (sha256 tensors " in err
    assert "the given base has tensors sha256 " in err


def test_delta_against_a_registry_name(tmp_path: Path, monkeypatch, capsys) -> None:
    """A registry base is recorded by name and found again by name (cached file placed by hand)."""
    G = tiny_stylegan2(16, seed=4)
    path = cached_path("ffhq-1024")
    _native(G, path)
    data = path.read_bytes()
    entry = dataclasses.replace(
        REGISTRY["ffhq-1024"], size=len(data), sha256=hashlib.sha256(data).hexdigest()
    )
    monkeypatch.setitem(REGISTRY, "ffhq-1024", entry)
    tuned, _ = _tuned(G)
    src = _native(tuned, tmp_path / "tuned.safetensors")
    delta = tmp_path / "d.safetensors"
    code, _, err = run(
        capsys, "convert", str(src), "--delta", "--base", "ffhq-1024", "-o", str(delta)
    )
    assert code == 0, err
    header = read_delta_header(delta)
    assert header.base.name == "ffhq-1024" and header.base.path is None
    assert header.base.sha256 == entry.sha256
    assert_same_state_and_images(tuned, i2s.load_generator(delta))
    assert path.read_bytes() == data
