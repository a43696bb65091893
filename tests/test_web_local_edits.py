"""The web UI's Local edits tab (Image2StyleGAN++ Sec. 7): the painted region becomes the mask of
each operation; results join the latent library."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
gr = pytest.importorskip("gradio")

from image2stylegan import load_latent  # noqa: E402
from image2stylegan.checkpoints.native import save_native  # noqa: E402
from image2stylegan.image import tensor_to_pil  # noqa: E402
from image2stylegan.web import build_app  # noqa: E402
from image2stylegan.web.common import UserError  # noqa: E402
from image2stylegan.web.local_edits import LocalEditTab, editor_mask  # noqa: E402

from .fixtures.embedding import embedding_generator  # noqa: E402


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("local_web")
    G = embedding_generator(32)
    save_native(G, d / "g.safetensors", source="test")
    app = build_app(generator=str(d / "g.safetensors"), device="cpu", workdir=d / "web")
    with torch.no_grad():
        imgs = G.synthesis(G.mapping(torch.randn(2, G.z_dim)), noise_mode="const")
    photo, second = tensor_to_pil(imgs[0]), tensor_to_pil(imgs[1])
    second.save(d / "second.png")
    layer = Image.new("RGBA", photo.size, (0, 0, 0, 0))
    ImageDraw.Draw(layer).rectangle((8, 8, 20, 20), fill=(255, 0, 0, 255))
    composite = photo.copy()
    composite.paste(layer, mask=layer)
    value = {"background": photo, "layers": [layer], "composite": composite}
    return LocalEditTab(app.workspace), value, d


def test_editor_mask_is_the_painted_region(setup):
    _, value, _ = setup
    photo, edited, mask = editor_mask(value)
    m = np.asarray(mask)
    assert m[8:21, 8:21].min() == 255 and m[:8].max() == 0 and m[21:].max() == 0
    assert np.asarray(edited)[10, 10].tolist() == [255, 0, 0] and photo.size == (32, 32)
    with pytest.raises(UserError, match="paint the region"):
        editor_mask({"background": photo, "layers": [], "composite": photo})
    with pytest.raises(UserError, match="upload a photo"):
        editor_mask(None)


@pytest.mark.parametrize(
    ("operation", "pictures"),
    [("inpaint", ["fill", "composite"]), ("crossover", ["crossover"]),
     ("local-style", ["local_style"]), ("scribble", ["scribble"])],
)  # fmt: skip
def test_each_operation_runs_and_joins_the_library(setup, operation, pictures):
    tab, value, d = setup
    result, gallery, status, files, library = tab.run(
        value, operation, str(d / "second.png"), str(d / "g.safetensors"), 3, 2, "random",
        False, [],
    )  # fmt: skip
    assert result.size == (32, 32) and [name for _, name in gallery] == pictures
    assert "done" in status and len(library) == 1
    latent = load_latent(library[0][1])
    assert latent.metadata["application"].lower().startswith(operation.split("-")[0][:5])
    assert latent.metadata["noise_maps"] > 0 and all(os.path.exists(f) for f in files)


def test_operations_needing_a_second_image_say_so(setup):
    tab, value, d = setup
    with pytest.raises(gr.Error, match="needs the second image"):
        tab.run(value, "crossover", None, str(d / "g.safetensors"), 1, 0, "random", False, [])
