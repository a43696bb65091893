"""The Embed tab: Algorithm 1 on uploaded images, streamed to the browser while it runs.

The optimisation is `Embedder.iterate`, the same step loop the CLI drives (embed/embedder.py).
`EmbedTab.run` is a generator callback: gradio sends each value it yields to the browser, so
every `preview_every` steps the page shows the current reconstructions beside their targets, the
step / loss / speed line and the loss curve. The Stop button sets this session's stop flag; the
loop ends after the step in progress and the latents reached so far are saved (their metadata
records `stopped_early`). Results go to `<workdir>/embed-NNNN/`: `<name>.npz` (a latent file,
SPEC section 4, the same format and metadata as the CLI's `latent.npz`), `<name>_target.png` (the
exact image the loss saw) and `<name>_reconstruction.png`.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr
import torch
from PIL import Image

from .. import __version__
from ..align import AlignDependencyError
from ..embed import PRESETS, EmbedConfig, build_embedder
from ..embed.runner import plan_jobs
from ..embed.targets import target_frame
from ..errors import I2SError
from ..fileio import sha256_file
from ..image import image_grid, pil_to_tensor, save_image, tensor_to_pil
from ..latents import save_latent
from .common import (
    Library,
    UserError,
    add_to_library,
    file_paths,
    loss_curve,
    session_id,
    user_errors,
    user_message,
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
    text = str(value if value is not None else "256").strip().lower()
    if text == "full":
        return None
    try:
        size = int(float(text))
    except ValueError:
        raise UserError(
            f"perceptual size {value!r}: give a side length in pixels or 'full'"
        ) from None
    if size < 16:
        raise UserError(f"perceptual size {size}: at least 16 px")
    return size


def _mmss(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class EmbedTab:
    """Callbacks of the Embed tab, bound to one server's `Workspace`."""

    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace

    # --- small callbacks ---------------------------------------------------------------------

    def default_align(self, generator: str) -> bool:
        """--align's default: on for the registry's face generators (ffhq-*), else off."""
        from ..checkpoints.registry import get_entry, is_registry_name

        name = (generator or "").strip()
        if is_registry_name(name) and not Path(name).exists():
            return bool(get_entry(name).default_align)
        return name.startswith("ffhq")

    def on_generator_change(self, generator: str):
        return gr.update(value=self.default_align(generator))

    def on_preset_change(self, preset: str):
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
        """The preset with the form's values applied (as the CLI applies its options)."""
        if preset not in PRESETS:
            raise UserError(f"unknown preset {preset!r}: choose {' or '.join(PRESETS)}")
        try:
            return PRESETS[preset].replace(
                steps=int(steps),
                space=space,
                init=init,
                seed=int(seed),
                lr=float(lr),
                loss=loss,
                perceptual_size=parse_perceptual_size(perceptual_size),
                noise=noise,
            )
        except (TypeError, ValueError) as e:
            raise UserError(str(e)) from None

    @user_errors
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
    ) -> Iterator[tuple]:
        """Embed every uploaded image; yields (progress image, status, loss curve, results
        gallery, latent files, library) tuples, the last one with the results."""
        paths = file_paths(images)
        if not paths:
            raise UserError("upload one or more images first")
        config = self.config(preset, steps, space, init, seed, lr, loss, perceptual_size, noise)
        vgg = (vgg or "vgg16-caffe").strip()
        preview_every = max(1, int(preview_every))
        batch_size = max(1, int(batch_size))
        keep = gr.update()  # "leave this output as it is"
        session = session_id(request)
        stop = self.ws.start_run(session)  # Stop works from here on, also while loading
        try:
            yield None, f"Loading generator `{generator}` …", None, keep, keep, keep
            G, gen_meta = self.ws.generator(generator)
            content_size = gen_meta.get("content_size")
            uses_vgg = "perceptual" in config.loss_terms
            if uses_vgg:
                yield None, f"Loading VGG-16 `{vgg}` …", None, keep, keep, keep
            embedder = build_embedder(
                G, config, vgg=self.ws.vgg(vgg) if uses_vgg else vgg, content_size=content_size
            )
            run_dir = self.ws.new_run_dir("embed")
            prepared, notes = self._prepare(paths, run_dir, G, align, content_size)
            if stop.is_set():
                yield None, "Stopped before the optimisation started.", None, keep, keep, keep
                return
            yield from self._optimise(
                embedder, prepared, notes, run_dir, config, gen_meta, preset, vgg, align,
                preview_every, batch_size, library, stop,
            )  # fmt: skip
        finally:
            self.ws.end_run(session, stop)

    @staticmethod
    def _prepare(
        paths: list[Path],
        run_dir: Path,
        G,
        align: bool,
        content_size: tuple[int, int] | None,
    ) -> tuple[list[tuple[Any, Image.Image, str]], list[str]]:
        """Decode (+ FFHQ-align) + fit every image to G's frame, as the CLI does.

        Returns ([(job, frame, image sha256), ...], notes); an unusable image becomes a note.
        """
        jobs = plan_jobs(paths, run_dir)  # names: file stems, de-duplicated (photo, photo-2)
        prepared, notes = [], []
        for job in jobs:
            try:
                with warnings.catch_warnings(record=True) as caught:  # alignment's warnings
                    warnings.simplefilter("always")
                    frame = target_frame(
                        job.source,
                        G.img_resolution,
                        align=align,
                        content_size=content_size,
                        name=job.source.name,
                    )
                notes += [f"{job.source.name}: {w.message}" for w in caught]
            except AlignDependencyError:
                raise  # no image can be aligned: say so once
            except I2SError as e:
                notes.append(f"skipped: {user_message(e)}")
                continue
            prepared.append((job, frame, sha256_file(job.source)))
        if not prepared:
            raise UserError("no image could be used: " + "; ".join(notes))
        return prepared, notes

    def _optimise(
        self,
        embedder,
        prepared: list,
        notes: list[str],
        run_dir: Path,
        config: EmbedConfig,
        gen_meta: dict[str, Any],
        preset: str,
        vgg: str,
        align: bool,
        preview_every: int,
        batch_size: int,
        library: Library | None,
        stop,
    ) -> Iterator[tuple]:
        keep = gr.update()
        steps = config.steps
        batches = [prepared[k : k + batch_size] for k in range(0, len(prepared), batch_size)]
        gallery: list[tuple[Any, str]] = []
        latent_files: list[str] = []
        new_entries: list[tuple[str, str]] = []
        summary: list[str] = []
        progress = curve = None
        stopped_at: int | None = None
        for b, batch in enumerate(batches, 1):
            names = [job.name for job, _, _ in batch]
            frames = [frame for _, frame, _ in batch]
            targets = torch.cat([pil_to_tensor(f) for f in frames])  # [N, 3, H, W] in [-1, 1]
            label = f"batch {b}/{len(batches)}: " if len(batches) > 1 else ""
            totals: list[torch.Tensor] = []  # per step: [N] total loss, left on the device
            last = None
            t0 = time.perf_counter()
            iterator = embedder.iterate(targets, report_every=1)
            try:
                for report in iterator:
                    last = report
                    if report.images.numel():
                        totals.append(report.losses[:, 0])
                    if stop.is_set():
                        stopped_at = report.step
                        break
                    if report.step % preview_every == 0 and report.step < steps:
                        progress = _side_by_side(frames, report.images)
                        curve = _curve(totals, names)
                        status = _status_line(label, names, report, time.perf_counter() - t0)
                        yield progress, status, curve, keep, keep, keep
            finally:
                iterator.close()
            assert last is not None
            result = embedder.finish(targets, last.state())
            progress = _side_by_side(frames, result.images)
            curve = _curve_from_history(result.history, names)
            for i, (job, frame, image_sha) in enumerate(batch):
                path = self._save(
                    run_dir, job, frame, image_sha, result, i, embedder, config, gen_meta,
                    preset, vgg, align, stopped=stopped_at is not None,
                )  # fmt: skip
                total = float(result.losses["total"][i])
                gallery.append((tensor_to_pil(result.images[i]), f"{job.name}: loss {total:.4g}"))
                latent_files.append(str(path))
                new_entries.append((f"{job.name} · {run_dir.name}", str(path)))
                summary.append(f"- **{job.name}**: total loss {total:.4g} after "
                               f"{int(result.history.shape[0])} steps")  # fmt: skip
            if stopped_at is not None:
                skipped = sum(len(x) for x in batches[b:])
                if skipped:
                    notes.append(f"{skipped} image(s) not embedded (stopped)")
                break
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

    def _save(
        self,
        run_dir: Path,
        job,
        frame,
        image_sha256: str,
        result,
        i: int,
        embedder,
        config: EmbedConfig,
        gen_meta: dict[str, Any],
        preset: str,
        vgg: str,
        align: bool,
        stopped: bool,
    ) -> Path:
        """Write `<name>.npz` (metadata as the CLI writes it), target and reconstruction PNGs."""
        ws = result.ws[i : i + 1]  # [1, num_ws, w_dim]
        w_avg = embedder.w_avg.detach().cpu()
        meta = {
            **{k: v for k, v in gen_meta.items() if k not in ("content_size", "default_align")},
            "preset": preset,
            "vgg": vgg,
            "device": self.ws.device,
            "precision": config.precision,
            "space": config.space,
            "init": config.init,
            "steps": int(result.history.shape[0]),
            "stopped_early": stopped,
            "lr": config.lr,
            "loss": config.loss,
            "layers": list(config.layers),
            "layer_weights": list(config.layer_weights) if config.layer_weights else None,
            "mse_weight": config.mse_weight,
            "perceptual_size": config.perceptual_size,
            "noise": config.noise,
            "seed": config.seed,
            "config": config.to_dict(),
            "final_loss": {k: float(v[i]) for k, v in result.losses.items()},
            "w_dist_to_mean": float((ws[0] - w_avg).norm()),
            "image": job.source.name,
            "image_sha256": image_sha256,
            "fit": "crop",
            "aligned": bool(align),
            "version": __version__,
            "elapsed_s": round(float(result.elapsed), 3),
            "made_with": "image2stylegan serve",
        }
        extras = {}
        if result.z is not None:
            extras["z"] = result.z[i : i + 1]
        if result.w_single is not None:
            extras["w_single"] = result.w_single[i : i + 1]
        save_image(frame, run_dir / f"{job.name}_target.png")
        save_image(tensor_to_pil(result.images[i]), run_dir / f"{job.name}_reconstruction.png")
        return save_latent(run_dir / f"{job.name}.npz", ws, meta, **extras)


def _side_by_side(frames: list, images: torch.Tensor):
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


def _curve(totals: list[torch.Tensor], names: list[str]):
    if not totals:
        return None
    y = torch.stack(totals).float().cpu()  # [T, N]: the one host sync per preview
    return loss_curve(torch.arange(1, y.shape[0] + 1), y, names)


def _curve_from_history(history: torch.Tensor, names: list[str]):
    if history.shape[0] == 0:
        return None
    y = history[..., 0].reshape(history.shape[0], -1)  # [steps, N] total
    return loss_curve(torch.arange(1, y.shape[0] + 1), y, names)


def _status_line(label: str, names: list[str], report, elapsed: float) -> str:
    losses = report.losses.float().cpu()  # [N, 3] (total, perceptual, mse)
    rate = report.step / elapsed if elapsed > 0 else 0.0
    eta = (report.steps - report.step) / rate if rate > 0 else 0.0
    speed = f"{rate:.1f} steps/s" if rate >= 1 or rate == 0 else f"{1 / rate:.1f} s/step"
    parts = [f"{label}step **{report.step}/{report.steps}** · {speed} · ETA {_mmss(eta)}", ""]
    for name, (total, perc, mse) in zip(names, losses.tolist(), strict=True):
        parts.append(f"- {name}: loss {total:.4g} (perceptual {perc:.4g}, mse {mse:.4g})")
    return "\n".join(parts)
