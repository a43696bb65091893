"""The web UI (`image2stylegan serve`): callbacks on a tiny generator, errors, a live server."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
import torch
from PIL import Image

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
gr = pytest.importorskip("gradio")

from image2stylegan import load_latent, save_latent, style_transfer  # noqa: E402
from image2stylegan.checkpoints.native import save_native  # noqa: E402
from image2stylegan.edit.render import render_images  # noqa: E402
from image2stylegan.errors import WeightsError  # noqa: E402
from image2stylegan.web import build_app, launch  # noqa: E402
from image2stylegan.web.editing import EditTab, parse_seeds  # noqa: E402
from image2stylegan.web.embedding import EmbedTab  # noqa: E402

from .fixtures.embedding import embedding_generator  # noqa: E402

RES = 32  # the tiny generator's resolution: 8 ws of 16 dims


@pytest.fixture(scope="module")
def gen_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("gen") / "tiny.safetensors"
    save_native(embedding_generator(RES), path, source="test")
    return path


@pytest.fixture(scope="module")
def app(gen_file, tmp_path_factory):
    return build_app(generator=str(gen_file), device="cpu", workdir=tmp_path_factory.mktemp("web"))


@pytest.fixture(scope="module")
def embed_tab(app) -> EmbedTab:
    return EmbedTab(app.workspace)


@pytest.fixture(scope="module")
def edit_tab(app) -> EditTab:
    return EditTab(app.workspace)


@pytest.fixture(scope="module")
def library(app, gen_file, tmp_path_factory) -> list[list[str]]:
    """A latent library of four latents of the tiny generator, recording it in their metadata."""
    G, _ = app.workspace.generator(str(gen_file))
    folder = tmp_path_factory.mktemp("latents")
    with torch.no_grad():
        ws = G.mapping(torch.randn(4, G.z_dim, generator=torch.Generator().manual_seed(1)), 0.7)
    return [
        [f"lat{i}", str(save_latent(folder / f"lat{i}.npz", ws[i], {"generator": str(gen_file)}))]
        for i in range(4)
    ]


@pytest.fixture(scope="module")
def latents(library) -> list[str]:
    """The library's labels, as the dropdowns send them."""
    return [label for label, _ in library]


def path_of(library, label: str) -> str:
    return dict(library)[label]


def embed_args(images, gen_file, steps=6, preview_every=2, batch_size=2, **kw):
    """EmbedTab.run's positional arguments as the form sends them (fast test settings)."""
    args = dict(
        images=[str(p) for p in images],
        generator=str(gen_file),
        preset="paper",
        steps=steps,
        space="w+",
        init="mean",
        seed=0,
        align=False,
        vgg="random",
        preview_every=preview_every,
        lr=0.05,
        loss="perceptual+mse",
        perceptual_size="16",
        noise="const",
        batch_size=batch_size,
        library=[],
    )
    args.update(kw)
    return list(args.values())


def read_mp4(path) -> tuple[tuple[int, int], int]:
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = reader.__next__()
    return tuple(meta["size"]), sum(1 for _ in reader)


# --- Embed -------------------------------------------------------------------------------------


def test_embed_streams_progress_and_ends_with_latent_files(embed_tab, gen_file, shared_images):
    images = [shared_images / "face_01.jpg", shared_images / "cat_01.jpg"]
    updates = list(embed_tab.run(*embed_args(images, gen_file, steps=6, preview_every=2)))
    previews = [u for u in updates if isinstance(u[0], Image.Image)]
    assert len(previews) >= 3  # steps 2 and 4, then the final result
    for progress, status, curve, *_ in previews[:-1]:
        assert progress.size == (2 * 256 + 4, 2 * 256 + 4)  # 2 rows of target | recon, enlarged
        assert "step" in status and "face_01" in status and "cat_01" in status
        assert isinstance(curve, Image.Image)
    progress, status, curve, gallery, files, library = updates[-1]
    assert "Done" in status and isinstance(curve, Image.Image)
    assert [caption.split(":")[0] for _, caption in gallery] == ["face_01", "cat_01"]
    assert all(im.size == (RES, RES) for im, _ in gallery)
    assert [Path(f).name for f in files] == ["face_01.npz", "cat_01.npz"]
    assert [label for label, _ in library] == [
        f"face_01 · {Path(files[0]).parent.name}",
        f"cat_01 · {Path(files[0]).parent.name}",
    ]
    for path, name in zip(files, ["face_01.jpg", "cat_01.jpg"], strict=True):
        lat = load_latent(path)
        assert lat.w.shape == (1, 8, 16)
        meta = lat.metadata
        assert meta["generator"] == str(gen_file) and len(meta["generator_sha256"]) == 64
        assert meta["image"] == name and len(meta["image_sha256"]) == 64
        assert meta["steps"] == 6 and meta["vgg"] == "random" and meta["space"] == "w+"
        assert meta["stopped_early"] is False and set(meta["final_loss"]) >= {"total", "mse"}
        folder = Path(path).parent
        stem = Path(path).stem
        assert Image.open(folder / f"{stem}_target.png").size == (RES, RES)
        assert Image.open(folder / f"{stem}_reconstruction.png").size == (RES, RES)
        with np.load(path, allow_pickle=False) as data:  # NVIDIA's layout
            assert data["w"].dtype == np.float32 and json.loads(str(data["metadata"]))


def test_stop_saves_the_latent_reached_so_far(embed_tab, gen_file, shared_images):
    run = embed_tab.run(
        *embed_args([shared_images / "face_02.jpg"], gen_file, steps=400, preview_every=2)
    )
    for update in run:
        if isinstance(update[0], Image.Image):  # the first preview: press Stop
            assert "Stopping" in embed_tab.stop()
            break
    *_, (_, status, _, gallery, files, library) = run
    assert "Stopped at step" in status and len(gallery) == 1 and len(library) == 1
    meta = load_latent(files[0]).metadata
    assert meta["stopped_early"] is True and 2 <= meta["steps"] < 400
    assert "No embedding" in embed_tab.stop()  # nothing running any more


def test_embed_space_w_stores_the_single_code(embed_tab, gen_file, shared_images):
    *_, last = embed_tab.run(
        *embed_args([shared_images / "dog_01.jpg"], gen_file, steps=2, space="w")
    )
    data = np.load(last[4][0], allow_pickle=False)
    assert data["w_single"].shape == (1, 16) and np.allclose(data["w"][0], data["w_single"])


def test_embed_errors_are_one_line_messages(embed_tab, gen_file, shared_images, tmp_path):
    def error(*args) -> str:
        with pytest.raises(gr.Error) as exc:
            list(embed_tab.run(*args))
        message = str(exc.value.message)
        assert "\n" not in message and "Traceback" not in message
        return message

    assert "upload one or more images" in error(*embed_args([], gen_file))
    not_image = tmp_path / "notes.jpg"
    not_image.write_text("not a picture")
    assert "notes.jpg" in error(*embed_args([not_image], gen_file))
    assert "no such file" in error(*embed_args([shared_images / "face_01.jpg"], "missing.pt"))
    assert "perceptual size" in error(
        *embed_args([shared_images / "face_01.jpg"], gen_file, perceptual_size="tiny")
    )
    # hostile form values (issue 11): refused before any VGG-16 of that size or history is built
    assert "larger than the generator's" in error(
        *embed_args([shared_images / "face_01.jpg"], gen_file, perceptual_size="4096")
    )
    assert "steps must be 0 to 1,000,000" in error(
        *embed_args([shared_images / "face_01.jpg"], gen_file, steps=10**12)
    )
    assert "lr must be" in error(*embed_args([shared_images / "face_01.jpg"], gen_file, lr=-1))
    # one bad image among good ones is named; the others are embedded
    *_, last = embed_tab.run(
        *embed_args([not_image, shared_images / "face_03.jpg"], gen_file, steps=1)
    )
    assert "notes.jpg" in last[1] and [Path(f).name for f in last[4]] == ["face_03.npz"]


def test_missing_weights_offline_is_a_message(embed_tab, shared_images, monkeypatch):
    import image2stylegan.checkpoints.download as download

    def offline(*args, **kwargs):
        raise WeightsError("no answer from the download address (offline?)")

    monkeypatch.setattr(download, "download", offline)
    with pytest.raises(gr.Error, match="ffhq-1024: no answer"):
        list(embed_tab.run(*embed_args([shared_images / "face_01.jpg"], "ffhq-1024")))


def test_align_default_follows_the_generator(embed_tab, gen_file):
    assert embed_tab.default_align("ffhq-1024") is True
    assert embed_tab.default_align("lsun-cat-256") is False
    assert embed_tab.default_align(str(gen_file)) is False
    steps, space, *_ = embed_tab.on_preset_change("nvidia")
    assert (steps, space) == (1000, "w")


# --- Edit --------------------------------------------------------------------------------------


def test_morph_writes_video_strip_and_gif(edit_tab, latents, library):
    video, strip, files = edit_tab.morph(latents[:3], 5, False, 10, True, "", library)
    assert read_mp4(video) == ((RES, RES), 9)  # 2 segments of 5 frames sharing one
    assert strip.size == (8 * RES, RES)
    assert [Path(f).suffix for f in files] == [".mp4", ".gif", ".png"]
    with Image.open(files[1]) as gif:
        assert gif.n_frames == 9


def test_style_transfer_is_the_library_crossover(edit_tab, app, gen_file, latents, library):
    result, strip, files = edit_tab.style_transfer(latents[0], latents[1], 3, "", library)
    assert result.size == (RES, RES) and strip.size == (3 * RES, RES)
    G, _ = app.workspace.generator(str(gen_file))
    w_c, w_s = (load_latent(path_of(library, k)).w for k in latents[:2])
    w = style_transfer(w_c, w_s, 3)
    assert np.array_equal(np.asarray(result), np.asarray(render_images(G, w)[0]))
    assert all(Path(f).is_file() for f in files)


def test_expression_strip_has_one_image_per_strength(edit_tab, app, gen_file, latents, library):
    strip, info, files = edit_tab.expression(
        latents[0], latents[1], latents[2], -1, 1, 5, 0.1, "feature", "channel", "", library
    )
    assert strip.size == (5 * RES, RES) and "zeroed" in info and len(files) == 6
    G, _ = app.workspace.generator(str(gen_file))
    (target,) = render_images(G, load_latent(path_of(library, latents[0])).w)  # λ = 0: the target
    middle = Image.open(files[3])
    assert "+0.000" in files[3] and np.array_equal(np.asarray(middle), np.asarray(target))


def test_walk_video(edit_tab, latents, library):
    video, strip, _ = edit_tab.walk(latents[0], 6, 0.5, 1, 1.0, False, 12, False, "", library)
    assert read_mp4(video) == ((RES, RES), 6) and strip.size == (6 * RES, RES)


def test_generate_adds_latents_to_the_library(edit_tab, gen_file):
    gallery, files, library, status = edit_tab.generate(
        str(gen_file), "3-5", 0.7, "const", True, []
    )
    assert [caption for _, caption in gallery] == ["seed 3", "seed 4", "seed 5"]
    assert all(im.size == (RES, RES) for im, _ in gallery)
    assert len(library) == 3 and "3 latent(s) added" in status
    assert "(ψ = 0.7, noise const)" in status  # StyleGAN2: the noise mode used
    assert load_latent(files[1]).metadata["noise_mode"] == "const"
    lat = load_latent(files[1])
    assert lat.metadata["seed"] == 3 and lat.metadata["truncation_psi"] == 0.7
    assert lat.w.shape == (1, 8, 16)
    assert "seed 3" in EditTab.library_table(library)


SG3 = "random:stylegan3-t-16"  # a tiny StyleGAN3-T: 16 ws, no noise inputs


@pytest.fixture(scope="module")
def sg3_library(edit_tab) -> list[list[str]]:
    """Two latents of the tiny StyleGAN3, from the Generate tab (they record the generator)."""
    _, _, library, _ = edit_tab.generate(SG3, "0-1", 0.7, "const", True, [])
    return library


def test_style_slider_follows_the_generators_num_ws(edit_tab, app, gen_file, latents, library,
                                                    sg3_library):  # fmt: skip
    """The "from layer" slider's maximum is num_ws of the generator a transfer would load: the
    one the chosen latents record, or the Generator field's."""
    G2, _ = app.workspace.generator(str(gen_file))
    G3, _ = app.workspace.generator(SG3)
    assert (G2.num_ws, G3.num_ws, G3.num_noise_inputs) == (8, 16, 0)  # not the slider's 18
    sg2 = edit_tab.from_layer_range(latents[0], latents[1], "", 9, library)
    assert sg2["maximum"] == G2.num_ws and sg2["value"] == 4  # 9 > 8: half the layers
    assert "this generator: 8" in sg2["info"]
    sg3_labels = [label for label, _ in sg3_library]
    sg3 = edit_tab.from_layer_range(*sg3_labels, "", 9, sg3_library)
    assert sg3["maximum"] == G3.num_ws and sg3["value"] == 9  # 9 fits: kept
    by_field = edit_tab.from_layer_range(None, None, SG3, 17, [])  # Generator field, no latents
    assert by_field["maximum"] == 16 and by_field["value"] == 8
    assert edit_tab.from_layer_range(sg3_labels[0], None, "", 16, sg3_library)["value"] == 16
    # nothing to go on, or latents that do not fit: no change (Transfer says what is wrong)
    assert "maximum" not in edit_tab.from_layer_range(None, None, "", 9, [])
    assert "maximum" not in edit_tab.from_layer_range(sg3_labels[0], None, str(gen_file), 9,
                                                      sg3_library)  # fmt: skip
    # the ends of the slider transfer; past them, the callback's own message
    first, second = (load_latent(path_of(sg3_library, k)).w for k in sg3_labels)
    result, _, _ = edit_tab.style_transfer(*sg3_labels, 16, "", sg3_library)  # all content
    assert np.array_equal(np.asarray(result), np.asarray(render_images(G3, first)[0]))
    with pytest.raises(gr.Error, match=r"outside this generator's layers 0\.\.16"):
        edit_tab.style_transfer(*sg3_labels, 17, "", sg3_library)
    result, _, _ = edit_tab.style_transfer(*sg3_labels, 0, "", sg3_library)  # all style
    assert np.array_equal(np.asarray(result), np.asarray(render_images(G3, second)[0]))


def test_style_slider_is_wired_to_the_latents_and_generator(app):
    fns = [fn for fn in app.fns.values() if getattr(fn.fn, "__name__", "") == "from_layer_range"]
    assert len(fns) == 4  # content, style, Generator field (submit, blur)
    assert {out.label for fn in fns for out in fn.outputs} == {"From layer"}


def test_generate_status_on_stylegan3_says_no_noise_inputs(edit_tab, app, sg3_library):
    from image2stylegan.cli.edit_common import _noise_used

    G3, _ = app.workspace.generator(SG3)
    cli_says = _noise_used(G3, None)
    assert cli_says == "none (StyleGAN3 has no noise inputs)"
    for mode in ("const", "random"):
        gallery, files, _, status = edit_tab.generate(SG3, "2", 0.7, mode, True, [])
        assert f"noise {cli_says}" in status and "noise const" not in status
        assert load_latent(files[1]).metadata["noise_mode"] == cli_says
        assert gallery[0][0].size == (16, 16)


def test_edit_errors_are_one_line_messages(edit_tab, latents, library, tmp_path):
    def error(fn, *args) -> str:
        with pytest.raises(gr.Error) as exc:
            fn(*args)
        message = str(exc.value.message)
        assert "\n" not in message and "Traceback" not in message
        return message

    style = edit_tab.style_transfer
    assert "at least two" in error(edit_tab.morph, latents[:1], 5, False, 10, False, "", library)
    assert "choose the style latent" in error(style, latents[0], None, 4, "", library)
    # only latents of the session's library: a request cannot name other files
    assert "not in the latent library" in error(style, latents[0], "/etc/passwd", 4, "", library)
    other = save_latent(tmp_path / "other.npz", np.zeros((10, 16), np.float32), {})
    more = [*library, ["other", str(other)]]
    assert "records no generator" in error(style, latents[0], "other", 4, "", more)
    G_path = load_latent(path_of(library, latents[0])).metadata["generator"]
    message = error(style, latents[0], "other", 4, G_path, more)
    assert "style latent" in message and "different generator" in message
    assert "outside" in error(style, latents[0], latents[1], 99, "", library)
    assert "below the threshold" in error(
        edit_tab.expression, *latents[:3], -1, 1, 3, 1e6, "feature", "channel", "", library
    )
    assert "seeds" in error(edit_tab.generate, G_path, "seven", 0.7, "const", False, [])
    bogus = tmp_path / "bogus.npz"
    bogus.write_text("hello")
    assert "bogus.npz" in error(edit_tab.add_latents, [str(bogus)], [])
    added, note = edit_tab.add_latents([path_of(library, latents[0]), str(bogus)], [])
    assert [label for label, _ in added] == ["lat0 · uploaded"] and "not added" in note


def test_parse_seeds():
    assert parse_seeds("0-3, 7") == [0, 1, 2, 3, 7]
    with pytest.raises(Exception, match="seeds"):
        parse_seeds("5-2")


# --- the app -----------------------------------------------------------------------------------


def test_build_app_has_the_tabs_and_endpoints(app):
    assert isinstance(app, gr.Blocks)
    names = {fn.api_name for fn in app.fns.values()}
    assert {"embed", "stop", "morph", "style_transfer", "expression", "walk", "generate"} <= names
    labels = {getattr(b, "label", None) for b in app.blocks.values()}
    assert {"Embed", "Edit", "Generate", "Morph", "Style transfer"} <= labels


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_live_server_serves_the_page_and_an_endpoint(gen_file, tmp_path, monkeypatch):
    import httpx
    from gradio_client import Client

    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)  # localhost only
    app = build_app(generator=str(gen_file), device="cpu", workdir=tmp_path / "out")
    url = launch(app, host="127.0.0.1", port=_free_port(), quiet=True)
    try:
        assert url.startswith("http://127.0.0.1:")
        page = httpx.get(url, timeout=30)
        assert page.status_code == 200 and "image2stylegan" in page.text
        client = Client(url, verbose=False, download_files=str(tmp_path / "downloads"))
        gallery, files, status = client.predict(
            str(gen_file), "0-1", 0.7, "const", True, api_name="/generate"
        )
        assert len(gallery) == 2 and "2 image(s)" in status
        assert Image.open(gallery[0]["image"]).size == (RES, RES)
        assert sorted(Path(f).name for f in files) == ["generated.png", "seed0000.npz",
                                                        "seed0001.npz"]  # fmt: skip
        # the session's library (a gr.State) now holds the seeds: morph them by label
        run = "generate-0001"  # the app's first run folder
        video, _, _ = client.predict(
            [f"seed 0 · {run}", f"seed 1 · {run}"], 3, False, 10, False, "", api_name="/morph"
        )
        video = video["video"] if isinstance(video, dict) else video  # gradio_client 1.x: a dict
        assert read_mp4(video) == ((RES, RES), 3)
    finally:
        app.close()
