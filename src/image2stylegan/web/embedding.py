"""The Embed tab: Algorithm 1 on uploaded images, streamed to the browser while it runs.

The embedding is the embed runner the CLI runs (`EmbedPipeline.iterate`, embed/runner.py): the
same targets, batches and per-image records. `EmbedTab.run` is a generator callback: gradio sends
each value it yields to the browser, so every `preview_every` steps the page shows the current
reconstructions beside their targets, the step / loss / speed line and the loss curve. The Stop
button sets this session's stop flag, which the runner polls at every report: the batch in
progress is finished from the latents reached so far and saved (their metadata records
`stopped_early`). Results go to `<workdir>/embed-NNNN/` in the runner's flat layout:
`<name>.npz` (a latent file, SPEC section 4, with the metadata the CLI writes for the same
settings), `<name>_target.png` (the exact image the loss saw), `<name>_reconstruction.png` and
`<name>_losses.csv`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gradio as gr
import torch
from PIL import Image

from ..embed import PRESETS, EmbedConfig, RunOptions, embed_config
from ..embed.embedder import StepReport
from ..embed.generators import default_align
from ..embed.options import check_run_fits
from ..embed.options import parse_perceptual_size as parse_size
from ..embed.pipeline import EmbedPipeline
from ..embed.runner import BatchDone, BatchProgress, EmbedJob, JobOutcome, plan_jobs
from ..image import image_grid, tensor_to_pil
from .common import (
    Library,
    UserError,
    add_to_library,
    file_paths,
    loss_curve,
    session_id,
    user_errors,
    user_errors_stream,
)
from .workspace import Workspace

__all__ = ["VGG_CHOICES", "EmbedTab", "parse_perceptual_size", "preset_fields"]

# (label, value) pairs of the VGG dropdown; a file path may be typed in too.
VGG_CHOICES = [
    ("vgg16-caffe: the original VGG-16 weights (the paper's)", "vgg16-caffe"),
    ("vgg16-torchvision: torchvision's ImageNet weights", "vgg16-torchvision"),
    ("random: untrained weights, for testing only", "random"),
]
LOSS_CHOICES = ["perceptual+mse", "perceptual", "mse", "lpips", "perceptual+mse+lpips"]
PERCEPTUAL_SIZE_CHOICES = ["256", "512", "full"]


def preset_fields(preset: str) -> dict[str, Any]:
    """The UI fields a preset sets: steps, space, lr, loss, perceptual size, noise, init."""
    cfg = PRESETS[preset]
    return {
        "steps": cfg.steps,
        "space": cfg.space,
        "lr": cfg.lr,
        "loss": cfg.loss,
        "perceptual_size": "full" if cfg.perceptual_size is None else str(cfg.perceptual_size),
        "noise": cfg.noise,
        "init": cfg.init,
    }


def parse_perceptual_size(value: str | int | None) -> int | None:
    """'256' -> 256, 'full' -> None (the generator's resolution); at least 16 px."""
    try:
        return parse_size(value)
    except ValueError as e:
        raise UserError(str(e)) from None


def _mmss(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class EmbedTab:
    """Callbacks of the Embed tab, bound to one server's `Workspace`."""

    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace

    # --- small callbacks ---------------------------------------------------------------------

    def default_align(self, generator: str) -> bool:
        """--align's default, as the CLI has it: on for the registry's face generators."""
        return default_align(generator)

    def on_generator_change(self, generator: str) -> Any:
        return gr.update(value=self.default_align(generator))

    def on_preset_change(self, preset: str) -> tuple[Any, ...]:
        """Set steps, space, init, lr, loss, perceptual size and noise to the preset's values."""
        f = preset_fields(preset)
        return (
            f["steps"],
            f["space"],
            f["init"],
            f["lr"],
            f["loss"],
            f["perceptual_size"],
            f["noise"],
        )

    @user_errors
    def stop(self, request: gr.Request | None = None) -> str:
        if self.ws.request_stop(session_id(request)):
            return "Stopping after the current step; the latents reached so far will be saved."
        return "No embedding of yours is running."

    # --- the run -------------------------------------------------------------------------------

    def config(
        self,
        preset: str,
        steps: float,
        space: str,
        init: str,
        seed: float,
        lr: float,
        loss: str,
        perceptual_size: str,
        noise: str,
    ) -> EmbedConfig:
        """The preset with the form's values applied (`embed_config`, as the CLI applies its
        options)."""
        try:
            return embed_config(
                preset,
                steps=int(steps),
                space=space,
                init=init,
                seed=int(seed),
                lr=float(lr),
                loss=loss,
                perceptual_size=parse_size(perceptual_size),
                noise=noise,
            )
        except (TypeError, ValueError) as e:
            raise UserError(str(e)) from None

    @user_errors_stream
    def run(
        self,
        images: Any,  # gr.File(file_count="multiple") value: the uploaded image files
        generator: str,
        preset: str,
        steps: float,
        space: str,
        init: str,
        seed: float,
        align: bool,
        vgg: str,
        preview_every: float,
        lr: float,
        loss: str,
        perceptual_size: str,
        noise: str,
        batch_size: float,
        library: Library | None,
        request: gr.Request | None = None,
    ) -> Iterator[tuple[Any, ...]]:
        """Embed every uploaded image; yields (progress image, status, loss curve, results
        gallery, latent files, library) tuples, the last one with the results."""
        paths = file_paths(images)
        if not paths:
            raise UserError("upload one or more images first")
        config = self.config(preset, steps, space, init, seed, lr, loss, perceptual_size, noise)
        vgg = (vgg or "vgg16-caffe").strip()
        preview_every = max(1, int(preview_every))
        try:
            options = RunOptions(
                generator=(generator or "").strip(),
                preset=preset,
                config=config,
                vgg=vgg,
                device=self.ws.device,
                batch_size=max(1, int(batch_size)),
                align=bool(align),
                report_every=preview_every,
            )
        except ValueError as e:
            raise UserError(str(e)) from None
        keep = gr.update()  # "leave this output as it is"
        session = session_id(request)
        stop = self.ws.start_run(session)  # Stop works from here on, also while loading
        try:
            yield None, f"Loading generator `{generator}` …", None, keep, keep, keep
            G, info = self.ws.generator(options.generator)
            check_run_fits(options, G.img_resolution)  # e.g. a perceptual size above G's frame
            vgg_module = None
            if "perceptual" in config.loss_terms:
                yield None, f"Loading VGG-16 `{vgg}` …", None, keep, keep, keep
                vgg_module = self.ws.vgg(vgg)
            pipeline = EmbedPipeline(options, G, info, vgg_module=vgg_module)
            embedder = pipeline.embedder()
            run_dir = self.ws.new_run_dir("embed")
            jobs = plan_jobs(paths, run_dir, layout="flat")  # names: stems, de-duplicated
            yield from self._stream(pipeline.iterate(jobs, embedder, stop=stop.is_set), jobs,
                                    run_dir.name, str(run_dir), steps=config.steps,
                                    preview_every=preview_every, library=library)  # fmt: skip
        finally:
            self.ws.end_run(session, stop)

    def _stream(
        self,
        events: Iterator[Any],
        jobs: list[EmbedJob],
        run_name: str,
        run_dir: str,
        *,
        steps: int,
        preview_every: int,
        library: Library | None,
    ) -> Iterator[tuple[Any, ...]]:
        """Turn the runner's events into the tab's outputs."""
        keep = gr.update()
        gallery: list[tuple[Image.Image, str]] = []
        latent_files: list[str] = []
        new_entries: list[tuple[str, str]] = []
        summary: list[str] = []
        notes: list[str] = []
        failures: list[str] = []
        progress: Image.Image | None = None
        curve: Image.Image | None = None
        stopped_at: int | None = None
        not_embedded = 0
        batches_done = 0
        totals: list[tuple[int, torch.Tensor]] = []  # (step, [N] total loss) on the device
        current = 0  # the batch `totals` belong to
        for event in events:
            if isinstance(event, BatchProgress):
                report = event.report
                if event.batch != current:
                    current, totals = event.batch, []
                if report.images.numel():
                    totals.append((report.step, report.losses[:, 0]))
                if report.step % preview_every == 0 and report.step < steps:
                    names = [job.name for job in event.jobs]
                    frames = [_frame(job) for job in event.jobs]
                    label = f"batch {event.batch}/{event.batches}: " if event.batches > 1 else ""
                    progress = _side_by_side(frames, report.images)
                    curve = _curve(totals, names)
                    yield progress, _status_line(label, names, report), curve, keep, keep, keep
            elif isinstance(event, BatchDone):
                batches_done += 1
                result, names = event.result, [job.name for job in event.jobs]
                progress = _side_by_side([_frame(job) for job in event.jobs], result.images)
                curve = _curve_from_history(result.history, names)
                if event.stopped:
                    stopped_at = int(result.history.shape[0])
                for i, name in enumerate(names):
                    total = float(result.losses["total"][i])
                    gallery.append((tensor_to_pil(result.images[i]), f"{name}: loss {total:.4g}"))
                    summary.append(f"- **{name}**: total loss {total:.4g} after "
                                   f"{int(result.history.shape[0])} steps")  # fmt: skip
            elif isinstance(event, JobOutcome):
                notes += event.warnings
                if event.status == "done" and event.latent:
                    latent_files.append(event.latent)
                    name = event.job.name if event.job else event.latent
                    new_entries.append((f"{name} · {run_name}", event.latent))
                elif event.status == "failed":
                    failures.append(f"skipped: {_first_line(event.error)}")
                elif event.status == "stopped":
                    not_embedded += 1
        notes = failures + notes
        if not batches_done:
            if not_embedded:
                yield None, "Stopped before the optimisation started.", None, keep, keep, keep
                return
            raise UserError("no image could be used: " + "; ".join(failures or notes))
        if not_embedded:
            notes.append(f"{not_embedded} image(s) not embedded (stopped)")
        head = (
            f"**Stopped at step {stopped_at}/{steps}**; the latents reached so far are saved."
            if stopped_at is not None
            else f"**Done**: {len(latent_files)} image(s), {steps} steps."
        )
        lines = [head, "", *summary, "", f"Files: `{run_dir}`"]
        if notes:
            lines += ["", *[f"- note: {n}" for n in notes]]
        library = add_to_library(library, new_entries)
        yield progress, "\n".join(lines), curve, gallery, latent_files, library


def _first_line(text: str | None) -> str:
    return (text or "failed").strip().splitlines()[0]


def _frame(job: EmbedJob) -> Image.Image:
    """The target the loss sees, as the runner prepared it."""
    if job.target is None:
        raise UserError(f"{job.source.name}: not prepared")
    return tensor_to_pil(job.target[0]).convert("RGB")


def _side_by_side(frames: list[Image.Image], images: torch.Tensor) -> Image.Image:
    """Rows of [target | current reconstruction], one row per image of the batch, each tile shown
    at 256-512 px (small generators enlarged with NEAREST, large ones reduced: this is a preview;
    the results are full size)."""
    tiles = []
    for frame, img in zip(frames, images, strict=True):
        tiles += [_preview_size(frame), _preview_size(tensor_to_pil(img).convert("RGB"))]
    return image_grid(tiles, ncols=2, pad=4)


def _preview_size(im: Image.Image, low: int = 256, high: int = 512) -> Image.Image:
    side = max(im.size)
    if side < low:
        k = -(-low // side)  # an integer factor keeps pixels square and sharp
        return im.resize((im.width * k, im.height * k), Image.Resampling.NEAREST)
    if side > high:
        w, h = (max(1, round(x * high / side)) for x in im.size)
        return im.resize((w, h), Image.Resampling.LANCZOS)
    return im


def _curve(totals: list[tuple[int, torch.Tensor]], names: list[str]) -> Image.Image | None:
    if not totals:
        return None
    steps = torch.tensor([step for step, _ in totals])
    y = torch.stack([t for _, t in totals]).float().cpu()  # [T, N]: the one host sync per preview
    return loss_curve(steps, y, names)


def _curve_from_history(history: torch.Tensor, names: list[str]) -> Image.Image | None:
    if history.shape[0] == 0:
        return None
    y = history[..., 0].reshape(history.shape[0], -1)  # [steps, N] total
    return loss_curve(torch.arange(1, y.shape[0] + 1), y, names)


def _status_line(label: str, names: list[str], report: StepReport) -> str:
    losses = report.losses.float().cpu()  # [N, 3] (total, perceptual, mse)
    rate = report.step / report.elapsed if report.elapsed > 0 else 0.0
    eta = (report.steps - report.step) / rate if rate > 0 else 0.0
    speed = f"{rate:.1f} steps/s" if rate >= 1 or rate == 0 else f"{1 / rate:.1f} s/step"
    parts = [f"{label}step **{report.step}/{report.steps}** · {speed} · ETA {_mmss(eta)}", ""]
    for name, (total, perc, mse) in zip(names, losses.tolist(), strict=True):
        parts.append(f"- {name}: loss {total:.4g} (perceptual {perc:.4g}, mse {mse:.4g})")
    return "\n".join(parts)
