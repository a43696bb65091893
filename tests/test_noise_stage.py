"""The Image2StyleGAN++ noise stage (Sec. 4.2, 6.2): after the W+ steps, only the noise maps are
optimised with W+ frozen. Targets are rendered by our exact StyleGAN2 (bit-equal to
stylegan2-ada-pytorch, tests/test_official_files.py) from a known w with *random* noise, so the
stored constant noise cannot reproduce them: known-latent + known-noise recovery."""

from __future__ import annotations

import pytest
import torch

from image2stylegan import metrics as M
from image2stylegan.embed import EmbedConfig, build_embedder
from image2stylegan.errors import I2SError

from .fixtures.embedding import embedding_generator
from .fixtures.stylegan2_fixtures import tiny_stylegan2

W_STEPS = 150


@pytest.fixture(scope="module")
def G():
    return embedding_generator(32, seed=0)


@pytest.fixture(scope="module")
def known(G):
    """(w* [2, num_ws, w_dim], noise* (random, not the stored maps), G(w*, noise*))."""
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        ws = G.mapping(torch.randn(2, G.z_dim, generator=gen), truncation_psi=0.7)
        noise = [torch.randn((2, 1, *b.shape[2:]), generator=gen) for b in G.noise_buffers()]
        return ws, noise, G.synthesis(ws, noise=noise)


def _psnrs(target: torch.Tensor, images: torch.Tensor) -> list[float]:
    return [M.psnr(target[i], images[i]) for i in range(target.shape[0])]


@pytest.fixture(scope="module")
def runs(G, known):
    """The same W+ run without and with a noise stage, and the joint schedule."""
    _, _, target = known
    base = EmbedConfig(steps=W_STEPS, loss="mse", lr=0.05)
    w_only = build_embedder(G, base).run(target)
    sequential = build_embedder(G, base.replace(noise_steps=W_STEPS)).run(target)
    joint = build_embedder(G, base.replace(steps=2 * W_STEPS, noise_joint=True)).run(target)
    return w_only, sequential, joint


def test_noise_stage_gains_over_the_same_w_plus_run(known, runs):
    _, _, target = known
    w_only, sequential, _ = runs
    before, after = _psnrs(target, w_only.images), _psnrs(target, sequential.images)
    for b, a in zip(before, after, strict=True):  # on the 8-bit images, as the PNGs hold them
        assert a >= b + 4.0, (before, after)
    assert sequential.history.shape[0] == 2 * W_STEPS


def test_sequential_keeps_w_plus_frozen_joint_does_not(G, runs):
    w_only, sequential, joint = runs
    assert torch.equal(sequential.ws, w_only.ws)  # the noise stage never touches W+
    stored = G.noise_buffers()
    assert len(sequential.noise) == len(stored)
    assert all(
        n.shape == (2, 1, *b.shape[2:]) for n, b in zip(sequential.noise, stored, strict=True)
    )
    assert not torch.equal(sequential.noise[-1][:1], stored[-1])
    assert not torch.allclose(joint.ws, w_only.ws)  # jointly, W+ moves with the noise
    assert len(joint.noise) == len(stored)


def test_known_latent_known_noise_recovery(G, known):
    """With w* given, the noise stage alone finds noise maps that reproduce the target, and the
    coarsest map (the layer with the strongest noise) correlates with the true noise."""
    ws, noise, target = known
    cfg = EmbedConfig(steps=0, loss="mse", init="file", noise_steps=300, noise_lr=0.1)
    res = build_embedder(G, cfg).run(target, init=ws)
    stored_psnr = _psnrs(target, G.synthesis(ws, noise_mode="const"))
    assert all(p < 15 for p in stored_psnr)  # the stored noise does not draw this target
    assert all(p > 30 for p in _psnrs(target, res.images)), _psnrs(target, res.images)
    assert torch.equal(res.ws, ws)
    for i in range(2):
        c = torch.corrcoef(torch.stack([res.noise[0][i].flatten(), noise[0][i].flatten()]))[0, 1]
        assert c > 0.5


def test_noise_stage_resumes_exactly_in_either_phase(G, known):
    _, _, target = known
    target = target[:1]
    cfg = EmbedConfig(steps=20, loss="mse", lr=0.05, noise_steps=20)
    emb = build_embedder(G, cfg)
    full = emb.run(target)
    for stop in (20, 31):  # at the end of the W+ steps, and inside the noise stage
        state = list(emb.iterate(target, report_every=5, stop_after=stop))[-1].state()
        assert state.step == stop
        resumed = emb.run(target, state=state)
        assert torch.equal(resumed.images, full.images)
        assert all(torch.equal(a, b) for a, b in zip(resumed.noise, full.noise, strict=True))
        assert torch.equal(resumed.history, full.history)


def test_noise_stage_is_batch_invariant(G, known):
    _, _, target = known
    cfg = EmbedConfig(steps=10, loss="mse", lr=0.05, noise_steps=10)
    both = build_embedder(G, cfg).run(target)
    second = build_embedder(G, cfg).run(target[1:])
    # float32 reduction order differs with the batch; lr 5 moves noise values by ~25
    assert torch.allclose(both.images[1:], second.images, atol=1e-4)
    for a, b in zip(both.noise, second.noise, strict=True):
        assert torch.allclose(a[1:], b, rtol=1e-5, atol=1e-3 * float(b.abs().max()))


def test_perceptual_noise_loss_and_config_checks(G, known):
    _, _, target = known
    cfg = EmbedConfig(steps=2, noise_steps=2, noise_loss="perceptual+mse", perceptual_size=16)
    res = build_embedder(G, cfg, vgg="random").run(target[:1])
    assert res.history.shape[0] == 4 and float(res.history[-1, 0, 1]) > 0  # perceptual term
    with pytest.raises(ValueError, match="noise loss must be mse or perceptual\\+mse"):
        EmbedConfig(noise_loss="lpips")
    with pytest.raises(ValueError, match="excludes the sequential noise stage"):
        EmbedConfig(noise_joint=True, noise_steps=5)
    with pytest.raises(ValueError, match="choose one"):
        EmbedConfig(noise_steps=5, optimize_noise=True)
    # an old config without the stage keeps its resume fingerprint
    assert EmbedConfig().fingerprint() == EmbedConfig(noise_lr=1.0).fingerprint()
    assert EmbedConfig().fingerprint() != EmbedConfig(noise_steps=1).fingerprint()


def test_a_generator_without_noise_inputs_says_so():
    G = tiny_stylegan2(32, use_noise=False)
    G.source = "random:no-noise"
    with pytest.raises(I2SError, match="random:no-noise has no noise inputs"):
        build_embedder(G, EmbedConfig(steps=1, loss="mse", noise_steps=1))
    build_embedder(G, EmbedConfig(steps=1, loss="mse"))  # without the stage it embeds


# --- files: latent.npz holds the noise maps; every render uses them ---------------------------


@pytest.fixture(scope="module")
def noisy_run(tmp_path_factory, G):
    """`embed --noise-steps` on two frames rendered by G from known w with random noise."""
    from PIL import Image

    from image2stylegan.checkpoints.native import save_native
    from image2stylegan.image import tensor_to_pil

    d = tmp_path_factory.mktemp("noisy")
    gen_file = d / "tiny.safetensors"
    save_native(G, gen_file, source="test")
    gen = torch.Generator().manual_seed(9)
    with torch.no_grad():
        ws = G.mapping(torch.randn(2, G.z_dim, generator=gen), truncation_psi=0.7)
        noise = [torch.randn((2, 1, *b.shape[2:]), generator=gen) for b in G.noise_buffers()]
        frames = G.synthesis(ws, noise=noise)
    paths = []
    for i in range(2):
        paths.append(d / f"img{i}.png")
        tensor_to_pil(frames[i]).save(paths[-1])
    args = ["--steps", "30", "--lr", "0.05", "--loss", "mse", "--noise-steps", "40", "--quiet"]
    rc = _cli(["embed", *paths, "-g", gen_file, "--out", d / "emb", *args, "--batch-size", "2"])
    assert rc == 0
    assert Image.open(d / "emb" / "img0" / "reconstruction.png").size == (32, 32)
    return d, gen_file


def _cli(args: list) -> int:
    from image2stylegan.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    return int(exc.value.code or 0)


def test_latent_file_holds_the_noise_maps_and_rerenders_the_reconstruction(noisy_run, G):
    import numpy as np
    from PIL import Image

    from image2stylegan import load_latent
    from image2stylegan.latents import latent_noise

    d, gen_file = noisy_run
    folder = d / "emb" / "img0"
    lat = load_latent(folder / "latent.npz")
    maps = latent_noise(lat)
    assert maps is not None and [tuple(t.shape) for t in maps] == [
        (1, 1, *b.shape[2:]) for b in G.noise_buffers()
    ]
    assert all(t.dtype == torch.float32 for t in maps)
    assert lat.metadata["noise_stage"] == {
        "schedule": "sequential", "steps": 40, "lr": 5.0, "loss": "mse"
    }  # fmt: skip
    assert lat.metadata["steps"] == 70 and lat.metadata["noise_maps"] == len(maps)
    recon = np.asarray(Image.open(folder / "reconstruction.png"))
    assert (
        _cli(["generate", folder / "latent.npz", "-g", gen_file, "--out", d / "g.png", "-q"]) == 0
    )
    assert np.array_equal(np.asarray(Image.open(d / "g.png")), recon)
    # without its noise maps the code draws something else
    no_noise = G.synthesis(lat.w, noise_mode="const")
    assert M.psnr(recon, no_noise) < M.psnr(recon, recon) - 10
    # metadata PSNR is PSNR(target.png, reconstruction.png)
    target = Image.open(folder / "target.png")
    assert abs(lat.metadata["metrics"]["psnr"] - M.psnr(target, recon)) < 0.1
    assert lat.metadata["metrics"]["psnr"] == pytest.approx(M.psnr(target, recon), abs=1e-9)


def test_morph_interpolates_noise_and_edits_use_the_latents_noise(noisy_run):
    import numpy as np
    from PIL import Image

    d, gen_file = noisy_run
    a, b = d / "emb" / "img0" / "latent.npz", d / "emb" / "img1" / "latent.npz"
    out = d / "morph"
    assert _cli(["morph", a, b, "--frames", "5", "-g", gen_file, "--out", out, "-q"]) == 0
    first, last = (np.asarray(Image.open(out / f"frame_{k:04d}.png")) for k in (0, 4))
    for frame, folder in ((first, "img0"), (last, "img1")):
        recon = np.asarray(Image.open(d / "emb" / folder / "reconstruction.png"))
        assert np.array_equal(frame, recon)  # both ends reproduce the reconstructions
    assert _cli(["style-transfer", a, b, "--from-layer", "8", "-g", gen_file, "--out",
                 d / "st.png", "-q"]) == 0  # fmt: skip
    # all layers from the content: the content's reconstruction, with its noise
    recon_a = np.asarray(Image.open(d / "emb" / "img0" / "reconstruction.png"))
    assert np.array_equal(np.asarray(Image.open(d / "st.png")), recon_a)
    assert _cli(["expression", a, a, b, "--strengths", "0", "-g", gen_file, "--out",
                 d / "ex.png", "-q"]) == 0  # fmt: skip
    assert np.array_equal(np.asarray(Image.open(d / "ex.png")), recon_a)  # λ = 0: the target
    assert _cli(["walk", a, "--frames", "3", "--end", "0", "-g", gen_file, "--out",
                 d / "walk", "-q", "--no-strip"]) == 0  # fmt: skip
    assert np.array_equal(np.asarray(Image.open(d / "walk" / "frame_0000.png")), recon_a)
