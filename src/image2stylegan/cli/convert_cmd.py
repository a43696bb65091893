"""`image2stylegan convert`: any supported generator checkpoint -> our native `.safetensors`, a
rosinality stylegan2-pytorch `.pt` (`--to rosinality`), or a delta file against a base (`--delta
--base BASE`); `--base BASE` alone applies a delta file.

The native file holds the weights, buffers (stored noise, w_avg) and the architecture config as
data only (SPEC section 2), so it loads fast and safely anywhere. The header's `source` field
records where the weights came from and the sha256 of that file (a JSON object). The exports
live in checkpoints/export.py; this module parses options, writes and reads back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ..errors import CheckpointError, I2SError
from ..models.base import Generator

CONTEXT = {"help_option_names": ["-h", "--help"]}


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


def _resolve_input(src: str, quiet: bool) -> Path | None:
    """The file `src` names (a registry name is downloaded when missing); None for `random:`."""
    from ..checkpoints.random_generators import is_random_source
    from ..checkpoints.registry import is_registry_name, resolve_weights

    if is_random_source(src):
        return None
    if is_registry_name(src) and not Path(src).exists():
        return resolve_weights(src, kind="generator", progress=not quiet)
    return Path(src)


def _input_sha256(path: Path | None) -> str | None:
    from ..fileio import sha256_file

    return sha256_file(path) if path is not None else None


def _safetensors_kind(path: Path | None) -> str | None:
    """'delta' or 'native' for a .safetensors file of ours (by content), else None."""
    from ..checkpoints.export import is_delta_file
    from ..checkpoints.loader import detect_format

    if path is None or detect_format(path) != "safetensors":
        return None
    return "delta" if is_delta_file(path) else "native"


def _source_json(checkpoint: str, path: Path | None) -> str:
    """The `source` record for a file made from CHECKPOINT: a delta file's own record (that of
    the tuned generator) is carried over; anything else as `source_record` makes it."""
    from ..checkpoints.export import read_delta_header
    from ..checkpoints.native import source_record

    if path is not None and _safetensors_kind(path) == "delta":
        return read_delta_header(path).source
    return json.dumps(source_record(checkpoint, path), sort_keys=True)


def _tuned_source_json(checkpoint: str, path: Path | None) -> str:
    """The tuned generator's record for a delta: a native file's header `source` as it is."""
    from ..checkpoints.native import read_native_header

    if path is not None and _safetensors_kind(path) == "native":
        return read_native_header(path)["source"]
    return _source_json(checkpoint, path)


def _load_base(base: str, quiet: bool) -> tuple[Generator, Path | None]:
    from ..checkpoints import load_generator

    base_path = _resolve_input(base, quiet)
    return load_generator(base if base_path is None else base_path), base_path


def _read_input(
    checkpoint: str, path: Path | None, base: str | None, quiet: bool
) -> tuple[Generator, str]:
    """CHECKPOINT as a generator (a delta applied to --base when given) and its source record."""
    from ..checkpoints import load_generator
    from ..checkpoints.export import apply_delta

    if base is not None:
        if _safetensors_kind(path) != "delta":
            raise click.UsageError(
                f"--base applies a delta file, and {checkpoint!r} is not one (make a delta "
                "with --delta --base BASE)"
            )
        assert path is not None
        G_base, base_path = _load_base(base, quiet)
        G = apply_delta(path, G_base, base_path)
    else:
        G = load_generator(checkpoint if path is None else path)
    G.source = checkpoint
    return G, _source_json(checkpoint, path)


def _same_state(a: Generator, b: Generator) -> bool:
    import torch

    x, y = a.state_dict(), b.state_dict()
    return x.keys() == y.keys() and all(
        x[k].dtype == y[k].dtype and torch.equal(x[k], y[k]) for k in x
    )


def _describe(G: Generator) -> dict[str, Any]:
    return {
        "architecture": G.architecture,
        "resolution": G.img_resolution,
        "z_dim": G.z_dim,
        "w_dim": G.w_dim,
        "num_ws": G.num_ws,
    }


def _write_native(G: Generator, checkpoint: str, out: Path, record: str) -> dict[str, Any]:
    """Today's conversion: `save_native`, then read back bit for bit."""
    import torch

    from ..checkpoints.native import load_native, save_native

    # The header records a registry name / random: source as given, a file by name + sha256
    # only (never its path).
    try:
        save_native(G, out, source=record)
    except OSError as e:
        raise I2SError(f"{out}: cannot write ({e.strerror or e})") from None

    # Read the file back: the conversion must be lossless (same tensors, bit for bit).
    written = load_native(out).state_dict()
    original = G.state_dict()
    if written.keys() != original.keys() or not all(
        torch.equal(written[k], original[k].to(written[k].dtype)) for k in original
    ):
        raise CheckpointError(f"{out}: the written file does not read back identically")
    return _describe(G)


def _write_rosinality(G: Generator, checkpoint: str, out: Path) -> dict[str, Any]:
    """`--to rosinality`: the .pt, read back by our rosinality reader bit for bit."""
    from ..checkpoints.export import (
        check_rosinality_exportable,
        rosinality_arguments,
        save_rosinality,
    )
    from ..checkpoints.loader import read_generator_file
    from ..models.stylegan2 import StyleGAN2Generator

    check_rosinality_exportable(G, checkpoint)
    assert isinstance(G, StyleGAN2Generator)
    try:
        save_rosinality(G, out, checkpoint)
    except OSError as e:
        raise I2SError(f"{out}: cannot write ({e.strerror or e})") from None
    if not _same_state(read_generator_file(out), G):
        raise CheckpointError(f"{out}: the written file does not read back identically")
    return {"to": "rosinality", **_describe(G), "rosinality": rosinality_arguments(G)}


def _write_delta(
    checkpoint: str, path: Path | None, base: str, out: Path, quiet: bool
) -> dict[str, Any]:
    """`--delta --base BASE`: the changed tensors, then applied back onto BASE and compared."""
    from ..checkpoints import load_generator
    from ..checkpoints.export import apply_delta, base_record, save_delta

    tuned = load_generator(checkpoint if path is None else path)
    G_base, base_path = _load_base(base, quiet)
    info = base_record(base, base_path, G_base, out)
    try:
        _, stored = save_delta(tuned, G_base, info, out, _tuned_source_json(checkpoint, path))
    except OSError as e:
        raise I2SError(f"{out}: cannot write ({e.strerror or e})") from None
    if not _same_state(apply_delta(out, G_base, base_path), tuned):
        raise CheckpointError(f"{out}: the written delta does not apply back identically")
    return {
        "to": "delta",
        **_describe(tuned),
        "base": info.name,
        "base_sha256": info.sha256,
        "tensors_stored": stored,
        "tensors_total": len(tuned.state_dict()),
    }


def _summary_line(summary: dict[str, Any]) -> str:
    s = summary
    what = f"{s['architecture']}, {s['resolution']} px, {s['num_ws']} x {s['w_dim']} ws"
    size = _mib(s["size_bytes"])
    if s.get("to") == "delta":
        return (
            f"wrote {s['out']}: delta of {s['tensors_stored']} of {s['tensors_total']} tensors "
            f"against '{s['base']}', {what}, {size}"
        )
    if s.get("to") == "rosinality":
        args = dict(s["rosinality"])
        if args["channel_multiplier"] is None:
            del args["channel_multiplier"]
            note = "; its channel widths are not rosinality's stock table: edit model.py's "
            note += "Generator.channels to match"
        else:
            note = ""
        call = ", ".join(f"{k}={v}" for k, v in args.items())
        return f"wrote {s['out']}: rosinality Generator({call}), {what}, {size}{note}"
    return f"wrote {s['out']}: {what}, {size}"


@click.command(context_settings=CONTEXT)
@click.argument("checkpoint", metavar="CHECKPOINT")
@click.option(
    "--out",
    "-o",
    required=True,
    type=click.Path(dir_okay=True, path_type=Path),
    help="The file to write (.safetensors; .pt with --to rosinality).",
)
@click.option(
    "--to",
    "target",
    type=click.Choice(["native", "rosinality"]),
    default="native",
    show_default=True,
    help="native: our .safetensors; rosinality: a stylegan2-pytorch .pt ({'g_ema', "
    "'latent_avg'}, as e4e / pSp also load), StyleGAN2 'skip' generators only.",
)
@click.option(
    "--delta",
    is_flag=True,
    help="Write only the tensors of CHECKPOINT that differ from --base (a delta file).",
)
@click.option(
    "--base",
    metavar="BASE",
    default=None,
    help="The base generator (any CHECKPOINT form): with --delta, what the delta is made "
    "against; without, applies the delta file CHECKPOINT to it (its sha256 is checked).",
)
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
@click.option("--quiet", "-q", is_flag=True, help="No download progress bar or summary line.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
def convert(
    checkpoint: str,
    out: Path,
    target: str,
    delta: bool,
    base: str | None,
    overwrite: bool,
    quiet: bool,
    as_json: bool,
) -> None:
    """Convert CHECKPOINT to image2stylegan's .safetensors format (or --to rosinality).

    \b
    CHECKPOINT is a registry name (see `image2stylegan weights list`), a file in any supported
    layout (StyleGAN1/StyleGAN2 TF pickle, stylegan2-ada-pytorch pickle, rosinality .pt,
    lernapparat's converted StyleGAN1 .pt, a native .safetensors, a delta file), detected from
    its content, or a random:ARCH-RES[@SEED] source. Nothing in the file is executed. The output
    loads bit-identically (same weights, stored noise and w_avg) and records the source file's
    sha256; every output is read back and compared before the command succeeds.

    \b
    A delta file (--delta --base BASE) stores only the tensors that differ from BASE (e.g. a
    fine-tuned generator's synthesis weights), with BASE's name and sha256. It loads wherever a
    generator is accepted when its base can be found (a registry name, a random: source, or the
    base file at its recorded place); else apply it with --base.

    \b
    Examples:
      image2stylegan convert ffhq-1024 --out ffhq-1024.safetensors
      image2stylegan convert network-snapshot-010000.pkl --out G.safetensors --json
      image2stylegan convert G.safetensors --to rosinality --out g.pt
      image2stylegan convert tuned.safetensors --delta --base ffhq-1024 --out d.safetensors
      image2stylegan convert d.safetensors --base ffhq-1024 --out tuned.safetensors
    """
    if out.is_dir():
        raise click.BadParameter(
            f"{str(out)!r} is a folder; give a file name such as G.safetensors",
            param_hint="--out",
        )
    if (out.exists() or out.is_symlink()) and not overwrite:  # as every command with an --out
        raise click.BadParameter(
            f"{str(out)!r} exists; pass --overwrite to replace it", param_hint="--out"
        )
    if delta and base is None:
        raise click.UsageError("--delta needs --base BASE: the generator the delta is made against")
    if delta and target != "native":
        raise click.UsageError("--delta writes a .safetensors delta file; drop --to rosinality")

    path = _resolve_input(checkpoint, quiet)
    if delta:
        assert base is not None
        summary = _write_delta(checkpoint, path, base, out, quiet)
    else:
        G, record = _read_input(checkpoint, path, base, quiet)
        if target == "rosinality":
            summary = _write_rosinality(G, checkpoint, out)
        else:
            summary = _write_native(G, checkpoint, out, record)
    summary = {
        "command": "convert",
        "source": checkpoint,
        "source_sha256": _input_sha256(path),
        "out": str(out),
        **summary,
        "size_bytes": out.stat().st_size,
    }
    if as_json:
        from .common import echo_json

        echo_json(summary)
    elif not quiet:
        click.echo(_summary_line(summary))
