"""`image2stylegan style-transfer`: crossover of two embedded latents (Sec. 4.2, Fig. 8/23)."""

from __future__ import annotations

from pathlib import Path

import click

from .edit_common import (
    CONTEXT,
    check_picture,
    edit_options,
    failures_as_errors,
    load_generator_for,
    load_latents,
    out_kind,
    report,
    stack_codes,
    write_image,
)


@click.command(context_settings=CONTEXT)
@click.argument("latents", nargs=-1, metavar="[CONTENT.npz STYLE.npz]")
@click.option(
    "--content", "contents", multiple=True, help="A content latent (repeatable; grid columns)."
)
@click.option("--style", "styles", multiple=True, help="A style latent (repeatable; grid rows).")
@click.option(
    "--grid",
    is_flag=True,
    help="Write the table of Fig. 8/23: rows = styles, columns = contents, the rendered sources "
    "on the top row and left column.",
)
@click.option(
    "--from-layer",
    type=click.IntRange(min=0),
    default=None,
    help="First layer taken from the style latent; layers before it come from the content "
    "[default: 9, the paper's split (content 4²–64², style 64² and up; the same resolutions on "
    "every StyleGAN size); half the layers on generators with 9 layers or fewer].",
)
@click.option(
    "--out",
    "-o",
    required=True,
    type=click.Path(path_type=Path),
    help="An image file (the result, or the grid), or a folder (frame_0000.png, ... one per "
    "result, row-major: style by style, content by content).",
)
@edit_options
@failures_as_errors
def style_transfer(
    latents: tuple[str, ...],
    contents: tuple[str, ...],
    styles: tuple[str, ...],
    grid: bool,
    from_layer: int | None,
    out: Path,
    generator: str | None,
    batch_size: int,
    device: str,
    overwrite: bool,
    quiet: bool,
    as_json: bool,
) -> None:
    """Style transfer by crossover: the first --from-layer layers from CONTENT, the rest from STYLE.

    Each result is rendered with its CONTENT latent's noise maps when that has them (embed
    --noise-steps); the border images of --grid with their own.

    \b
    Examples:
      image2stylegan style-transfer face.npz painting.npz --out styled.png
      image2stylegan style-transfer --grid --content a.npz --content b.npz \\
          --style s1.npz --style s2.npz --out table.png
    """
    import numpy as np

    from ..edit.noise import stack_noise
    from ..edit.render import bordered_grid, render_images
    from ..edit.style_transfer import PAPER_FROM_LAYER, style_transfer_grid
    from ..video import open_frame_writer

    if latents and (contents or styles):
        raise click.UsageError("give CONTENT STYLE as arguments or --content/--style, not both")
    if latents:
        if len(latents) != 2:
            raise click.UsageError(
                f"expected CONTENT.npz STYLE.npz, got {len(latents)} files; for several use "
                "--content/--style (with --grid)"
            )
        contents, styles = (latents[0],), (latents[1],)
    if not contents or not styles:
        raise click.UsageError("need at least one content and one style latent")
    kind = out_kind(out, ("image", "folder"), overwrite)
    if kind == "image" and not grid and (len(contents) > 1 or len(styles) > 1):
        raise click.UsageError(
            "several contents/styles make several images: add --grid or use a folder --out"
        )

    content_lats = load_latents(contents)
    style_lats = load_latents(styles)
    G, source = load_generator_for([*content_lats, *style_lats], generator, device)
    if from_layer is None:
        from_layer = PAPER_FROM_LAYER if G.num_ws > PAPER_FROM_LAYER else G.num_ws // 2
    if kind == "image" and grid:
        check_picture((len(styles) + 1) * (len(contents) + 1), G, "grid")
    if from_layer > G.num_ws:
        raise click.BadParameter(
            f"{from_layer} is beyond the generator's {G.num_ws} layers (0..{G.num_ws})",
            param_hint="--from-layer",
        )
    w_c, w_s = stack_codes(content_lats), stack_codes(style_lats)
    table = style_transfer_grid(w_c, w_s, from_layer)  # [S, C, num_ws, w_dim]
    S, C = table.shape[:2]
    noise_c = stack_noise(G, content_lats)  # [C, 1, h, w] each, or None
    cell_noise = None if noise_c is None else [t.repeat(S, 1, 1, 1) for t in noise_c]
    cells = render_images(G, table.flatten(0, 1), batch_size, noise=cell_noise)
    if kind == "folder":
        with open_frame_writer(out) as writer:
            for im in cells:
                writer.append(np.asarray(im))
        outputs = [str(out)]
    elif grid:
        top = render_images(G, w_c, batch_size, noise=noise_c)
        left = render_images(G, w_s, batch_size, noise=stack_noise(G, style_lats))
        rows = [cells[s * C : (s + 1) * C] for s in range(S)]
        write_image(bordered_grid(top, left, rows), out)
        outputs = [str(out)]
    else:
        write_image(cells[0], out)
        outputs = [str(out)]
    summary = {
        "command": "style-transfer",
        "generator": source,
        "contents": list(contents),
        "styles": list(styles),
        "from_layer": from_layer,
        "num_ws": G.num_ws,
        "images": S * C,
        "outputs": outputs,
    }
    report(
        summary,
        as_json,
        quiet,
        f"wrote {S * C} style-transfer image{'s' if S * C > 1 else ''} to {out}",
    )
