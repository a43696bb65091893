"""Hostile and careless command lines (issue 11): nothing is written outside --out, two inputs never
share a record, one unusable output fails alone, no option asks for unbounded memory, and every
refusal is one line (exit 2 for usage errors, 1 when inputs fail) with no traceback.

The command-line matrices run in one Python process per group under a 3 GiB address-space cap
(`prlimit --as`, else `resource.setrlimit`), as a user's shell would run them
(`tests/cli_batch.py`); the behaviour tests run in-process.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from image2stylegan.checkpoints.native import save_native
from image2stylegan.cli.main import main
from image2stylegan.latents import load_latent, save_latent

from .conftest import REPO
from .fixtures.embedding import embedding_generator

MEMORY_CAP = 3 * 2**30  # bytes of address space for every capped command line
FAST = ["--vgg", "random", "--perceptual-size", "16", "--steps", "2", "--quiet"]


# --- fixtures and helpers ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def gen(tmp_path_factory) -> dict[str, Path]:
    """A tiny generator file (32 px, 8 x 16 codes) and latents of it, of another generator, with
    NaN, a text file named .npz."""
    root = tmp_path_factory.mktemp("hostile_gen")
    G = embedding_generator(32)
    files = {"G": save_native(G, root / "tiny.safetensors", source="test")}
    with torch.no_grad():
        ws = G.mapping(torch.randn(3, G.z_dim, generator=torch.Generator().manual_seed(1)))
    meta = {"generator": str(files["G"])}
    for i, name in enumerate("abc"):
        files[name] = save_latent(root / f"{name}.npz", ws[i], meta)
    files["six"] = save_latent(root / "six.npz", torch.zeros(6, G.w_dim), meta)  # other num_ws
    nan = ws[0].clone().numpy()
    nan[0, 0] = np.nan
    np.savez(root / "nan.npz", w=nan[None], metadata=np.array(json.dumps(meta)))
    files["nan"] = root / "nan.npz"
    files["text"] = root / "notes.npz"
    files["text"].write_text("not a latent file, just words\n")
    return files


RUN_FILES = ("metrics.csv", ".metrics.csv.lock")  # the run's table (issue 14) and its lock


def result_folders(out: Path) -> list[str]:
    """The per-image folders of an embed --out, checking that the run's metrics table is there."""
    assert (out / "metrics.csv").is_file(), sorted(p.name for p in out.iterdir())
    return sorted(p.name for p in out.iterdir() if p.name not in RUN_FILES)


def run_cli(capsys, *args: object) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def run_capped(cases: list[list[object]], cwd: Path, timeout: float = 900) -> list[dict]:
    """Run command lines (argv lists without the program name) in one capped subprocess."""
    spec = cwd / f".cases-{time.monotonic_ns()}.json"
    results = spec.with_suffix(".results.json")
    spec.write_text(json.dumps([{"argv": [str(a) for a in c], "cwd": str(cwd)} for c in cases]))
    env = {**os.environ, "TORCH_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "tests.cli_batch", str(spec), str(results)]
    prlimit = shutil.which("prlimit")
    if prlimit:
        command = [prlimit, f"--as={MEMORY_CAP}", "--", *command]
    proc = subprocess.run(
        command,
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=None if prlimit else _limit_memory,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(results.read_text())
    spec.unlink()
    results.unlink()
    return out


def assert_refused(result: dict, code: int, *fragments: str) -> None:
    """Exit `code` with exactly one `error:` line holding every fragment, and no traceback."""
    err = result["stderr"]
    assert result["code"] == code, (result["code"], err[-2000:])
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])


def tree(root: Path, skip: tuple[Path, ...] = ()) -> set[Path]:
    """Every path under `root` (outside the folders in `skip`)."""
    return {p for p in root.rglob("*") if not any(p == s or s in p.parents for s in skip)}


def latent_image(folder: Path) -> str:
    return load_latent(folder / "latent.npz").metadata["image"]


# --- item 1 + 2: output names -----------------------------------------------------------------

ODD_NAMES = {  # input file name -> the folder its record must go to
    "x.jpg": "x-jpg",
    "x.png": "x-png",
    "x-2.png": "x-2",
    "...png": None,  # stem '..': never OUT/.. (a hashed name of its own)
    "..png": None,  # stem '.': never OUT itself
    ".hidden.png": "hidden",
    "CON.png": "CON_",
    "a\nb.png": "a_b",
    "\u202egnp.exe.png": "_gnp.exe",
    "back\\slash.png": "back_slash",
    " spaced .png": "spaced",
    "ünï códe.png": "ünï códe",
}


def test_output_names_stay_inside_out_and_never_collide(gen, shared_images, tmp_path, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    photos = sorted(shared_images.glob("*.jpg"))
    for i, name in enumerate(ODD_NAMES):
        shutil.copy(photos[i % len(photos)], inputs / name)
    out = tmp_path / "parent" / "out"
    out.parent.mkdir()
    (out.parent / "losses.csv").write_text("the user's own file beside --out\n")
    before = tree(tmp_path, skip=(out,))

    code, stdout, err = run_cli(
        capsys, "embed", inputs, "-g", gen["G"], "--out", out, "--json", *FAST
    )
    assert code == 0, err
    outcomes = json.loads(stdout)["outputs"]
    assert [o["status"] for o in outcomes] == ["done"] * len(ODD_NAMES)
    assert tree(tmp_path, skip=(out,)) == before  # nothing outside --out, nothing replaced
    folders = {Path(o["source"]).name: Path(o["out_dir"]) for o in outcomes}
    assert len(set(folders.values())) == len(ODD_NAMES)  # one record per input
    for name, folder in folders.items():
        assert folder.parent == out and not folder.name.startswith(".")
        assert folder.name.isprintable() and "\\" not in folder.name
        assert latent_image(folder) == name  # each folder holds its own input's record
        if ODD_NAMES[name] is not None:
            assert folder.name == ODD_NAMES[name], (name, folder.name)
    assert folders["...png"].name != folders["..png"].name
    assert result_folders(out) == sorted(f.name for f in folders.values())

    # reruns map every input to the same folder: all of them, or any subset alone
    code, stdout, _ = run_cli(
        capsys, "embed", inputs, "-g", gen["G"], "--out", out, "--json", *FAST
    )
    assert code == 0 and {o["status"] for o in json.loads(stdout)["outputs"]} == {"skipped"}
    for alone in ("x.png", "x.jpg"):
        code, stdout, err = run_cli(
            capsys, "embed", inputs / alone, "-g", gen["G"], "--out", out, "--json", *FAST
        )
        (o,) = json.loads(stdout)["outputs"]
        assert code == 0 and o["status"] == "skipped", err
        assert Path(o["out_dir"]) == folders[alone]


def test_same_file_name_in_two_folders_and_duplicate_arguments(
    gen, shared_images, tmp_path, capsys
):
    for sub, photo in (("a", "cat_01.jpg"), ("b", "dog_01.jpg")):
        (tmp_path / sub).mkdir()
        shutil.copy(shared_images / photo, tmp_path / sub / "x.jpg")
    out = tmp_path / "out"
    a, b = tmp_path / "a" / "x.jpg", tmp_path / "b" / "x.jpg"
    args = ["embed", a, b, a, tmp_path / "a" / ".." / "a" / "x.jpg", "-g", gen["G"], "--out", out]
    code, stdout, err = run_cli(capsys, *args, "--json", *FAST)
    assert code == 0, err
    outcomes = json.loads(stdout)["outputs"]
    assert len(outcomes) == 2  # the same file given three times is embedded once
    names = [Path(o["out_dir"]).name for o in outcomes]
    assert len(set(names)) == 2 and all(n.startswith("x-jpg-") for n in names)
    code, stdout, _ = run_cli(capsys, *args, "--json", *FAST)  # order-independent, stable
    assert [Path(o["out_dir"]).name for o in json.loads(stdout)["outputs"]] == names


def test_a_folder_holding_another_images_record_is_never_reused(
    gen, shared_images, tmp_path, capsys
):
    """x.jpg embedded alone goes to OUT/x; x.png embedded later must not land in (or be skipped
    because of) x.jpg's folder."""
    shutil.copy(shared_images / "cat_01.jpg", tmp_path / "x.jpg")
    shutil.copy(shared_images / "dog_01.jpg", tmp_path / "x.png")
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "embed", tmp_path / "x.jpg", "-g", gen["G"], "--out", out, *FAST)
    assert code == 0 and latent_image(out / "x") == "x.jpg", err
    code, stdout, err = run_cli(
        capsys, "embed", tmp_path / "x.png", "-g", gen["G"], "--out", out, "--json", *FAST
    )
    (o,) = json.loads(stdout)["outputs"]
    assert code == 0 and o["status"] == "done", err
    assert Path(o["out_dir"]) == out / "x-png" and latent_image(out / "x-png") == "x.png"
    assert latent_image(out / "x") == "x.jpg"


# --- item 3: unwritable outputs fail alone -----------------------------------------------------


def test_unusable_output_folders_fail_alone(gen, shared_images, tmp_path, capsys):
    for name in ("a", "b", "c", "d"):
        shutil.copy(shared_images / "cat_01.jpg", tmp_path / f"{name}.jpg")
    out = tmp_path / "out"
    out.mkdir()
    (out / "a").write_text("a file where a folder should go")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (out / "b").symlink_to(outside, target_is_directory=True)
    (out / "c").mkdir()
    (out / "c" / ".progress").symlink_to(outside, target_is_directory=True)
    images = [tmp_path / f"{n}.jpg" for n in "abcd"]
    code, stdout, err = run_cli(
        capsys,
        "embed",
        *images,
        "-g",
        gen["G"],
        "--out",
        out,
        "--video",
        "--video-every",
        "1",
        "--json",
        *FAST,
    )
    assert code == 1 and "Traceback" not in err
    status = {Path(o["source"]).stem: o for o in json.loads(stdout)["outputs"]}
    assert status["a"]["status"] == "failed" and "is not a folder" in status["a"]["error"]
    assert status["b"]["status"] == "failed" and "symbolic link" in status["b"]["error"]
    assert status["c"]["status"] == "failed" and "symbolic link" in status["c"]["error"]
    assert status["d"]["status"] == "done" and (out / "d" / "latent.npz").is_file()
    assert list(outside.iterdir()) == []  # nothing written through the links
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 3 and "3 of 4 inputs failed" in err


def test_read_only_out_and_full_disk_fail_each_image_with_one_line(
    gen, shared_images, tmp_path, capsys, monkeypatch
):
    """Tests run as root, which ignores permissions: make the OS calls refuse instead."""
    import tempfile

    for name in ("a", "b", "c"):
        shutil.copy(shared_images / "dog_01.jpg", tmp_path / f"{name}.jpg")
    images = [tmp_path / f"{n}.jpg" for n in "abc"]
    readonly = tmp_path / "readonly"
    real_mkstemp, real_mkdir = tempfile.mkstemp, Path.mkdir

    def refusing_mkstemp(*args, dir=None, **kw):
        if dir is not None and readonly in Path(dir).parents | {Path(dir)}:
            raise PermissionError(13, "Permission denied", str(dir))
        return real_mkstemp(*args, dir=dir, **kw)

    def refusing_mkdir(self, *args, **kw):
        if readonly in self.parents:
            raise PermissionError(13, "Permission denied", str(self))
        return real_mkdir(self, *args, **kw)

    readonly.mkdir()
    monkeypatch.setattr(tempfile, "mkstemp", refusing_mkstemp)
    monkeypatch.setattr(Path, "mkdir", refusing_mkdir)
    code, stdout, err = run_cli(
        capsys, "embed", *images, "-g", gen["G"], "--out", readonly, "--json", *FAST
    )
    assert code == 1 and "Traceback" not in err
    outcomes = json.loads(stdout)["outputs"]
    assert [o["status"] for o in outcomes] == ["failed"] * 3
    assert all(
        "Permission denied" in o["error"] or "permission denied" in o["error"] for o in outcomes
    )
    assert len([x for x in err.splitlines() if x.startswith("error:")]) == 3
    monkeypatch.undo()

    # the disk fills up while b's record is written: b fails, a and c are done
    from image2stylegan.embed import records

    real_save = records.save_latent

    def full_disk(path, *a, **kw):
        if Path(path).parent.name == "b":
            raise OSError(28, "No space left on device")
        return real_save(path, *a, **kw)

    monkeypatch.setattr(records, "save_latent", full_disk)
    out = tmp_path / "out"
    code, stdout, err = run_cli(
        capsys, "embed", *images, "-g", gen["G"], "--out", out, "--json", "--batch-size", "3", *FAST
    )
    assert code == 1 and "Traceback" not in err
    status = {Path(o["source"]).stem: o for o in json.loads(stdout)["outputs"]}
    assert status["b"]["status"] == "failed" and "No space left" in status["b"]["error"]
    assert status["a"]["status"] == status["c"]["status"] == "done"
    assert not (out / "b" / "latent.npz").exists()


# --- item 10: stale results, strips, modes, text latents, existing outputs ---------------------


def test_rerun_after_the_image_changed_says_stale(gen, shared_images, tmp_path, capsys):
    photo = tmp_path / "me.jpg"
    shutil.copy(shared_images / "face_01.jpg", photo)
    out = tmp_path / "out"
    args = ["embed", photo, "-g", gen["G"], "--out", out, "--json", *FAST]
    assert run_cli(capsys, *args)[0] == 0
    first = (out / "me" / "latent.npz").read_bytes()
    shutil.copy(shared_images / "face_02.jpg", photo)  # the user edited the photo
    code, stdout, err = run_cli(capsys, *args)
    (o,) = json.loads(stdout)["outputs"]
    assert code == 1 and o["status"] == "failed"
    assert "changed since" in o["error"] and "stale" in o["error"] and "--overwrite" in o["error"]
    assert len([x for x in err.splitlines() if x.startswith("error:")]) == 1
    assert (out / "me" / "latent.npz").read_bytes() == first  # kept until told
    code, stdout, _ = run_cli(capsys, *args, "--overwrite")
    assert code == 0 and json.loads(stdout)["outputs"][0]["status"] == "done"
    from image2stylegan.fileio import sha256_file

    assert load_latent(out / "me" / "latent.npz").metadata["image_sha256"] == sha256_file(photo)


def test_strip_is_checked_before_any_rendering(gen, tmp_path, capsys):
    a, b = gen["a"], gen["b"]
    for strip, fragment in (
        ("same.mp4", "is the --out file itself"),
        ("s.mp4", "the strip is an image"),
    ):
        code, _, err = run_cli(
            capsys, "morph", a, b, "--out", tmp_path / "same.mp4", "--strip", tmp_path / strip, "-q"
        )
        assert code == 2 and fragment in err and str(tmp_path / strip) in err, err
        assert err.count("\n") == 1 and list(tmp_path.iterdir()) == []


def test_convert_follows_the_umask_like_every_output(gen, tmp_path, capsys):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    want = stat.S_IMODE(plain.stat().st_mode)  # what open() gives here (0o666 & ~umask)
    out = tmp_path / "G.safetensors"
    assert run_cli(capsys, "convert", gen["G"], "--out", out, "-q")[0] == 0
    assert stat.S_IMODE(out.stat().st_mode) == want
    assert run_cli(capsys, "generate", gen["a"], "--out", tmp_path / "a.png", "-q")[0] == 0
    assert stat.S_IMODE((tmp_path / "a.png").stat().st_mode) == want


def test_a_text_file_named_npz_is_called_a_text_file(gen, tmp_path, capsys):
    code, _, err = run_cli(capsys, "morph", gen["text"], gen["a"], "--out", tmp_path / "m.mp4")
    assert code == 1 and err.count("\n") == 1
    assert "it is a text file" in err and "pickle" not in err and str(gen["text"]) in err


def _write_commands(gen: dict[str, Path], out: Path) -> dict[str, list[object]]:
    a, b, c = gen["a"], gen["b"], gen["c"]
    return {
        "generate": ["generate", a, "--out", out],
        "morph": ["morph", a, b, "--frames", "3", "--no-strip", "--out", out.with_suffix(".gif")],
        "walk": ["walk", a, "--frames", "3", "--no-strip", "--out", out.with_suffix(".gif")],
        "style-transfer": ["style-transfer", a, b, "--out", out],
        "expression": ["expression", a, b, c, "--strengths=0:1:2", "--out", out],
        "convert": ["convert", gen["G"], "--out", out.with_suffix(".safetensors")],
    }


@pytest.mark.parametrize(
    "command", ["generate", "morph", "walk", "style-transfer", "expression", "convert"]
)
def test_no_command_replaces_an_existing_output_unless_told(gen, tmp_path, capsys, command):
    args = _write_commands(gen, tmp_path / "result.png")[command]
    target = Path(str(args[-1]))
    target.write_bytes(b"the user's earlier result")
    code, _, err = run_cli(capsys, *args, "-q")
    assert code == 2 and "exists; pass --overwrite to replace it" in err and err.count("\n") == 1
    assert target.read_bytes() == b"the user's earlier result"
    code, _, err = run_cli(capsys, *args, "-q", "--overwrite")
    assert code == 0, err
    assert target.read_bytes() != b"the user's earlier result"


def test_a_frame_folder_with_files_is_not_replaced_unless_told(gen, tmp_path, capsys):
    frames = tmp_path / "frames"
    frames.mkdir()
    (frames / "frame_0000.png").write_bytes(b"old")
    args = ["morph", gen["a"], gen["b"], "--frames", "3", "--no-strip", "--out", frames, "-q"]
    code, _, err = run_cli(capsys, *args)
    assert code == 2 and "holds files; pass --overwrite" in err
    assert run_cli(capsys, *args, "--overwrite")[0] == 0
    assert sorted(p.name for p in frames.iterdir()) == [f"frame_000{i}.png" for i in range(3)]


# --- item 4 + 6 and the held-out kind of case, under the memory cap ------------------------------


def test_hostile_options_under_a_memory_cap(gen, shared_images, tmp_path):
    """Each case: exit 2 (usage) with one line naming the option, within 3 GiB, nothing written,
    and fast (nothing huge is ever built)."""
    G, a, b, c = gen["G"], gen["a"], gen["b"], gen["c"]
    photo = shared_images / "face_01.jpg"
    out = tmp_path / "out"
    embed = ["embed", photo, "-g", G, "--out", out, *FAST]
    cases: list[tuple[list[object], str]] = [
        # item 4: seed ranges are counted, never expanded
        (["generate", "-g", G, "--seeds", "0-200000000", "--out", out], "200,000,001 seeds"),
        (["generate", "-g", G, "--seeds", "0-4294967295", "--out", out], "at most 10,000"),
        (["generate", "-g", G, "--seeds", "5-3", "--out", out], "expected seeds"),
        # item 6: a start latent of another generator, before any work
        ([*embed, "--init", gen["six"]], "six.npz"),
        # sizes and counts
        ([*embed, "--batch-size", "0"], "--batch-size"),
        ([*embed, "--steps", "-1"], "--steps"),
        ([*embed, "--steps", "1000000000000"], "steps must be 0 to 1,000,000"),
        ([*embed, "--perceptual-size", "1000000000"], "perceptual size"),
        ([*embed, "--perceptual-size", "4096"], "larger than the generator's 32 px"),
        ([*embed, "--content-size", "100000x100000"], "content size"),
        ([*embed, "--content-size", "64x64"], "does not fit"),
        ([*embed, "--lr", "nan"], "lr"),
        ([*embed, "--lr", "-1"], "lr"),
        ([*embed, "--mse-weight", "inf"], "mse_weight"),
        ([*embed, "--seed", str(2**70)], "seed"),
        (["morph", a, b, "--frames", "1000000000", "--out", out / "m.mp4"], "--frames"),
        (["morph", a, b, c, "--frames", "9000", "--out", out / "m.mp4"], "17,999 frames"),
        (["morph", a, b, "--fps", "nan", "--out", out / "m.mp4"], "--fps"),
        (["morph", a, b, "--fps", "0.0001", "--out", out / "m.gif"], "--fps"),
        (["walk", a, "--seed", str(10**30), "--out", out / "w.mp4"], "--seed"),
        (["walk", a, "--end", "inf", "--out", out / "w.mp4"], "--end"),
        (
            ["expression", a, b, c, "--strengths=0:1:1000000000", "--out", out / "e.png"],
            "1,000,000,000 values",
        ),
        (
            ["expression", a, b, c, "--strengths=" + ",".join(["0.5"] * 10001), "--out", out],
            "10,001 values; at most 10,000",
        ),
        (["generate", a, "--truncation-psi", "1e308", "--out", out / "g.png"], "--truncation-psi"),
        (["generate", a, "--truncation-psi", "nan", "--out", out / "g.png"], "--truncation-psi"),
        (  # a 257 x 257 table of 32 px cells: over 8192^2 pixels in one image
            [
                "style-transfer",
                "--grid",
                *[x for _ in range(256) for x in ("--content", a)],
                *[x for _ in range(256) for x in ("--style", b)],
                "--out",
                out / "s.png",
            ],
            "use fewer, or a folder --out",
        ),
        (
            ["style-transfer", a, b, "--from-layer", "1000000", "--out", out / "s.png"],
            "--from-layer",
        ),
        (["align", photo, "--size", "1000000000", "--out", out], "--size"),
    ]
    started = time.perf_counter()
    results = run_capped([argv for argv, _ in cases], tmp_path)
    for (argv, fragment), result in zip(cases, results, strict=True):
        assert_refused(result, 2, fragment)
        assert result["seconds"] < 30, (argv, result["seconds"])
    assert not out.exists()  # no case wrote anything
    assert time.perf_counter() - started < 600


def test_hostile_inputs_under_a_memory_cap(gen, shared_images, tmp_path):
    """Inputs that fail alone (exit 1, one line each, the rest of the batch done) and requests
    that are fine however absurd they look (exit 0), within 3 GiB."""
    G, a, b = gen["G"], gen["a"], gen["b"]
    photo = shared_images / "cat_01.jpg"
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(photo, inputs / "...png")
    (inputs / "notes.txt").write_text("not an image")  # not an image suffix: not an input
    (inputs / "fake.jpg").write_text("not an image either")
    (inputs / "bad\nname\u202e.jpg").write_text("a newline and a right-to-left override")
    os.mkfifo(tmp_path / "pipe.png")  # named: a folder's pipes are not taken as inputs
    only_text = tmp_path / "texts"
    only_text.mkdir()
    (only_text / "readme.md").write_text("# nothing to embed")
    out = tmp_path / "out"
    file_out = tmp_path / "file_out"
    file_out.write_text("a file")
    cases: list[tuple[list[object], int, list[str]]] = [
        (
            ["embed", inputs, tmp_path / "pipe.png", "-g", G, "--out", out / "batch", *FAST],
            1,
            ["fake.jpg", "pipe.png", "bad\\nname\\u202e.jpg: not an image", "3 of 4 inputs failed"],
        ),
        (["embed", only_text, "-g", G, "--out", out / "none", *FAST], 2, ["no input images"]),
        (["embed", photo, "-g", G, "--out", file_out, *FAST], 2, ["is a file"]),
        (
            ["embed", photo, "-g", G, "--out", out / "init", "--init", gen["nan"], *FAST],
            1,
            ["NaN"],
        ),
        (
            ["embed", photo, "-g", G, "--out", out / "init", "--init", gen["text"], *FAST],
            1,
            ["text file"],
        ),
        (["morph", a, gen["nan"], "--out", out / "m.mp4"], 1, ["NaN"]),
        (
            ["generate", "-g", "/dev/zero", "--seeds", "0", "--out", out / "z.png"],
            1,
            ["/dev/zero"],
        ),
        (
            ["embed", photo, "-g", G, "--out", out / "big", "--batch-size", "1000000000", *FAST],
            0,
            [],
        ),
        (
            [
                "generate",
                "-g",
                G,
                "--seeds",
                "0-3",
                "--batch-size",
                "1000000000",
                "--grid-cols",
                "1000000000",
                "--out",
                out / "g.png",
            ],
            0,
            [],
        ),
        (
            [
                "morph",
                a,
                b,
                "--frames",
                "4",
                "--strip-frames",
                "1000000000",
                "--out",
                out / "m.gif",
            ],
            0,
            [],
        ),
    ]
    before = tree(tmp_path, skip=(out,))
    results = run_capped([argv for argv, _, _ in cases], tmp_path)
    for (argv, code, fragments), result in zip(cases, results, strict=True):
        err = result["stderr"]
        assert result["code"] == code and "Traceback" not in err, (argv, err[-2000:])
        for fragment in fragments:
            assert fragment in err, (argv, fragment, err)
        if code == 2:
            assert_refused(result, 2)
    assert tree(tmp_path, skip=(out,)) == before
    batch = out / "batch"
    assert result_folders(batch) == ["image"]  # '...png' made safe, done
    assert latent_image(batch / "image") == "...png"
    lines = results[0]["stderr"].splitlines()  # one line per failed input, then the summary
    assert len(lines) == 4 and all(x.startswith("error:") for x in lines[:3])


def test_web_seed_ranges_are_counted_before_expanding():
    from image2stylegan.web.common import UserError
    from image2stylegan.web.editing import MAX_SEEDS, parse_seeds

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    for text in ("0-200000000", "0-4294967295"):
        with pytest.raises(UserError, match=f"at most {MAX_SEEDS}"):
            parse_seeds(text)
    assert time.perf_counter() - start < 0.5
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000  # KiB
    assert parse_seeds("0-3,7") == [0, 1, 2, 3, 7]


# --- item 9: serve on SIGTERM --------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_cleans_up_on_sigterm(gen, shared_images, tmp_path):
    pytest.importorskip("gradio")
    import httpx

    scratch = tmp_path / "tmp"  # the server's temporary folders go here (TMPDIR)
    scratch.mkdir()
    port = _free_port()
    env = {**os.environ, "TMPDIR": str(scratch), "TORCH_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "image2stylegan",
            "serve",
            "--generator",
            str(gen["G"]),
            "--port",
            str(port),
            "--device",
            "cpu",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = []
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Press Ctrl+C" in line:
                break
        assert any("Press Ctrl+C" in x for x in lines), "".join(lines)
        folders = sorted(p.name.rsplit("-", 1)[0] for p in scratch.iterdir())
        assert folders == ["image2stylegan-uploads", "image2stylegan-web"], folders
        with open(shared_images / "face_01.jpg", "rb") as f:
            reply = httpx.post(
                f"http://127.0.0.1:{port}/gradio_api/upload",
                files={"files": ("face.jpg", f, "image/jpeg")},
                timeout=60,
            )
        reply.raise_for_status()
        (uploaded,) = reply.json()
        uploads = next(scratch.glob("image2stylegan-uploads-*"))
        assert uploads in Path(uploaded).parents and Path(uploaded).is_file()
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, rest
    assert "Traceback" not in rest and "deleted" in rest
    assert list(scratch.iterdir()) == []  # the results folder and the uploads are gone


# --- reruns with --out inside the input folder; out of memory -----------------------------------


def test_results_inside_an_input_folder_are_never_taken_as_inputs(
    gen, shared_images, tmp_path, capsys
):
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("cat_01.jpg", "dog_01.jpg"):
        shutil.copy(shared_images / name, photos / name)
    args = ["embed", photos, "--recursive", "-g", gen["G"], "--out", photos / "emb", "--json"]
    for status in ("done", "skipped"):
        code, stdout, err = run_cli(capsys, *args, *FAST)
        outcomes = json.loads(stdout)["outputs"]
        assert code == 0 and [o["status"] for o in outcomes] == [status, status], err
    assert result_folders(photos / "emb") == ["cat_01", "dog_01"]


def test_out_of_memory_halves_the_render_batch(gen, caplog):
    from image2stylegan.checkpoints import load_generator
    from image2stylegan.edit.render import render_frames

    G = load_generator(gen["G"])
    ws = G.mapping(torch.randn(5, G.z_dim, generator=torch.Generator().manual_seed(0)))
    want = list(render_frames(G, ws, batch_size=2))  # the batches it falls back to
    real = G.synthesis

    def small_memory(batch, **kw):
        if batch.shape[0] > 2:
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried 9 GB")
        return real(batch, **kw)

    G.synthesis = small_memory
    got = list(render_frames(G, ws, batch_size=1000))
    assert len(got) == 5 and all(np.array_equal(a, b) for a, b in zip(got, want, strict=True))
    assert "out of memory at 5 codes per batch; rendering 2" in caplog.text


def test_out_of_memory_fails_that_batch_alone(gen, shared_images, tmp_path, capsys, monkeypatch):
    from image2stylegan.embed.embedder import Embedder

    real = Embedder.iterate

    def small_memory(self, targets, **kw):
        if targets.shape[0] > 1:
            raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return real(self, targets, **kw)

    monkeypatch.setattr(Embedder, "iterate", small_memory)
    images = [shared_images / n for n in ("cat_01.jpg", "dog_01.jpg", "car_01.jpg")]
    code, stdout, err = run_cli(
        capsys,
        "embed",
        *images,
        "-g",
        gen["G"],
        "--out",
        tmp_path,
        "--batch-size",
        "2",
        "--json",
        *FAST,
    )
    status = [o["status"] for o in json.loads(stdout)["outputs"]]
    assert code == 1 and status == ["failed", "failed", "done"] and "Traceback" not in err
    assert "out of memory embedding 2 image(s) together" in err and "--batch-size" in err
