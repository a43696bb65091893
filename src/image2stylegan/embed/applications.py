"""The local editing applications of Image2StyleGAN++ (Abdal, Qin, Wonka, CVPR 2020, Sec. 7), each
a recipe over the one embed pipeline: its losses (Eq. 1 with the masks of Sec. 4.1, as the
building blocks of Sec. 6) and the frame and mask the runner records.

Building blocks (Sec. 6), with the paper's weights: masked W+ optimisation W_l (lambda_p =
lambda_mse1 = 1e-5: Eq. 1 with equal weights, our default Eq. 1), masked noise optimisation Mk_n
(lambda_mse1 = lambda_mse2 = 1e-5, lambda_p = 0: pixel MSE only, W+ frozen) and masked style
transfer M_st (lambda_s = 5e-7, i.e. 0.05 x lambda_p: `STYLE_WEIGHT`, on the Gram matrices of
VGG-16 conv3_3, Gatys et al.). Masks are applied to both images before each term
(`embed.masks`).

- Image crossover (Sec. 7.2): one code reproducing A inside a blurred mask and B outside it:
  W_l(M_blur, A) + W_l(1 - M_blur, B), then Mk_n(M_blur, A, B).
- Inpainting (Sec. 7.3): masked W_l on the known pixels, first the early W+ rows (semantic
  content of the hole), then the later rows (colours) with the early ones fixed, then Mk_n on
  the known pixels; the fill is G(w*, n*), the composite pastes the photo's known pixels over it
  with the blurred mask.
- Local style transfer (Sec. 7.5): W_l(1 - M_blur, content) + M_st(M_blur, style), then Mk_n on
  the content region: the style appears inside the mask only.
- Scribble editing (Sec. 7.4): an approximate embedding of the edited photo: the perceptual term
  sees the whole edited image (the scribbles are only a guide), the pixel term only the
  unscribbled pixels; then Mk_n on the unscribbled pixels. Starting from the photo's own
  embedding (`--init`) keeps everything but the scribbled region.

What the paper leaves open and we chose (say so in reports): the mask blur (a Gaussian of
`blur` px, default side / 32), the row split for inpainting (half the rows: 9 of 18 at 1024 px)
and how the W+ steps are divided between its two stages (evenly).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..image import pil_to_tensor
from ..losses import Image2StyleGANLoss, resize_for_perceptual
from ..models.vgg16 import VGG16Features
from .config import EmbedConfig
from .embedder import TargetLoss
from .masks import RegionLoss, blur_mask, mask_to_tensor

if TYPE_CHECKING:
    from .pipeline import EmbedPipeline
    from .runner import BatchProgress, EmbedJob, JobOutcome

__all__ = [
    "STYLE_LAYERS",
    "STYLE_WEIGHT",
    "AppOutcome",
    "GramStyleLoss",
    "LocalRecipe",
    "composite",
    "crossover",
    "crossover_recipe",
    "default_blur",
    "frame_mask",
    "inpaint",
    "inpaint_split",
    "input_frame",
    "local_style",
    "local_style_recipe",
    "run_one",
    "scribble",
    "scribble_mask",
    "scribble_recipe",
]

STYLE_LAYERS: tuple[str, ...] = ("conv3_3",)  # Sec. 4.1: Gram matrices of VGG-16 conv3_3
STYLE_WEIGHT = 5e-7 / 1e-5  # Sec. 6.3: lambda_s = 5e-7 against lambda_p = lambda_mse = 1e-5


def default_blur(resolution: int) -> float:
    """Our mask blur radius (px) when none is given: a 32nd of the side (32 px at 1024)."""
    return max(1.0, resolution / 32)


def inpaint_split(num_ws: int) -> int:
    """Rows [0, split) are "early" for inpainting (Sec. 7.3): half of them, 9 of 18."""
    return max(1, num_ws // 2)


def frame_mask(mask: Image.Image, size: int) -> Image.Image:
    """A mask given in frame coordinates, as the generator's size x size L image (bilinear)."""
    m = mask.convert("L")
    return m if m.size == (size, size) else m.resize((size, size), Image.Resampling.BILINEAR)


def composite(a: Image.Image, b: Image.Image, mask: Image.Image) -> Image.Image:
    """a where the mask is white, b where it is black, blended in between."""
    return Image.composite(a.convert("RGB"), b.convert("RGB"), mask.convert("L"))


def scribble_mask(photo: Image.Image, edited: Image.Image, threshold: int = 8) -> Image.Image:
    """White where the edited copy differs from the photo (any channel by more than
    `threshold` of 255): the strokes. Raises ValueError for different sizes or no strokes."""
    if photo.size != edited.size:
        raise ValueError(
            f"the edited image is {edited.width}x{edited.height} px, the photo "
            f"{photo.width}x{photo.height}: draw on a copy of the photo"
        )
    a = np.asarray(photo.convert("RGB"), dtype=np.int16)
    b = np.asarray(edited.convert("RGB"), dtype=np.int16)
    strokes = (np.abs(a - b).max(axis=-1) > threshold).astype(np.uint8) * 255
    if not strokes.any():
        raise ValueError("the edited image does not differ from the photo (no scribbles found)")
    return Image.fromarray(strokes, "L")


class GramStyleLoss:
    """The style loss of Eq. 1 (M_st, Sec. 6.3): squared difference of the Gram matrices of
    VGG-16 features, Gram = F F^T / (H W) per image ([C, C]), averaged over its C^2 entries and
    weighted. A `TargetLoss`; terms "style" and "total", each [N]."""

    def __init__(
        self,
        vgg: VGG16Features,
        layers: Sequence[str] = STYLE_LAYERS,
        weight: float = STYLE_WEIGHT,  # lambda_s relative to Eq. 1's weights (paper: 0.05)
        size: int | None = 256,  # the perceptual term's resolution (Sec. 5.2 of Image2StyleGAN)
    ) -> None:
        self.vgg, self.layers, self.weight, self.size = vgg, tuple(layers), float(weight), size
        self._grams: dict[str, torch.Tensor] = {}

    def _gram(self, img: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self.vgg(resize_for_perceptual(img.float(), self.size), self.layers)
        out = {}
        for name, f in feats.items():
            f = f.float().flatten(2)  # [N, C, HW]
            out[name] = f @ f.transpose(1, 2) / f.shape[-1]  # [N, C, C]
        return out

    @torch.no_grad()
    def set_target(self, target: torch.Tensor) -> None:
        self._grams = {k: v.detach() for k, v in self._gram(target).items()}

    def __call__(self, img: torch.Tensor) -> dict[str, torch.Tensor]:
        total = torch.zeros(img.shape[0], device=img.device)
        for name, g in self._gram(img).items():
            total = total + F.mse_loss(g, self._grams[name].expand_as(g), reduction="none").mean(
                dim=(1, 2)
            )
        style = self.weight * total
        return {"style": style, "total": style}


@dataclass
class LocalRecipe:
    """One Sec. 7 embedding: the frame and mask the runner records, and the losses."""

    frame: Image.Image  # target.png: what the result is compared with
    mask: Image.Image | None  # mask.png: the pixels the metrics measure (None: all)
    loss_fn: TargetLoss  # the W+ steps (masked W_l / M_st terms)
    noise_loss_fn: TargetLoss  # the noise stage (masked Mk_n)
    fingerprint: str  # the other inputs' hashes (resume safety)


def _sha(*images: Image.Image) -> str:
    h = hashlib.sha256()
    for im in images:
        h.update(im.tobytes())
    return h.hexdigest()[:16]


def _mse() -> Image2StyleGANLoss:
    return Image2StyleGANLoss(None, layers=(), mse_weight=1.0)


def _on(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    return t.to(device)


def crossover_recipe(
    eq1: TargetLoss,  # W_l's loss (Eq. 1); called for both regions, so it must be stateless
    eq1_b: TargetLoss,  # a second instance of it for B's region (each caches one target)
    a: Image.Image,  # frame A (inside the mask)
    b: Image.Image,  # frame B (outside)
    mask: Image.Image,  # frame mask, white = A
    blur: float,
    device: torch.device,
) -> LocalRecipe:
    """Sec. 7.2: W_l(M_blur, A) + W_l(1 - M_blur, B), then Mk_n(M_blur, A, B)."""
    m = mask_to_tensor(blur_mask(mask, blur)).to(device)  # [1, 1, H, W]
    ta, tb = _on(pil_to_tensor(a), device), _on(pil_to_tensor(b), device)
    loss = RegionLoss([(eq1, m, ta), (eq1_b, 1 - m, tb)])
    noise = RegionLoss([(_mse(), m, ta), (_mse(), 1 - m, tb)])
    naive = composite(a, b, mask)  # the copy-paste "two-face" of Fig. 1 (c)
    return LocalRecipe(naive, None, loss, noise, f"crossover={_sha(a, b, mask)}|blur={blur:g}")


def local_style_recipe(
    eq1: TargetLoss,
    style_loss: GramStyleLoss,
    content: Image.Image,  # the frame to keep outside the mask
    style: Image.Image,  # the frame whose style goes inside the mask
    mask: Image.Image,  # frame mask, white = where the style goes
    blur: float,
    device: torch.device,
) -> LocalRecipe:
    """Sec. 7.5: W_l(1 - M_blur, content) + M_st(M_blur, style), then Mk_n on the content."""
    m = mask_to_tensor(blur_mask(mask, blur)).to(device)
    tc, ts = _on(pil_to_tensor(content), device), _on(pil_to_tensor(style), device)
    loss = RegionLoss([(eq1, 1 - m, tc), (style_loss, m, ts)])
    noise = RegionLoss([(_mse(), 1 - m, tc)])
    keep = Image.fromarray(255 - np.asarray(mask.convert("L")), "L")
    fp = f"local-style={_sha(content, style, mask)}|blur={blur:g}|w={style_loss.weight:g}"
    return LocalRecipe(content, keep, loss, noise, fp)


def scribble_recipe(
    perceptual: TargetLoss,  # the perceptual term alone (Eq. 2, lambda_mse = 0)
    edited: Image.Image,  # the frame of the scribbled photo
    strokes: Image.Image,  # frame mask, white = scribbled pixels
    blur: float,
    device: torch.device,
) -> LocalRecipe:
    """Sec. 7.4: perceptual term on the whole edited frame, pixel term and Mk_n on the
    unscribbled pixels only (the scribbles guide, they are not copied)."""
    unscribbled = Image.fromarray(255 - np.asarray(blur_mask(strokes, blur).convert("L")), "L")
    keep = mask_to_tensor(unscribbled).to(device)
    t = _on(pil_to_tensor(edited), device)
    loss = RegionLoss([(perceptual, None, t), (_mse(), keep, t)])
    noise = RegionLoss([(_mse(), keep, t)])
    return LocalRecipe(edited, unscribbled, loss, noise, f"scribble={_sha(edited, strokes)}")


def run_one(
    pipeline: EmbedPipeline,
    job: EmbedJob,
    config: EmbedConfig,
    *,
    loss_fn: TargetLoss | None = None,  # None: the loss `config` describes (masked by the job)
    noise_loss_fn: TargetLoss | None = None,
    init: torch.Tensor | None = None,  # start code (config.init "file"); None = the run's
    record: Mapping[str, Any] | None = None,  # notes for the latent metadata
    on_report: Callable[[BatchProgress], None] | None = None,
) -> JobOutcome:
    """Embed one application's job through the pipeline (resumable, recorded, measured)."""
    embedder = pipeline.embedder(config, loss_fn=loss_fn, noise_loss_fn=noise_loss_fn)
    saved = pipeline.init
    pipeline.init = init if init is not None else saved
    try:
        (outcome,) = pipeline.run([job], embedder, record=record, on_report=on_report)
    finally:
        pipeline.init = saved
    return outcome


# --- the applications, end to end (the CLI commands and the web UI's Local edits tab) ----------


@dataclass
class AppOutcome:
    """One application's run: the embedding's outcome and the pictures written beside it."""

    outcome: JobOutcome
    pictures: dict[str, Path]  # name -> file (crossover.png, fill.png, composite.png, ...)

    @property
    def ok(self) -> bool:
        return self.outcome.status != "failed"


def input_frame(pipeline: EmbedPipeline, image: str | os.PathLike | Image.Image) -> Image.Image:
    """An input photo as the generator-sized frame `embed` would make of it."""
    from .targets import prepare_target

    return prepare_target(
        image,
        pipeline.G.img_resolution,
        align=pipeline.align,
        fit=pipeline.options.fit,
        content_size=pipeline.content_size,
    ).frame


def _source(image: str | os.PathLike | Image.Image, fallback: Path) -> Path:
    return fallback if isinstance(image, Image.Image) else Path(image)


def crossover(
    pipeline: EmbedPipeline,
    config: EmbedConfig,
    a: str | os.PathLike | Image.Image,  # inside the mask
    b: str | os.PathLike | Image.Image,  # outside
    mask: Image.Image,  # in frame coordinates (any size: resized), white = from A
    out: Path,  # the run folder: results go to out/<name>/
    name: str,
    *,
    blur: float | None = None,  # px; None = default_blur
    on_report: Callable[[BatchProgress], None] | None = None,
) -> AppOutcome:
    """Sec. 7.2 end to end; writes crossover.png = [A | B | mask | copy-paste | result]."""
    from ..image import image_strip, load_image, save_image
    from .records import OutputPaths
    from .runner import EmbedJob

    res = pipeline.G.img_resolution
    m = frame_mask(mask, res)
    fa, fb = input_frame(pipeline, a), input_frame(pipeline, b)
    blur = default_blur(res) if blur is None else blur
    recipe = crossover_recipe(
        pipeline.loss_fn(config), pipeline.loss_fn(config), fa, fb, m, blur, pipeline.device
    )
    job = EmbedJob(_source(a, out / f"{name}_a.png"), OutputPaths.folder(out / name), name,
                   align=pipeline.align, frame=recipe.frame,
                   fingerprint=recipe.fingerprint)  # fmt: skip
    record = {"application": "crossover (Image2StyleGAN++ Sec. 7.2)",
              "image_b": _source(b, Path("b.png")).name, "blur_px": blur}  # fmt: skip
    _ensure_source(job.source, fa)
    outcome = _run_recipe(pipeline, job, config, recipe, record, on_report)
    pictures: dict[str, Path] = {}
    if outcome.status != "failed":
        result = load_image(job.paths.reconstruction)
        strip = image_strip([fa, fb, m.convert("RGB"), recipe.frame, result])
        pictures["crossover"] = save_image(strip, job.out_dir / "crossover.png")
    return AppOutcome(outcome, pictures)


def inpaint(
    pipeline: EmbedPipeline,
    config: EmbedConfig,
    image: str | os.PathLike | Image.Image,
    known: Image.Image,  # the image's size, white = known pixels, black = the hole
    out: Path,
    name: str,
    *,
    split: int | None = None,  # W+ rows [0, split) first; None = inpaint_split
    blur: float | None = None,
    on_report: Callable[[BatchProgress], None] | None = None,
) -> AppOutcome:
    """Sec. 7.3 end to end: early rows, later rows + noise stage; fill.png and composite.png."""
    from PIL import ImageChops

    from ..image import load_image, save_image
    from ..latents import load_latent
    from .records import OutputPaths
    from .runner import EmbedJob

    G = pipeline.G
    split = inpaint_split(G.num_ws) if split is None else split
    if not 1 <= split < G.num_ws:
        raise ValueError(f"split layer {split}: the generator has W+ rows 0..{G.num_ws - 1}")
    source = _source(image, out / f"{name}.png")
    if isinstance(image, Image.Image):
        _ensure_source(source, image)
    steps = config.steps
    record = {"application": "inpainting (Image2StyleGAN++ Sec. 7.3)", "split_layer": split}
    # stage 1: the early rows, from the run's start (w̄ by default); hidden, not a result
    stage1 = OutputPaths.folder(out / name / ".early_rows")
    stage1 = dataclasses.replace(stage1, run_metrics=stage1.latent.parent / "metrics.csv")
    job1 = EmbedJob(source, stage1, name, mask_source=known)
    early = config.replace(steps=steps - steps // 2, noise_steps=0, w_rows=(0, split))
    first = run_one(pipeline, job1, early, record={**record, "stage": "early rows"},
                    on_report=on_report)  # fmt: skip
    if first.status == "failed":
        return AppOutcome(first, {})
    w1 = load_latent(job1.paths.latent).w
    # stage 2: the later rows from stage 1's code, then the noise stage
    job2 = EmbedJob(source, OutputPaths.folder(out / name), name, mask_source=known,
                    fingerprint=f"stage1={float(w1.double().sum()):.9g}")  # fmt: skip
    late = config.replace(steps=steps // 2, w_rows=(split, G.num_ws), init="file")
    outcome = run_one(pipeline, job2, late, init=w1, on_report=on_report,
                      record={**record, "stage": "later rows + noise"})  # fmt: skip
    pictures: dict[str, Path] = {}
    if outcome.status != "failed":
        fill = load_image(job2.paths.reconstruction)
        target = load_image(job2.paths.target)
        with Image.open(job2.paths.mask) as im:
            frame_known = im.convert("L")
        blur = default_blur(G.img_resolution) if blur is None else blur
        # the photo's weight: soft towards the hole, 0 inside it (no black from the hole)
        weight = ImageChops.multiply(blur_mask(frame_known, blur), frame_known)
        pictures["fill"] = save_image(fill, job2.out_dir / "fill.png")
        pictures["composite"] = save_image(
            composite(target, fill, weight), job2.out_dir / "composite.png"
        )
    return AppOutcome(outcome, pictures)


def local_style(
    pipeline: EmbedPipeline,
    config: EmbedConfig,
    content: str | os.PathLike | Image.Image,
    style: str | os.PathLike | Image.Image,
    mask: Image.Image,  # frame coordinates, white = where the style goes
    out: Path,
    name: str,
    *,
    blur: float | None = None,
    style_weight: float | None = None,  # None = STYLE_WEIGHT (the paper's 5e-7 / 1e-5)
    on_report: Callable[[BatchProgress], None] | None = None,
) -> AppOutcome:
    """Sec. 7.5 end to end; writes local_style.png = [content | style | mask | result]."""
    from ..image import image_strip, load_image, save_image
    from .records import OutputPaths
    from .runner import EmbedJob

    res = pipeline.G.img_resolution
    m = frame_mask(mask, res)
    fc, fs = input_frame(pipeline, content), input_frame(pipeline, style)
    blur = default_blur(res) if blur is None else blur
    weight = STYLE_WEIGHT if style_weight is None else style_weight
    style_loss = GramStyleLoss(pipeline.vgg(), weight=weight, size=config.perceptual_size)
    recipe = local_style_recipe(
        pipeline.loss_fn(config), style_loss, fc, fs, m, blur, pipeline.device
    )
    job = EmbedJob(_source(content, out / f"{name}_content.png"), OutputPaths.folder(out / name),
                   name, align=pipeline.align, frame=recipe.frame, mask_frame=recipe.mask,
                   mask_in_loss=False, fingerprint=recipe.fingerprint)  # fmt: skip
    _ensure_source(job.source, fc)
    record = {"application": "local style transfer (Image2StyleGAN++ Sec. 7.5)",
              "style_image": _source(style, Path("style.png")).name, "blur_px": blur,
              "style_weight": weight, "style_layers": list(style_loss.layers)}  # fmt: skip
    outcome = _run_recipe(pipeline, job, config, recipe, record, on_report)
    pictures: dict[str, Path] = {}
    if outcome.status != "failed":
        result = load_image(job.paths.reconstruction)
        strip = image_strip([fc, fs, m.convert("RGB"), result])
        pictures["local_style"] = save_image(strip, job.out_dir / "local_style.png")
    return AppOutcome(outcome, pictures)


def scribble(
    pipeline: EmbedPipeline,
    config: EmbedConfig,
    photo: str | os.PathLike | Image.Image,
    edited: str | os.PathLike | Image.Image,  # the photo with strokes drawn on it
    out: Path,
    name: str,
    *,
    strokes: Image.Image | None = None,  # the photo's size, white = strokes; None = the diff
    threshold: int = 8,
    blur: float | None = None,  # None = default_blur / 4
    on_report: Callable[[BatchProgress], None] | None = None,
) -> AppOutcome:
    """Sec. 7.4 end to end; writes scribble.png = [photo | edited | strokes | result].

    Raises ValueError when no strokes are found or the sizes differ."""
    from ..image import image_strip, load_image, save_image
    from .records import OutputPaths
    from .runner import EmbedJob
    from .targets import prepare_target

    res = pipeline.G.img_resolution
    src_photo = photo.convert("RGB") if isinstance(photo, Image.Image) else load_image(photo)
    src_edited = edited.convert("RGB") if isinstance(edited, Image.Image) else load_image(edited)
    if strokes is None:
        strokes = scribble_mask(src_photo, src_edited, threshold)
    target = prepare_target(src_edited, res, align=pipeline.align, fit=pipeline.options.fit,
                            content_size=pipeline.content_size, mask=strokes, blackout=False,
                            name=name)  # fmt: skip
    assert target.mask is not None
    blur = default_blur(res) / 4 if blur is None else blur
    perceptual = Image2StyleGANLoss(
        pipeline.vgg(), layers=config.layers, layer_weights=config.layer_weights,
        mse_weight=0.0, perceptual_size=config.perceptual_size,
    ).to(pipeline.device)  # fmt: skip
    recipe = scribble_recipe(perceptual, target.frame, target.mask, blur, pipeline.device)
    job = EmbedJob(_source(edited, out / f"{name}.png"), OutputPaths.folder(out / name), name,
                   align=target.aligned, frame=recipe.frame, mask_frame=recipe.mask,
                   mask_in_loss=False, fingerprint=recipe.fingerprint)  # fmt: skip
    _ensure_source(job.source, src_edited)
    record = {"application": "scribble editing (Image2StyleGAN++ Sec. 7.4)",
              "photo": _source(photo, Path("photo.png")).name, "blur_px": blur}  # fmt: skip
    outcome = _run_recipe(pipeline, job, config, recipe, record, on_report)
    pictures: dict[str, Path] = {}
    if outcome.status != "failed":
        photo_frame = input_frame(pipeline, src_photo)
        result = load_image(job.paths.reconstruction)
        strip = image_strip([photo_frame, target.frame, target.mask.convert("RGB"), result])
        pictures["scribble"] = save_image(strip, job.out_dir / "scribble.png")
    return AppOutcome(outcome, pictures)


def _run_recipe(
    pipeline: EmbedPipeline,
    job: EmbedJob,
    config: EmbedConfig,
    recipe: LocalRecipe,
    record: Mapping[str, Any],
    on_report: Callable[[BatchProgress], None] | None,
) -> JobOutcome:
    return run_one(
        pipeline, job, config, loss_fn=recipe.loss_fn, noise_loss_fn=recipe.noise_loss_fn,
        record=record, on_report=on_report,
    )  # fmt: skip


def _ensure_source(path: Path, image: Image.Image) -> None:
    """A job's source file must exist (it is hashed into the record): write in-memory inputs."""
    if not path.exists():
        from ..image import save_image

        save_image(image, path)
