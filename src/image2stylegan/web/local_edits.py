"""The Local edits tab: the Image2StyleGAN++ applications (Sec. 7) on a photo the user paints on.

The photo is uploaded into an image editor and the region is painted with the brush (any
colour): the painted pixels are the mask (the union of the editor's layers' alpha). What the
mask means depends on the operation:
- inpaint: the painted region is the hole to fill (`embed.applications.inpaint`);
- crossover: the painted region comes from this photo, the rest from the second image;
- local style: the second image's style goes into the painted region;
- scribble: the painted strokes (with their colours) are the edit the result should follow.
The embedding is the library's (`embed.applications`, through the one embed pipeline), with
the run's W+ steps and noise-stage steps; results go to `<workdir>/local-NNNN/` in the embed
layout, and the result's latent joins the session's latent library.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from ..embed import RunOptions, embed_config
from ..embed import applications as apps
from ..embed.pipeline import EmbedPipeline
from ..embed.targets import prepare_target
from ..image import load_image
from .common import Library, UserError, add_to_library, user_errors
from .workspace import Workspace

__all__ = ["OPERATIONS", "LocalEditTab", "editor_mask"]

OPERATIONS = {
    "inpaint": "Inpaint: fill the painted region (Sec. 7.3)",
    "crossover": "Crossover: the painted region from this photo, the rest from the second image "
    "(Sec. 7.2)",
    "local-style": "Local style: the second image's style inside the painted region (Sec. 7.5)",
    "scribble": "Scribble: paint strokes in colour; the result follows them (Sec. 7.4)",
}


def editor_mask(value: Any) -> tuple[Image.Image, Image.Image, Image.Image]:
    """(photo, painted composite, mask L: 255 where anything was painted) of an ImageEditor
    value ({"background", "layers", "composite"}). Raises UserError without photo or paint."""
    if not isinstance(value, dict) or value.get("background") is None:
        raise UserError("upload a photo into the editor first")
    background = _pil(value["background"]).convert("RGB")
    painted = np.zeros((background.height, background.width), dtype=bool)
    for layer in value.get("layers") or []:
        if layer is None:
            continue
        rgba = np.asarray(_pil(layer).convert("RGBA").resize(background.size))
        painted |= rgba[..., 3] > 0
    if not painted.any():
        raise UserError("paint the region on the photo with the brush first")
    composite = value.get("composite")
    edited = _pil(composite).convert("RGB") if composite is not None else background
    mask = Image.fromarray(painted.astype(np.uint8) * 255, "L")
    return background, edited.resize(background.size), mask


def _pil(x: Any) -> Image.Image:
    if isinstance(x, Image.Image):
        return x
    if isinstance(x, (str, Path)):
        return load_image(x)
    return Image.fromarray(np.asarray(x))


class LocalEditTab:
    """Callbacks of the Local edits tab, bound to one server's `Workspace`."""

    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace

    def _pipeline(
        self, generator: str, steps: int, noise_steps: int, vgg: str, align: bool
    ) -> EmbedPipeline:
        try:
            config = embed_config("paper", steps=int(steps), noise_steps=int(noise_steps))
            options = RunOptions(
                generator=(generator or "").strip(), config=config, vgg=(vgg or "").strip()
                or "vgg16-caffe", device=self.ws.device, align=bool(align),
            )  # fmt: skip
        except ValueError as e:
            raise UserError(str(e)) from None
        G, info = self.ws.generator(options.generator)
        if G.img_resolution < 256:  # the perceptual term's 256 px resize only ever shrinks
            options = options.replace(config=config.replace(perceptual_size=G.img_resolution))
        return EmbedPipeline(options, G, info, vgg_module=self.ws.vgg(options.vgg))

    @user_errors
    def run(
        self,
        editor: Any,  # gr.ImageEditor value
        operation: str,  # a key of OPERATIONS
        second: Any,  # gr.Image(type="filepath") value: the second image (crossover, style)
        generator: str,
        steps: float,
        noise_steps: float,
        vgg: str,
        align: bool,
        library: Library | None,
    ) -> tuple[Any, list[tuple[Any, str]], str, list[str], Library]:
        """Run one application: (result, [pictures], status, files, library)."""
        if operation not in OPERATIONS:
            raise UserError(f"choose an operation ({', '.join(OPERATIONS)})")
        photo, edited, mask = editor_mask(editor)
        if operation in ("crossover", "local-style") and not second:
            raise UserError(f"{operation} needs the second image")
        pipeline = self._pipeline(generator, int(steps), int(noise_steps), vgg, align)
        config, out = pipeline.config, self.ws.new_run_dir("local")
        res = pipeline.G.img_resolution

        def in_frame(m: Image.Image) -> Image.Image:  # the painted region, aligned and fitted
            t = prepare_target(
                photo, res, align=pipeline.align, fit=pipeline.options.fit,
                content_size=pipeline.content_size, mask=m, blackout=False,
            )  # fmt: skip
            assert t.mask is not None
            return t.mask

        try:
            if operation == "inpaint":
                done = apps.inpaint(pipeline, config, photo, ImageOps.invert(mask), out, "photo")
            elif operation == "crossover":
                done = apps.crossover(
                    pipeline, config, photo, Path(second), in_frame(mask), out, "crossover"
                )
            elif operation == "local-style":
                done = apps.local_style(
                    pipeline, config, photo, Path(second), in_frame(mask), out, "local_style"
                )
            else:
                done = apps.scribble(pipeline, config, photo, edited, out, "scribble", strokes=mask)
        except ValueError as e:
            raise UserError(str(e)) from None
        if not done.ok:
            raise UserError(done.outcome.error or "the embedding failed")
        paths = done.outcome.job.paths if done.outcome.job else None
        assert paths is not None
        result = load_image(paths.reconstruction)
        pictures = [(load_image(p), name) for name, p in done.pictures.items()]
        files = [str(paths.latent), str(paths.reconstruction), *map(str, done.pictures.values())]
        status = (
            f"**{OPERATIONS[operation].split(':')[0]}** done: {config.steps} W+ steps, "
            f"{config.noise_steps} noise steps; files in `{out}`."
        )
        library = add_to_library(library, [(f"{out.name}/{operation}", paths.latent)])
        return result, pictures, status, files, library
