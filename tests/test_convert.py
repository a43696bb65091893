"""`image2stylegan convert`: every source format -> .safetensors -> the same generator, bit for bit.

Also the command line around it: summary line and --json, the recorded source sha256, refusal to
overwrite, usage errors, and the top-level help.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

import image2stylegan as i2s
from image2stylegan.checkpoints.native import read_native_header
from image2stylegan.checkpoints.registry import REGISTRY, cached_path
from image2stylegan.cli.main import COMMANDS, main
from image2stylegan.fileio import sha256_file
from image2stylegan.models.base import Generator
from tests.fixtures.stylegan1_fixtures import (
    tf_variables_from_generator,
    tiny_stylegan1,
    write_lernapparat_pt,
    write_tiny_stylegan1_pickle,
)
from tests.fixtures.stylegan2_fixtures import (
    ada_init_kwargs,
    ada_tensors_from_generator,
    tiny_stylegan2,
    write_ada_pickle_file,
    write_reference_checkpoint,
)


def _ada(folder: Path) -> Path:
    G = tiny_stylegan2(16, seed=3, architecture="resnet")
    return write_ada_pickle_file(
        folder / "ada.pkl", ada_tensors_from_generator(G), ada_init_kwargs(G.config)
    )


# format -> writer of a small checkpoint in that official layout
SOURCES: dict[str, Callable[[Path], Path]] = {
    "stylegan1-tf": lambda d: write_tiny_stylegan1_pickle(d / "sg1.pkl", 16, seed=2)[0],
    "lernapparat": lambda d: write_lernapparat_pt(
        d / "g_all.pt", tf_variables_from_generator(tiny_stylegan1(16, seed=4))
    ),
    "ada": _ada,
    "ada-fp16-clamp": lambda d: write_reference_checkpoint("ada_fp16clamp64", d / "fp16.pkl"),
    "stylegan2-tf": lambda d: write_reference_checkpoint("tf_skip64", d / "sg2.pkl"),
    "rosinality": lambda d: write_reference_checkpoint("rosinality_64", d / "ros.pt"),
}


def run(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main([*args])
    out, err = capsys.readouterr()
    return info.value.code, out, err


def assert_same_generator(G: Generator, H: Generator) -> None:
    """Identical class, config, state dict and outputs (exact equality, not closeness)."""
    assert type(G) is type(H) and G.config_dict() == H.config_dict()
    a, b = G.state_dict(), H.state_dict()
    assert list(a) == list(b)
    for key in a:
        assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), key
    z = torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for psi, cutoff in ((1.0, None), (0.7, None), (0.5, 2)):
            assert torch.equal(G.mapping(z, psi, cutoff), H.mapping(z, psi, cutoff))
        ws = G.mapping(z)
        for mode in ("const", "none"):
            assert torch.equal(G.synthesis(ws, noise_mode=mode), H.synthesis(ws, noise_mode=mode))


@pytest.mark.parametrize("fmt", SOURCES)
def test_round_trip_is_bit_identical(fmt: str, tmp_path: Path, capsys) -> None:
    src = SOURCES[fmt](tmp_path)
    out = tmp_path / "out" / "G.safetensors"
    code, stdout, err = run(capsys, "convert", str(src), "--out", str(out), "--json")
    assert code == 0, err
    summary = json.loads(stdout)
    G, H = i2s.load_generator(src), i2s.load_generator(out)
    assert_same_generator(G, H)
    digest = sha256_file(src)
    assert summary == {
        "command": "convert",
        "source": str(src),
        "source_sha256": digest,
        "out": str(out),
        "architecture": G.architecture,
        "resolution": G.img_resolution,
        "z_dim": G.z_dim,
        "w_dim": G.w_dim,
        "num_ws": G.num_ws,
        "size_bytes": out.stat().st_size,
    }
    header = read_native_header(out)
    # the file's name and sha256 only: no folder names of the machine that converted it
    assert json.loads(header["source"]) == {"sha256": digest, "file": src.name}
    assert str(src.parent) not in header["source"]
    assert sorted(p.name for p in out.parent.iterdir()) == ["G.safetensors"]  # no temp files


def test_summary_line_and_overwrite(tmp_path: Path, capsys) -> None:
    first = write_tiny_stylegan1_pickle(tmp_path / "a.pkl", 16, seed=0)[0]
    second = write_tiny_stylegan1_pickle(tmp_path / "b.pkl", 16, seed=1)[0]
    out = tmp_path / "G.safetensors"
    code, stdout, err = run(capsys, "convert", str(first), "--out", str(out))
    assert code == 0, err
    size = out.stat().st_size
    assert stdout == f"wrote {out}: stylegan1, 16 px, 6 x 32 ws, {size / 2**20:.1f} MiB\n"
    before = out.read_bytes()

    code, stdout, err = run(capsys, "convert", str(second), "--out", str(out))
    assert code == 2 and stdout == ""  # a usage error, one line, as in every command's --out
    assert err == (
        f"error: Invalid value for --out: '{out}' exists; pass --overwrite to replace it "
        "(see `image2stylegan convert --help`)\n"
    )
    assert out.read_bytes() == before

    code, _, err = run(capsys, "convert", str(second), "--out", str(out), "--overwrite", "-q")
    assert code == 0, err
    assert out.read_bytes() != before
    assert_same_generator(i2s.load_generator(second), i2s.load_generator(out))


def test_registry_name_records_the_file_and_its_sha256(tmp_path: Path, monkeypatch, capsys):
    """A registry name converts its cached file (placed by hand here: no test goes online)."""
    G = tiny_stylegan1(16, seed=5)
    path = cached_path("ffhq-1024")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_lernapparat_pt(path, tf_variables_from_generator(G))
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    entry = dataclasses.replace(REGISTRY["ffhq-1024"], size=len(data), sha256=digest)
    monkeypatch.setitem(REGISTRY, "ffhq-1024", entry)
    out = tmp_path / "ffhq.safetensors"
    code, stdout, err = run(capsys, "convert", "ffhq-1024", "--out", str(out), "--json")
    assert code == 0, err
    assert json.loads(stdout)["source_sha256"] == digest
    record = json.loads(read_native_header(out)["source"])
    assert record == {"source": "ffhq-1024", "sha256": digest, "file": path.name}
    assert_same_generator(i2s.load_generator("ffhq-1024"), i2s.load_generator(out))


def test_random_source(tmp_path: Path, capsys) -> None:
    out = tmp_path / "random.safetensors"
    code, stdout, err = run(capsys, "convert", "random:stylegan2-8@1", "-o", str(out), "--json")
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["source_sha256"] is None and summary["num_ws"] == 4
    assert json.loads(read_native_header(out)["source"]) == {
        "source": "random:stylegan2-8@1",
        "sha256": None,
    }
    assert_same_generator(i2s.load_generator("random:stylegan2-8@1"), i2s.load_generator(out))


def test_errors(tmp_path: Path, capsys) -> None:
    out = tmp_path / "G.safetensors"
    bad = tmp_path / "page.pkl"
    bad.write_bytes(b"<html><body>Quota exceeded</body></html>")
    code, _, err = run(capsys, "convert", str(bad), "--out", str(out))
    assert code == 1 and err.startswith(f"error: {bad}: is an HTML page") and err.count("\n") == 1
    code, _, err = run(capsys, "convert", str(tmp_path / "missing.pkl"), "--out", str(out))
    assert code == 1 and err == f"error: {tmp_path / 'missing.pkl'}: no such file\n"
    code, _, err = run(capsys, "convert", "random:stylegan9-8", "--out", str(out))
    assert code == 1 and "unknown architecture 'stylegan9'" in err
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["page.pkl"]

    code, _, err = run(capsys, "convert", str(bad))  # no --out
    assert code == 2 and "Missing option '--out'" in err
    code, _, err = run(capsys, "convert", str(bad), "--out", str(tmp_path))
    assert code == 2 and "is a folder" in err


def test_help(capsys) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0
    listed = {line.split()[0] for line in out.split("Commands:")[1].splitlines() if line.strip()}
    assert listed == set(COMMANDS) and "convert" in listed
    code, out, _ = run(capsys, "convert", "--help")
    assert code == 0 and "--overwrite" in out and "--json" in out and "random:" in out
    code, _, err = run(capsys, "no-such-command")
    assert code == 2 and "No such command 'no-such-command'" in err


def test_save_native_records_no_path(tmp_path: Path) -> None:
    """save_native's default `source` (G.source, here a path to a file in a private folder)
    keeps the file's name and sha256 only."""
    from image2stylegan.checkpoints.native import save_native

    folder = tmp_path / "private-home-folder"
    folder.mkdir()
    src = write_tiny_stylegan1_pickle(folder / "snapshot.pkl", 8, seed=2)[0]
    out = save_native(i2s.load_generator(src), tmp_path / "g.safetensors")
    header = read_native_header(out)["source"]
    assert json.loads(header) == {"file": "snapshot.pkl", "sha256": sha256_file(src)}
    assert "private-home-folder" not in out.read_bytes().decode("latin-1")
