"""The Edit and Generate tabs: the applications of Sec. 4 on latent files, rendered in the browser.

Every callback takes latents by their labels in the session's latent library (embedded in this
session, generated, or uploaded; a request cannot name any other file), loads them with
`load_latent`, does the latent arithmetic with the library's functions (`morph_path`,
`style_transfer`, `expression_transfer`, `random_walk`), renders with `noise_mode="const"` (or
a latent's own noise maps, as `edit/noise.py` says for each edit) as the
CLI does, and writes its files into a fresh `<workdir>/<kind>-NNNN/` folder with the helpers the
editing commands use (`edit.sequence`, `edit.seeds`). The generator is the one the latents
record in their metadata (`edit.sources.common_generator`) unless the tab's Generator field
names another (the CLI's `--generator`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import torch

from .._version import __version__
from ..edit import seeds as seed_lists
from ..edit.expression import (
    ChannelReading,
    Normalization,
    expression_direction,
    expression_transfer,
)
from ..edit.morph import morph_path
from ..edit.noise import morph_noise, noise_of, noise_used
from ..edit.render import frame_to_pil, image_strip, render_frames, render_images
from ..edit.sequence import write_sequence
from ..edit.sources import common_generator
from ..edit.style_transfer import PAPER_FROM_LAYER, style_transfer
from ..edit.walk import random_walk
from ..image import image_grid, save_image
from ..latents import LatentFile, check_latent_fits, load_latent, save_latent
from ..models.base import Generator, NoiseMode
from .common import Library, UserError, add_to_library, file_paths, user_errors
from .workspace import Workspace

__all__ = ["MAX_FRAMES", "MAX_SEEDS", "EditTab", "parse_seeds"]

RENDER_BATCH = 8  # codes per synthesis call
STRIP_FRAMES = 8  # frames shown in the strip beside a video
MAX_FRAMES = 1000  # frames of one video (a guard against typos, not a technical limit)
MAX_SEEDS = 256  # images of one Generate run


def parse_seeds(text: str) -> list[int]:
    """`edit.seeds.parse_seeds` ('0-7,12' -> [0, ..., 7, 12]), at most MAX_SEEDS per run."""
    try:  # counted before any range is expanded
        return seed_lists.parse_seeds(text, limit=MAX_SEEDS)
    except ValueError as e:
        raise UserError(str(e)) from None


class EditTab:
    """Callbacks of the Edit and Generate tabs, bound to one server's `Workspace`."""

    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace

    # --- the latent library ------------------------------------------------------------------

    @user_errors
    def add_latents(self, files: Any, library: Library | None) -> tuple[Library, str]:
        """Check uploaded latent files and add the readable ones to the library."""
        paths = file_paths(files)
        if not paths:
            raise UserError("choose one or more latent files (.npz) to add")
        added, problems = [], []
        for path in paths:
            try:
                load_latent(path)
            except Exception as e:  # one bad file must not block the others
                problems.append(str(e).splitlines()[0])
                continue
            added.append((f"{path.stem} · uploaded", str(path)))
        if not added:
            raise UserError("; ".join(problems))
        library = add_to_library(library, added)
        lines = [f"Added {len(added)} latent file(s)."] + [f"- not added: {p}" for p in problems]
        return library, "\n".join(lines)

    @staticmethod
    def library_table(library: Library | None) -> str:
        """A Markdown table of the library: name, generator, code size, steps, final loss."""
        if not library:
            return "_No latents yet: embed images, generate some, or upload `.npz` files._"
        rows = ["| latent | generator | codes | steps | final loss |", "|---|---|---|---|---|"]
        for label, path in library:
            try:
                lat = load_latent(path)
            except Exception:
                rows.append(f"| {label} | (unreadable) | | | |")
                continue
            meta = lat.metadata
            loss = (meta.get("final_loss") or {}).get("total")
            rows.append(
                f"| {label} | {meta.get('generator', '?')} | {lat.num_ws} × {lat.w_dim} | "
                f"{meta.get('steps', '')} | {'' if loss is None else f'{loss:.4g}'} |"
            )
        return "\n".join(rows)

    # --- generator and latents -----------------------------------------------------------------

    def _load(
        self,
        labels: Sequence[str | None],  # library labels, as the dropdowns send them
        library: Library | None,
        generator: str | None,
        what: Sequence[str],  # the role of each latent, for messages
    ) -> tuple[Generator, str, list[LatentFile]]:
        """Load latents (each named in errors by its role) and the generator they are used with.

        Only latents in the session's library can be used: a request cannot name other files.
        """
        paths = dict((label, path) for label, path in (library or []))
        latents = []
        for label, role in zip(labels, what, strict=True):
            if not label:
                raise UserError(f"choose the {role} latent")
            if label not in paths:
                raise UserError(
                    f"{label!r} is not in the latent library: embed, generate or upload it first"
                )
            latents.append(load_latent(paths[label]))
        source = (generator or "").strip() or self._recorded_generator(latents)
        G, _ = self.ws.generator(source)
        for lat, role in zip(latents, what, strict=True):
            try:
                check_latent_fits(lat, G.num_ws, G.w_dim, source)
            except Exception as e:
                raise UserError(f"the {role} latent: {e}") from None
        return G, source, latents

    @staticmethod
    def _recorded_generator(latents: Sequence[LatentFile]) -> str:
        try:
            return common_generator(latents)
        except ValueError as e:
            raise UserError(f"{e}: enter one in the Generator field") from None

    # --- sequences -----------------------------------------------------------------------------

    def _write_video(
        self,
        G: Generator,
        ws: torch.Tensor,
        run_dir: Path,
        stem: str,
        fps: float,
        gif: bool,
        noise: list[torch.Tensor] | None = None,  # [K or 1, 1, h, w] per input (edit/noise.py)
    ) -> tuple[str, Any, list[str]]:
        """Render ws [K, num_ws, w_dim] once into an MP4 (and a GIF): (mp4, strip, files)."""
        if ws.shape[0] > MAX_FRAMES:
            raise UserError(f"{ws.shape[0]} frames: at most {MAX_FRAMES} per video")
        outputs = [run_dir / f"{stem}.mp4"] + ([run_dir / f"{stem}.gif"] if gif else [])
        done = write_sequence(
            G, ws, outputs, fps=fps, batch_size=RENDER_BATCH,
            strip=run_dir / f"{stem}_strip.png", strip_frames=STRIP_FRAMES, noise=noise,
        )  # fmt: skip
        files = [str(p) for p in done.paths] + [str(done.strip)]
        return files[0], done.strip_image, files

    @user_errors
    def morph(
        self,
        latents: Sequence[str] | None,  # the keyframes, in order
        frames: float,  # frames per segment, both ends included
        ping_pong: bool,
        fps: float,
        gif: bool,
        generator: str,
        library: Library | None,
    ) -> tuple[str, Any, list[str]]:
        """Sec. 4.1: w = (1 − t)·w_a + t·w_b through the chosen latents (mp4, strip, files)."""
        latents = list(latents or [])
        if len(latents) < 2:
            raise UserError("choose at least two latents to morph between (A, B, ...)")
        roles = [f"keyframe {i + 1}" for i in range(len(latents))]
        G, _, lats = self._load(latents, library, generator, roles)
        frames = int(frames)
        if frames < 2:
            raise UserError("frames per segment must be at least 2 (both ends)")
        codes = torch.cat([lat.w for lat in lats]).float()  # [M, num_ws, w_dim]
        ws = morph_path(codes, frames, loop=bool(ping_pong))  # [K, num_ws, w_dim]
        noise = morph_noise(G, lats, frames, loop=bool(ping_pong))  # interpolated with w
        return self._write_video(G, ws, self.ws.new_run_dir("morph"), "morph", fps, gif, noise)

    @user_errors
    def walk(
        self,
        latent: str | None,
        frames: float,
        perturbation: float,
        seed: float,
        end: float,
        per_layer: bool,
        fps: float,
        gif: bool,
        generator: str,
        library: Library | None,
    ) -> tuple[str, Any, list[str]]:
        """Walk from an embedded latent towards the mean latent w̄ (mp4, strip, files)."""
        G, _, (lat,) = self._load([latent], library, generator, ["start"])
        ws = random_walk(
            lat.w.float(),
            G.w_avg.detach().cpu().float(),
            int(frames),
            perturbation=float(perturbation),
            end=float(end),
            per_layer=bool(per_layer),
            generator=torch.Generator().manual_seed(int(seed)),
        )  # [K, num_ws, w_dim]
        run_dir = self.ws.new_run_dir("walk")
        return self._write_video(G, ws, run_dir, "walk", fps, gif, noise_of(G, lat))

    # --- single images -------------------------------------------------------------------------

    def from_layer_range(
        self,
        content: str | None,
        style: str | None,
        generator: str,
        from_layer: float,
        library: Library | None,
    ) -> Any:
        """The style-transfer "from layer" slider for the generator a transfer would use (the
        Generator field, else the one the chosen latents record): 0..G.num_ws, the value kept
        when it fits, else half the layers (the paper's 9 of 18). No change until that generator
        and the chosen latents fit together: the Transfer button says what is wrong."""
        chosen = [label for label in (content, style) if label]
        try:
            G, _, _ = self._load(chosen, library, generator, ["chosen"] * len(chosen))
        except Exception:  # nothing chosen yet, an unreadable latent, a wrong generator, ...
            return gr.update()
        num_ws = G.num_ws
        value = int(from_layer) if 0 <= from_layer <= num_ws else num_ws // 2
        return gr.update(
            maximum=num_ws,
            value=value,
            info="Layers before it come from the content, the rest from the style "
            f"(paper: {PAPER_FROM_LAYER} of 18; this generator: {num_ws}).",
        )

    @user_errors
    def style_transfer(
        self,
        content: str | None,
        style: str | None,
        from_layer: float,
        generator: str,
        library: Library | None,
    ) -> tuple[Any, Any, list[str]]:
        """Sec. 4.2: layers [0, from_layer) from the content, the rest from the style
        (result, [content | style | result] strip, files)."""
        G, _, (lat_c, lat_s) = self._load(
            [content, style], library, generator, ["content", "style"]
        )
        from_layer = int(from_layer)
        if not 0 <= from_layer <= G.num_ws:
            raise UserError(
                f"'from layer' {from_layer} is outside this generator's layers 0..{G.num_ws}"
            )
        w = style_transfer(lat_c.w.float(), lat_s.w.float(), from_layer)  # [1, num_ws, w_dim]
        sources = [
            render_images(G, lat.w.float(), RENDER_BATCH, noise=noise_of(G, lat))[0]
            for lat in (lat_c, lat_s)
        ]
        (result,) = render_images(G, w, RENDER_BATCH, noise=noise_of(G, lat_c))  # content's
        run_dir = self.ws.new_run_dir("style")
        strip = image_strip([*sources, result])
        files = [
            str(save_image(result, run_dir / "style_transfer.png")),
            str(save_image(strip, run_dir / "content_style_result.png")),
        ]
        return result, strip, files

    @user_errors
    def expression(
        self,
        target: str | None,
        neutral: str | None,
        expressive: str | None,
        strength_from: float,
        strength_to: float,
        count: float,
        threshold: float,
        channel: ChannelReading,
        normalize: Normalization,
        generator: str,
        library: Library | None,
    ) -> tuple[Any, str, list[str]]:
        """Sec. 4.3: w = w_target + λ·d̂ for evenly spaced λ (strip, summary, files)."""
        G, _, lats = self._load(
            [target, neutral, expressive], library, generator, ["target", "neutral", "expressive"]
        )
        count = int(count)
        if count < 1:
            raise UserError("the number of strengths must be at least 1")
        lams = np.linspace(float(strength_from), float(strength_to), count).tolist()
        w_t, w_n, w_e = (lat.w.float() for lat in lats)
        direction = expression_direction(w_n, w_e, float(threshold), channel, normalize)
        ws = expression_transfer(w_t, w_n, w_e, lams, float(threshold), channel, normalize)
        images = render_images(G, ws, RENDER_BATCH, noise=noise_of(G, lats[0]))  # target's
        strip = image_strip(images)
        run_dir = self.ws.new_run_dir("expression")
        files = [str(save_image(strip, run_dir / "expression_strip.png"))]
        for lam, im in zip(lams, images, strict=True):
            files.append(str(save_image(im, run_dir / f"strength_{lam:+.3f}.png")))
        kept = int(direction.kept.sum())
        total = direction.kept.numel()
        info = [
            f"λ = {', '.join(f'{v:.3g}' for v in lams)} (left to right)",
            f"zeroed {total - kept}/{total} {channel} channels with L2 norm below "
            f"{float(threshold):g}",
            f"‖d‖ = {direction.norm_d:.4g}, after the threshold ‖d′‖ = {direction.norm_kept:.4g}",
        ]
        if direction.source_strength is not None:
            info.append(f"λ = {direction.source_strength:.4g} reproduces the source's own change")
        return strip, "\n".join(f"- {line}" for line in info), files

    # --- Generate ------------------------------------------------------------------------------

    @user_errors
    def generate(
        self,
        generator: str,
        seeds: str,
        truncation_psi: float,
        noise_mode: NoiseMode,
        add_latents: bool,
        library: Library | None,
    ) -> tuple[list[tuple[Any, str]], list[str], Library, str]:
        """Images from seeds, z exactly as NVIDIA's generate.py draws it (gallery, files,
        library, status); with `add_latents` each seed's W+ code is saved and added."""
        seed_list = parse_seeds(seeds)
        source = (generator or "").strip()
        G, info = self.ws.generator(source)
        psi = float(truncation_psi)
        ws = seed_lists.seeds_to_ws(G, seed_list, psi)  # z as NVIDIA's generate.py draws it
        frames = render_frames(G, ws, RENDER_BATCH, noise_mode=noise_mode, noise_seeds=seed_list)
        images = [frame_to_pil(f) for f in frames]
        run_dir = self.ws.new_run_dir("generate")
        grid = image_grid(images) if len(images) > 1 else images[0]
        files = [str(save_image(grid, run_dir / "generated.png"))]
        entries = []
        for s, im, w in zip(seed_list, images, ws, strict=True):
            save_image(im, run_dir / f"seed{s:04d}.png")
            if add_latents:
                meta = {
                    **info.record(G.architecture),
                    "space": "w+",
                    "seed": s,
                    "truncation_psi": psi,
                    "noise_mode": noise_used(G, noise_mode),  # as `generate --json` says
                    "version": __version__,
                }
                path = save_latent(run_dir / f"seed{s:04d}.npz", w, meta)
                files.append(str(path))
                entries.append((f"seed {s} · {run_dir.name}", str(path)))
        gallery = [(im, f"seed {s}") for s, im in zip(seed_list, images, strict=True)]
        library = add_to_library(library, entries)
        noise = noise_used(G, noise_mode)  # StyleGAN3: none, as the CLI's summaries say
        status = f"{len(images)} image(s) from `{source}` (ψ = {psi:g}, noise {noise})"
        if entries:
            status += f"; {len(entries)} latent(s) added to the library"
        return gallery, files, library, status
