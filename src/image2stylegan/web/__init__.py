"""The local web UI of `image2stylegan serve` (needs the `ui` extra: gradio).

    from image2stylegan.web import build_app, launch
    app = build_app(generator="ffhq-1024")
    url = launch(app, host="127.0.0.1", port=7860)
    app.block_thread()

A front end, like the CLI (the last stage of the pipeline: ... -> embed -> edit -> experiments ->
web / cli): embedding runs the embed runner the CLI runs (`EmbedPipeline.iterate`), the edit
tabs the `edit` functions and helpers of the editing commands, files go through `load_latent` /
`save_latent`.
"""

from __future__ import annotations

from .app import build_app, launch

__all__ = ["build_app", "launch"]
