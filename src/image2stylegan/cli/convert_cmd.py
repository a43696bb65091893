"""`image2stylegan convert`: any supported generator checkpoint -> our native `.safetensors`.

The native file holds the weights, buffers (stored noise, w_avg) and the architecture config as
data only (SPEC section 2), so it loads fast and safely anywhere. The header's `source` field
records where the weights came from and the sha256 of that file (a JSON object).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import CheckpointError, I2SError

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


@click.command(context_settings=CONTEXT)
@click.argument("checkpoint", metavar="CHECKPOINT")
@click.option(
    "--out",
    "-o",
    required=True,
    type=click.Path(dir_okay=True, path_type=Path),
    help="The .safetensors file to write.",
)
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
@click.option("--quiet", "-q", is_flag=True, help="No download progress bar or summary line.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
def convert(checkpoint: str, out: Path, overwrite: bool, quiet: bool, as_json: bool) -> None:
    """Convert CHECKPOINT to image2stylegan's .safetensors format.

    \b
    CHECKPOINT is a registry name (see `image2stylegan weights list`), a file in any supported
    layout (StyleGAN1/StyleGAN2 TF pickle, stylegan2-ada-pytorch pickle, rosinality .pt,
    lernapparat's converted StyleGAN1 .pt, a native .safetensors), detected from its content,
    or a random:ARCH-RES[@SEED] source. Nothing in the file is executed. The output loads
    bit-identically (same weights, stored noise and w_avg) and records the source file's sha256.

    \b
    Examples:
      image2stylegan convert ffhq-1024 --out ffhq-1024.safetensors
      image2stylegan convert network-snapshot-010000.pkl --out G.safetensors --json
    """
    import torch

    from ..checkpoints import load_generator
    from ..checkpoints.native import load_native, save_native, source_record

    if out.is_dir():
        raise click.BadParameter(
            f"{str(out)!r} is a folder; give a file name such as G.safetensors",
            param_hint="--out",
        )
    if (out.exists() or out.is_symlink()) and not overwrite:  # as every command with an --out
        raise click.BadParameter(
            f"{str(out)!r} exists; pass --overwrite to replace it", param_hint="--out"
        )

    path = _resolve_input(checkpoint, quiet)
    G = load_generator(checkpoint if path is None else path)
    G.source = checkpoint
    # The header records a registry name / random: source as given, a file by name + sha256
    # only (never its path).
    record = source_record(checkpoint, path)
    digest = record["sha256"]
    try:
        save_native(G, out, source=json.dumps(record, sort_keys=True))
    except OSError as e:
        raise I2SError(f"{out}: cannot write ({e.strerror or e})") from None

    # Read the file back: the conversion must be lossless (same tensors, bit for bit).
    written = load_native(out).state_dict()
    original = G.state_dict()
    if written.keys() != original.keys() or not all(
        torch.equal(written[k], original[k].to(written[k].dtype)) for k in original
    ):
        raise CheckpointError(f"{out}: the written file does not read back identically")

    size = out.stat().st_size
    summary = {
        "command": "convert",
        "source": checkpoint,
        "source_sha256": digest,
        "out": str(out),
        "architecture": G.architecture,
        "resolution": G.img_resolution,
        "z_dim": G.z_dim,
        "w_dim": G.w_dim,
        "num_ws": G.num_ws,
        "size_bytes": size,
    }
    if as_json:
        from .common import echo_json

        echo_json(summary)
    elif not quiet:
        click.echo(
            f"wrote {out}: {G.architecture}, {G.img_resolution} px, {G.num_ws} x {G.w_dim} ws, "
            f"{_mib(size)}"
        )
