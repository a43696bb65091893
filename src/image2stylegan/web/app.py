"""The local web UI (`image2stylegan serve`): a gradio app over the library's public API.

Tabs:
- **Embed**: Algorithm 1 on uploaded images, with live previews and a Stop button (embedding.py);
- **Edit**: morph, style transfer, expression transfer and the random walk on latent files from
  this session's library (embedded, generated or uploaded) (editing.py);
- **Local edits**: the Image2StyleGAN++ applications (inpaint, crossover, local style,
  scribbles) on a photo the user paints the region on (local_edits.py);
- **Generate**: images (and their latents) from seeds with truncation.

One generator load per (source, device), cached for the server's life (workspace.py). Long work
runs in gradio's worker threads through its queue: one embedding at a time and one render at a
time (`concurrency_id`), so two users never run embeddings on one GPU at once; the others wait
in line with their position shown.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.events import Dependency

from .common import Library
from .editing import EditTab
from .embedding import (
    LOSS_CHOICES,
    PERCEPTUAL_SIZE_CHOICES,
    VGG_CHOICES,
    EmbedTab,
    preset_fields,
)
from .local_edits import OPERATIONS, LocalEditTab
from .workspace import Workspace

__all__ = ["App", "build_app", "launch"]

DEFAULT_GENERATOR = "ffhq-1024"  # the paper's generator (SPEC section 5)
OFFLINE_DEMO_GENERATOR = "random:stylegan2-256"  # needs no file: for trying the UI offline

INTRO = """\
# image2stylegan
Embed your photos into a pretrained StyleGAN's latent space (**Embed**), then edit them there
(**Edit**): morphing, style transfer, expression transfer, random walks — Image2StyleGAN
(Abdal, Qin, Wonka, ICCV 2019). Everything runs on this computer; results are written to
`{workdir}`.
"""


def _generator_choices(default: str) -> list[str]:
    from ..checkpoints.registry import REGISTRY

    names = [name for name, entry in REGISTRY.items() if entry.kind == "generator"]
    extra = [default] if default not in names else []
    return [*extra, *names, OFFLINE_DEMO_GENERATOR, "random:stylegan1-256"]


def _picker(label: str, multiselect: bool = False) -> gr.Dropdown:
    """A dropdown of the session's latent library (its choices are filled in as it grows).

    Custom values pass the component (API clients see no choices); the callbacks accept only
    labels that are in the session's library.
    """
    return gr.Dropdown([], label=label, multiselect=multiselect, allow_custom_value=True)


class App(gr.Blocks):
    """The UI's Blocks with the server's `Workspace` (model caches, output folder, stop flags)."""

    workspace: Workspace


def build_app(
    generator: str | None = None,  # preselected generator (registry name, file, random: source)
    device: str = "auto",  # auto (CUDA when available), cpu, cuda, cuda:N
    workdir: str | os.PathLike | None = None,  # where results go; None = a new temp folder
) -> App:
    """The gradio app (not launched). Its `workspace` attribute holds the model caches."""
    ws = Workspace(device=device, workdir=workdir, default_generator=generator)
    embed = EmbedTab(ws)
    edit = EditTab(ws)
    local = LocalEditTab(ws)
    default_gen = generator or DEFAULT_GENERATOR
    paper = preset_fields("paper")

    # delete_cache: uploads and served copies older than a day are removed hourly, and all of
    # them when the server stops (the photos people upload do not pile up in the temp folder)
    with App(title="image2stylegan", analytics_enabled=False, delete_cache=(3600, 86400)) as app:
        library = gr.State([])  # this session's latents: [[label, path], ...]
        gr.Markdown(INTRO.format(workdir=ws.workdir))

        # --- Embed ----------------------------------------------------------------------------
        with gr.Tab("Embed"), gr.Row():
            with gr.Column(scale=2):
                images = gr.File(
                    label="Images (one or more photos)",
                    file_count="multiple",
                    file_types=["image"],
                    type="filepath",
                )
                gen = gr.Dropdown(
                    _generator_choices(default_gen),
                    value=default_gen,
                    allow_custom_value=True,
                    label="Generator",
                    info="A registry name (downloaded on first use), a checkpoint file on "
                    f"this computer, or {OFFLINE_DEMO_GENERATOR} (random weights, offline).",
                )
                preset = gr.Radio(
                    ["paper", "nvidia"],
                    value="paper",
                    label="Preset",
                    info="paper = Algorithm 1 as published; nvidia = NVIDIA's projector "
                    "(W space, LPIPS, 1000 steps). The fields below start from it.",
                )
                with gr.Row():
                    steps = gr.Number(paper["steps"], label="Steps", precision=0, minimum=0)
                    space = gr.Radio(["w+", "w", "z"], value=paper["space"], label="Space")
                    init = gr.Radio(["mean", "random"], value=paper["init"], label="Init")
                with gr.Row():
                    align = gr.Checkbox(
                        value=embed.default_align(default_gen),
                        label="FFHQ face alignment (needs the 'align' extra)",
                    )
                    preview_every = gr.Slider(
                        1, 500, value=25, step=1, label="Preview every N steps"
                    )
                vgg = gr.Dropdown(
                    VGG_CHOICES,
                    value="vgg16-caffe",
                    allow_custom_value=True,
                    label="VGG-16 for the perceptual loss",
                    info="Or the path of a .pth / Keras .h5 file.",
                )
                with gr.Accordion("Advanced", open=False):
                    with gr.Row():
                        lr = gr.Number(paper["lr"], label="Learning rate (Adam)")
                        seed = gr.Number(0, label="Seed", precision=0, minimum=0)
                        batch_size = gr.Slider(1, 16, value=1, step=1, label="Images per batch")
                    with gr.Row():
                        loss = gr.Dropdown(
                            LOSS_CHOICES,
                            value=paper["loss"],
                            allow_custom_value=True,
                            label="Loss terms",
                        )
                        perceptual_size = gr.Dropdown(
                            PERCEPTUAL_SIZE_CHOICES,
                            value=paper["perceptual_size"],
                            allow_custom_value=True,
                            label="Perceptual size (px or full)",
                        )
                        noise = gr.Radio(
                            ["const", "resample", "restart"],
                            value=paper["noise"],
                            label="Noise inputs",
                        )
                with gr.Row():
                    run = gr.Button("Embed", variant="primary")
                    stop = gr.Button("Stop", variant="stop")
                stop_note = gr.Markdown()
            with gr.Column(scale=3):
                progress = gr.Image(
                    label="Target | reconstruction",
                    type="pil",
                    format="png",
                    interactive=False,
                )
                status = gr.Markdown("Upload images and press **Embed**.")
                curve = gr.Image(label="Loss", type="pil", format="png", interactive=False)
                results = gr.Gallery(label="Reconstructions", columns=4, format="png")
                latent_files = gr.File(
                    label="Latent files (.npz)", file_count="multiple", interactive=False
                )

        # --- Edit -----------------------------------------------------------------------------
        with gr.Tab("Edit"):
            with gr.Accordion("Latent library", open=True):
                with gr.Row():
                    upload = gr.File(
                        label="Add latent files (.npz from the CLI, this UI or NVIDIA's projector)",
                        file_count="multiple",
                        file_types=[".npz", ".npy"],
                        type="filepath",
                        scale=1,
                    )
                    with gr.Column(scale=2):
                        library_table = gr.Markdown(EditTab.library_table([]))
                        library_note = gr.Markdown()
                edit_gen = gr.Textbox(
                    label="Generator",
                    placeholder="blank: the generator recorded in the latent files",
                )

            with gr.Tab("Morph"):
                morph_keys = _picker("Latents, in order (A → B → …)", multiselect=True)
                with gr.Row():
                    morph_frames = gr.Slider(2, 240, value=30, step=1, label="Frames per segment")
                    morph_fps = gr.Slider(1, 60, value=30, step=1, label="Frames per second")
                    morph_loop = gr.Checkbox(label="Ping-pong (loops seamlessly)")
                    morph_gif = gr.Checkbox(label="Also write a GIF")
                morph_run = gr.Button("Morph", variant="primary")
                morph_video = gr.Video(label="Morph", interactive=False)
                morph_strip = gr.Image(label="Frames", type="pil", format="png", interactive=False)
                morph_files = gr.File(label="Files", file_count="multiple", interactive=False)

            with gr.Tab("Style transfer"):
                with gr.Row():
                    st_content = _picker("Content (coarse layers)")
                    st_style = _picker("Style (fine layers)")
                st_layer = gr.Slider(
                    0,
                    18,
                    value=9,
                    step=1,
                    label="From layer",
                    info="Layers before it come from the content, the rest from the style "
                    "(paper: 9 of 18).",
                )
                st_run = gr.Button("Transfer", variant="primary")
                with gr.Row():
                    st_result = gr.Image(
                        label="Result", type="pil", format="png", interactive=False
                    )
                    st_strip = gr.Image(
                        label="Content | style | result",
                        type="pil",
                        format="png",
                        interactive=False,
                    )
                st_files = gr.File(label="Files", file_count="multiple", interactive=False)

            with gr.Tab("Expression transfer"):
                with gr.Row():
                    ex_target = _picker("Target (the face to edit)")
                    ex_neutral = _picker("Neutral (source face)")
                    ex_expressive = _picker("Expressive (same source face)")
                with gr.Row():
                    ex_from = gr.Slider(-5, 5, value=-1.5, step=0.05, label="Strength from (λ)")
                    ex_to = gr.Slider(-5, 5, value=1.5, step=0.05, label="Strength to (λ)")
                    ex_count = gr.Slider(1, 15, value=7, step=1, label="Images")
                with gr.Row():
                    ex_threshold = gr.Number(1.0, label="Threshold (paper: 1)", minimum=0)
                    ex_channel = gr.Radio(
                        ["feature", "layer"],
                        value="feature",
                        label="Channel",
                        info="feature: one w_dim column across layers; layer: one layer's code",
                    )
                    ex_normalize = gr.Radio(
                        ["channel", "code", "layer", "none"], value="channel", label="Normalise"
                    )
                ex_run = gr.Button("Transfer expression", variant="primary")
                ex_strip = gr.Image(
                    label="λ left to right", type="pil", format="png", interactive=False
                )
                ex_info = gr.Markdown()
                ex_files = gr.File(label="Files", file_count="multiple", interactive=False)

            with gr.Tab("Random walk"):
                walk_start = _picker("Start latent")
                with gr.Row():
                    walk_frames = gr.Slider(2, 480, value=60, step=1, label="Frames")
                    walk_fps = gr.Slider(1, 60, value=30, step=1, label="Frames per second")
                    walk_end = gr.Slider(0, 1, value=1, step=0.05, label="How far towards w̄")
                with gr.Row():
                    walk_pert = gr.Number(0.0, label="Perturbation σ (0 = straight)", minimum=0)
                    walk_seed = gr.Number(0, label="Seed", precision=0, minimum=0)
                    walk_per_layer = gr.Checkbox(label="Perturb each layer independently")
                    walk_gif = gr.Checkbox(label="Also write a GIF")
                walk_run = gr.Button("Walk", variant="primary")
                walk_video = gr.Video(label="Walk", interactive=False)
                walk_strip = gr.Image(label="Frames", type="pil", format="png", interactive=False)
                walk_files = gr.File(label="Files", file_count="multiple", interactive=False)

        # --- Local edits (Image2StyleGAN++) ----------------------------------------------------
        with gr.Tab("Local edits"), gr.Row():
            with gr.Column(scale=2):
                le_editor = gr.ImageEditor(
                    label="Photo: upload it, then paint the region with the brush",
                    type="pil",
                    brush=gr.Brush(default_size=24, colors=["#ffffff", "#ff0000", "#000000"]),
                    eraser=gr.Eraser(),
                )
                le_op = gr.Radio(
                    [(label, key) for key, label in OPERATIONS.items()],
                    value="inpaint",
                    label="Operation (Image2StyleGAN++ Sec. 7)",
                )
                le_second = gr.Image(
                    label="Second image (crossover: the rest; local style: the style)",
                    type="filepath",
                )
                le_gen = gr.Dropdown(
                    _generator_choices(default_gen), value=default_gen,
                    allow_custom_value=True, label="Generator",
                )  # fmt: skip
                with gr.Row():
                    le_steps = gr.Number(1000, label="W+ steps", precision=0, minimum=0)
                    le_noise = gr.Number(
                        3000, label="Noise steps (paper: 3000)", precision=0, minimum=0
                    )
                with gr.Row():
                    le_vgg = gr.Dropdown(
                        VGG_CHOICES, value="vgg16-caffe", allow_custom_value=True,
                        label="VGG-16",
                    )  # fmt: skip
                    le_align = gr.Checkbox(
                        value=embed.default_align(default_gen), label="FFHQ face alignment"
                    )
                le_run = gr.Button("Run", variant="primary")
            with gr.Column(scale=3):
                le_result = gr.Image(label="Result", type="pil", format="png", interactive=False)
                le_status = gr.Markdown("Paint on the photo, choose an operation, press **Run**.")
                le_pictures = gr.Gallery(label="Pictures", columns=2, format="png")
                le_files = gr.File(label="Files", file_count="multiple", interactive=False)

        # --- Generate -------------------------------------------------------------------------
        with gr.Tab("Generate"):
            with gr.Row():
                g_gen = gr.Dropdown(
                    _generator_choices(default_gen),
                    value=default_gen,
                    allow_custom_value=True,
                    label="Generator",
                )
                g_seeds = gr.Textbox("0-7", label="Seeds", info="e.g. 0-7,12")
                g_psi = gr.Slider(0, 1.5, value=0.7, step=0.05, label="Truncation ψ (1 = none)")
                g_noise = gr.Radio(["const", "random", "none"], value="const", label="Noise")
            g_add = gr.Checkbox(value=True, label="Add the latents to the library (for Edit)")
            g_run = gr.Button("Generate", variant="primary")
            g_status = gr.Markdown()
            g_gallery = gr.Gallery(label="Images", columns=4, format="png")
            g_files = gr.File(label="Files", file_count="multiple", interactive=False)

        # --- events ---------------------------------------------------------------------------
        pickers = [
            morph_keys, st_content, st_style, ex_target, ex_neutral, ex_expressive, walk_start
        ]  # fmt: skip

        def refresh(lib: Library | None) -> tuple[Any, ...]:
            choices = [label for label, _ in (lib or [])]
            return (EditTab.library_table(lib), *[gr.update(choices=choices) for _ in pickers])

        def refresh_after(event: Dependency) -> None:
            event.then(refresh, library, [library_table, *pickers], api_visibility="private")

        gen.change(embed.on_generator_change, gen, align, api_visibility="private")
        preset.change(
            embed.on_preset_change,
            preset,
            [steps, space, init, lr, loss, perceptual_size, noise],
            api_visibility="private",
        )
        embed_inputs = [
            images, gen, preset, steps, space, init, seed, align, vgg, preview_every, lr, loss,
            perceptual_size, noise, batch_size, library,
        ]  # fmt: skip
        refresh_after(
            run.click(
                embed.run,
                embed_inputs,
                [progress, status, curve, results, latent_files, library],
                api_name="embed",
                concurrency_limit=1,
                concurrency_id="embed",
            )
        )
        run.click(
            lambda: "", None, stop_note, api_visibility="private", queue=False
        )  # clear the last note
        stop.click(embed.stop, None, stop_note, api_name="stop", concurrency_limit=None)
        refresh_after(
            upload.upload(
                edit.add_latents, [upload, library], [library, library_note], api_name="add_latents"
            )
        )
        morph_run.click(
            edit.morph,
            [morph_keys, morph_frames, morph_loop, morph_fps, morph_gif, edit_gen, library],
            [morph_video, morph_strip, morph_files],
            api_name="morph",
            concurrency_limit=1,  # one render at a time
            concurrency_id="render",
        )
        # the "from layer" slider follows the num_ws of the generator a transfer would load
        st_range = [st_content, st_style, edit_gen, st_layer, library]
        for trigger in (st_content.change, st_style.change, edit_gen.submit, edit_gen.blur):
            trigger(edit.from_layer_range, st_range, st_layer, api_visibility="private")
        st_run.click(
            edit.style_transfer,
            [st_content, st_style, st_layer, edit_gen, library],
            [st_result, st_strip, st_files],
            api_name="style_transfer",
            concurrency_limit=1,  # one render at a time
            concurrency_id="render",
        )
        ex_run.click(
            edit.expression,
            [
                ex_target, ex_neutral, ex_expressive, ex_from, ex_to, ex_count, ex_threshold,
                ex_channel, ex_normalize, edit_gen, library,
            ],
            [ex_strip, ex_info, ex_files],
            api_name="expression",
            concurrency_limit=1,  # one render at a time
            concurrency_id="render",
        )  # fmt: skip
        walk_run.click(
            edit.walk,
            [
                walk_start, walk_frames, walk_pert, walk_seed, walk_end, walk_per_layer,
                walk_fps, walk_gif, edit_gen, library,
            ],
            [walk_video, walk_strip, walk_files],
            api_name="walk",
            concurrency_limit=1,  # one render at a time
            concurrency_id="render",
        )  # fmt: skip
        refresh_after(
            g_run.click(
                edit.generate,
                [g_gen, g_seeds, g_psi, g_noise, g_add, library],
                [g_gallery, g_files, library, g_status],
                api_name="generate",
                concurrency_limit=1,  # one render at a time
                concurrency_id="render",
            )
        )

        refresh_after(
            le_run.click(
                local.run,
                [le_editor, le_op, le_second, le_gen, le_steps, le_noise, le_vgg, le_align,
                 library],
                [le_result, le_pictures, le_status, le_files, library],
                api_name="local_edit",
                concurrency_limit=1,
                concurrency_id="embed",  # one embedding at a time, with the Embed tab's
            )
        )  # fmt: skip

    app.queue()
    app.workspace = ws
    return app


def launch(
    app: App,
    host: str = "127.0.0.1",  # the interface to bind: localhost only unless told otherwise
    port: int | None = 7860,  # None = gradio picks a free port from 7860 on
    open_browser: bool = False,
    quiet: bool = False,
) -> str:
    """Start serving `app` locally (never a public share link) and return its URL at once;
    `app.block_thread()` then waits until Ctrl+C, `app.close()` stops it."""
    ws: Workspace = app.workspace
    _, local_url, _ = app.launch(
        server_name=host,
        server_port=port,
        share=False,
        inbrowser=open_browser,
        prevent_thread_lock=True,
        quiet=quiet,
        allowed_paths=[str(Path(ws.workdir))],
        ssr_mode=False,
    )
    return local_url
