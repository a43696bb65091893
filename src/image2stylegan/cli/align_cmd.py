"""`image2stylegan align`: FFHQ-style face alignment of files, folders and globs (SPEC sec. 3)."""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .common import echo_json, expand_image_inputs

MAX_ALIGN_SIZE = 4096  # px of the aligned square (FFHQ: 1024); its warp is 4x that a side

if TYPE_CHECKING:
    from ..align import FacePolicy


def _parse_face(ctx: click.Context, param: click.Parameter, value: str) -> FacePolicy:
    if value == "largest":
        return "largest"
    if value == "only":
        return "only"
    try:
        index = int(value)
    except ValueError:
        index = -1
    if index < 0:
        raise click.BadParameter(
            f"{value!r}: expected 'largest', 'only' or a face index (0 = largest)"
        )
    return index


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("inputs", nargs=-1, required=True, metavar="IMAGE...")
@click.option(
    "--out",
    "-o",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Output folder; writes OUT/<image stem>.png.",
)
@click.option(
    "--size",
    type=click.IntRange(min=16, max=MAX_ALIGN_SIZE),
    default=1024,
    show_default=True,
    help="Side of the aligned square in px (FFHQ: 1024).",
)
@click.option(
    "--transform-size",
    type=click.IntRange(min=16, max=4 * MAX_ALIGN_SIZE),
    default=None,
    help="Intermediate warp size before the Lanczos downsample [4 x --size; FFHQ: 4096].",
)
@click.option(
    "--face",
    default="largest",
    show_default=True,
    callback=_parse_face,
    help="Which face when a photo has several: largest, only (several is an error), or "
    "an index N (0 = largest, then by size).",
)
@click.option(
    "--padding/--no-padding",
    default=True,
    show_default=True,
    help="Fill crop areas outside the photo with FFHQ's blurred reflection (else black).",
)
@click.option("--overwrite", is_flag=True, help="Redo images whose output already exists.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or per-image lines.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
def align(
    inputs: tuple[str, ...],
    out: Path,
    size: int,
    transform_size: int | None,
    face: FacePolicy,
    padding: bool,
    overwrite: bool,
    quiet: bool,
    as_json: bool,
) -> None:
    """Crop and rotate each face photo the way FFHQ was made (dlib 68 landmarks; eyes level,
    face centred), ready for `image2stylegan embed --no-align`.

    \b
    Examples:
      image2stylegan align photo.jpg --out aligned/
      image2stylegan align photos/ 'more/*.png' --out aligned/ --size 512
      image2stylegan align group.jpg --face 1 --out aligned/   # the second-largest face
    Needs the optional extra: pip install 'image2stylegan[align]'.
    """
    from tqdm import tqdm

    from ..align import (
        AlignError,
        MultipleFacesWarning,
        apply_alignment,
        detect_faces,
        load_face_models,
        select_face,
    )
    from ..errors import ImageError
    from ..fileio import safe_name
    from ..image import load_image, save_image

    if transform_size is not None and transform_size < size:
        raise click.BadParameter(
            f"{transform_size} is below --size {size}", param_hint="--transform-size"
        )
    load_face_models()  # a missing extra stops the run once, before any image

    paths = expand_image_inputs(inputs, exclude=out)  # never re-align earlier results
    if not paths:
        raise click.UsageError("no images found in the given folders")
    results: list[dict] = []
    used_names: dict[str, Path] = {}
    bar = tqdm(paths, desc="align", unit="img", disable=quiet, file=sys.stderr, dynamic_ncols=True)

    def note(line: str) -> None:
        if not quiet:
            bar.write(line, file=sys.stderr)

    for path in bar:
        dst = out / f"{safe_name(path.stem)}.png"  # never '..', hidden or with a separator
        record: dict = {
            "input": str(path),
            "output": str(dst),
            "status": "",
            "faces": None,
            "face": None,
            "warnings": [],
            "error": None,
            "seconds": 0.0,
        }
        results.append(record)
        start = time.perf_counter()
        previous = used_names.setdefault(dst.name, path)
        if previous != path:
            record.update(
                status="failed",
                error=f"{path}: output {dst} is already taken by "
                f"{previous} (same file stem); rename one of them",
            )
        elif dst.exists() and not overwrite:
            record["status"] = "skipped"
            note(f"skipped  {dst}  (already aligned; --overwrite to redo)")
            continue
        else:
            try:
                img = load_image(path)
                faces = detect_faces(img)
                record["faces"] = len(faces)
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", MultipleFacesWarning)
                    chosen = select_face(faces, face, str(path))
                record["face"] = faces.index(chosen)
                record["warnings"] = [str(w.message) for w in caught]
                aligned = apply_alignment(
                    img,
                    chosen.quad,
                    output_size=size,
                    transform_size=transform_size,
                    enable_padding=padding,
                )
                save_image(aligned, dst)
                record["status"] = "written"
            except (AlignError, ImageError) as e:
                message = str(e)
                if str(path) not in message:
                    message = f"{path}: {message}"
                record.update(status="failed", error=message)
            except OSError as e:
                record.update(status="failed", error=f"{dst}: cannot write ({e.strerror or e})")
        record["seconds"] = round(time.perf_counter() - start, 3)
        for w in record["warnings"]:
            note(f"warning: {w}")
        if record["status"] == "failed":
            # errors are shown even with --quiet: they decide the exit code
            bar.write(f"error: {record['error']}", file=sys.stderr)
        else:
            note(f"aligned  {dst}")
    bar.close()

    failed = [r for r in results if r["status"] == "failed"]
    if as_json:
        counts = {
            s: sum(r["status"] == s for r in results) for s in ("written", "skipped", "failed")
        }
        echo_json({"out": str(out), "size": size, "counts": counts, "results": results})
    if failed:
        click.echo(
            f"{len(failed)} of {len(results)} inputs failed (see the messages above)", err=True
        )
        sys.exit(1)
