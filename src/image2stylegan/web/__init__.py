"""The local web UI of `image2stylegan serve` (needs the `ui` extra: gradio).

    from image2stylegan.web import build_app, launch
    app = build_app(generator="ffhq-1024")
    url = launch(app, host="127.0.0.1", port=7860)
    app.block_thread()

The UI uses only the library's public API: `Embedder.iterate` for embedding (the CLI's step loop),
the `edit` functions for the applications of Sec. 4, `load_latent` / `save_latent` for files.
"""

from __future__ import annotations

from .app import build_app, launch

__all__ = ["build_app", "launch"]
