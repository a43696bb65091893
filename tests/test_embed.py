"""Algorithm 1 (Sec. 5) on a tiny generator: known-latent recovery, W+ vs W vs Z, batch-size
invariance, determinism, presets and options.

Targets are G(w*) for known w* (truncated with psi 0.7, i.e. typical codes). The loss is Eq. 1
with randomly initialised VGG-16 weights (the real ones cannot be downloaded here); because the
tiny generator draws 32 px images, the perceptual term sees them at 16 px (the "resizing trick"
of the supplement, scaled down) and Adam runs at lr 0.05 (5x the paper's) so that recovery fits
in 300 CPU steps. Everything else is the paper's algorithm.
"""

from __future__ import annotations

import pytest
import torch

from image2stylegan import EmbedConfig, embed, load_vgg16
from image2stylegan.embed import PRESETS, build_embedder
from image2stylegan.embed.embedder import EmbedState, noise_regularization

from .fixtures.embedding import embedding_generator, known_targets, mse, psnr

FAST = EmbedConfig(steps=300, lr=0.05, perceptual_size=16)


@pytest.fixture(scope="module")
def G():
    return embedding_generator(32)


@pytest.fixture(scope="module")
def vgg():
    return load_vgg16("random", seed=0)


@pytest.fixture(scope="module")
def targets(G):
    return known_targets(G, 4, seed=1)


@pytest.fixture(scope="module")
def batch_result(G, vgg, targets):
    return embed(G, targets[1], FAST, vgg=vgg)


@pytest.fixture(scope="module")
def single_result(G, vgg, targets):
    return embed(G, targets[1][:1], FAST, vgg=vgg)


def _init_images(G, n):
    with torch.no_grad():
        return G.synthesis(G.w_avg.expand(n, G.num_ws, -1).clone())


def test_known_latent_recovery_single_image(G, targets, single_result):
    target = targets[1][:1]
    mse0 = mse(_init_images(G, 1), target)
    mse1 = mse(single_result.images, target)
    assert (mse0 / mse1).min() >= 100, f"MSE fell only {float(mse0 / mse1):.1f}x"
    assert psnr(single_result.images, target).min() >= 30


def test_known_latent_recovery_batch_of_4(G, targets, batch_result):
    target = targets[1]
    ratio = mse(_init_images(G, 4), target) / mse(batch_result.images, target)
    assert ratio.min() >= 100, f"MSE fell only {ratio.tolist()}x"
    assert psnr(batch_result.images, target).min() >= 30
    # the reported final loss is the loss of the returned image (one more evaluation)
    assert batch_result.losses["total"].shape == (4,)
    assert batch_result.history.shape == (300, 4, 3)
    assert (batch_result.history[-1, :, 0] < batch_result.history[0, :, 0] / 50).all()


def test_known_latent_recovery_stylegan1(vgg):
    # the paper's architecture (AdaIN, blur, instance norm): typical codes (psi 0.5)
    G1 = embedding_generator(32, arch="stylegan1")
    _, target = known_targets(G1, 4, seed=1, psi=0.5)
    result = embed(G1, target, FAST, vgg=vgg)
    ratio = mse(_init_images(G1, 4), target) / mse(result.images, target)
    assert ratio.min() >= 100, f"MSE fell only {ratio.tolist()}x"
    assert psnr(result.images, target).min() >= 30


def test_result_does_not_depend_on_batch_size(single_result, batch_result):
    # per-image loss + elementwise Adam: image 0 alone and in a batch of 4 take the same path
    torch.testing.assert_close(single_result.ws[0], batch_result.ws[0], atol=1e-4, rtol=0)
    torch.testing.assert_close(
        single_result.history[:, 0], batch_result.history[:, 0], atol=1e-3, rtol=1e-4
    )


def test_w_plus_beats_w_and_z(G, vgg):
    # Sec. 3.3: codes with a different w per layer (and real images) are outside W; W+ reaches
    # them, W and Z do not.
    _, target = known_targets(G, 2, seed=7, mixed=True)
    cfg = FAST.replace(steps=150)
    final = {
        space: mse(embed(G, target, cfg.replace(space=space), vgg=vgg).images, target)
        for space in ("w+", "w", "z")
    }
    assert (final["w+"] < final["w"]).all(), final
    assert (final["w+"] < final["z"]).all(), final
    assert (final["w+"] * 3 < final["w"]).all(), final


def test_fixed_seed_is_deterministic_and_seeds_differ(G, vgg, targets):
    cfg = FAST.replace(steps=15, init="random", noise="resample")
    a = embed(G, targets[1][:2], cfg, vgg=vgg)
    b = embed(G, targets[1][:2], cfg, vgg=vgg)
    c = embed(G, targets[1][:2], cfg.replace(seed=1), vgg=vgg)
    assert torch.equal(a.ws, b.ws) and torch.equal(a.history, b.history)
    assert not torch.allclose(a.ws, c.ws)


def test_random_init_is_uniform_in_w_plus(G, vgg, targets):
    emb = build_embedder(G, FAST.replace(steps=0, init="random", seed=3), vgg=vgg)
    state = next(iter(emb.iterate(targets[1][:2]))).state()
    x = state.latent
    assert x.shape == (2, G.num_ws, G.w_dim)
    assert x.min() >= -1 and x.max() <= 1 and x.std() > 0.5  # U[-1, 1]: std 0.577
    assert torch.equal(x[0], x[1])  # one seed per image: the result depends on image + seed only


@pytest.mark.parametrize("space", ["w", "z"])
def test_w_and_z_spaces_return_their_codes(G, vgg, targets, space):
    res = embed(G, targets[1][:1], FAST.replace(steps=5, space=space), vgg=vgg)
    assert res.ws.shape == (1, G.num_ws, G.w_dim)
    if space == "w":
        assert res.w_single.shape == (1, G.w_dim) and res.z is None
        assert torch.equal(res.ws[0], res.w_single.expand(G.num_ws, -1))
    else:
        assert res.z.shape == (1, G.z_dim) and res.w_single is None
        with torch.no_grad():
            torch.testing.assert_close(res.ws, G.mapping(res.z))


def test_resume_state_continues_exactly(G, vgg, targets):
    cfg = FAST.replace(steps=20, noise="resample", init="random")
    emb = build_embedder(G, cfg, vgg=vgg)
    target = targets[1][:2]
    full = emb.run(target, report_every=10)
    first = list(emb.iterate(target, report_every=5, stop_after=10))[-1].state()
    # through the on-disk form (what the CLI checkpoints hold), split per image and merged again
    restored = EmbedState.merge([EmbedState.from_dict(s.to_dict()) for s in first.split()])
    resumed = emb.run(target, state=restored, report_every=10)
    assert torch.equal(full.ws, resumed.ws)
    assert torch.equal(full.history, resumed.history)


@pytest.mark.parametrize("noise", ["const", "resample", "restart"])
def test_noise_handling(G, vgg, targets, noise):
    res = embed(G, targets[1][:1], FAST.replace(steps=3, noise=noise), vgg=vgg)
    assert torch.isfinite(res.ws).all()
    if noise == "restart":  # a new constant noise, not the stored one, kept for the final image
        assert len(res.noise) == len(G.noise_buffers())
        assert not torch.equal(res.noise[0], G.noise_buffers()[0])
    else:
        assert res.noise == []


def test_loss_variants(G, vgg, targets):
    for loss in ("mse", "perceptual", "perceptual+mse"):
        res = embed(G, targets[1][:1], FAST.replace(steps=2, loss=loss), vgg=vgg)
        if loss == "mse":
            assert float(res.losses["perceptual"]) == 0
            torch.testing.assert_close(res.losses["total"], res.losses["mse"])
        if loss == "perceptual":
            torch.testing.assert_close(res.losses["total"], res.losses["perceptual"])
    with pytest.raises(ValueError, match="use terms"):
        EmbedConfig(loss="pixel")


def test_single_layer_perceptual(G, vgg, targets):
    cfg = FAST.replace(steps=2, layers=("conv3_2",), loss="perceptual+mse")
    res = embed(G, targets[1][:1], cfg, vgg=vgg)
    assert float(res.losses["perceptual"]) > 0


def test_nvidia_preset(G, targets, monkeypatch):
    # NVIDIA's loop: W space, lr ramps, decaying latent noise, optimised noise maps kept at
    # zero mean / unit variance. LPIPS here on random weights (an LPIPS-layout file is not
    # available offline), which exercises the same code path.
    from image2stylegan.losses import LPIPS

    random_lpips = LPIPS(
        load_vgg16("random", seed=1),
        [torch.rand(c) for c in (64, 128, 256, 512, 512)],
    )
    monkeypatch.setattr("image2stylegan.losses.load_lpips", lambda **kw: random_lpips)
    cfg = PRESETS["nvidia"].replace(steps=12, perceptual_size=16)
    emb = build_embedder(G, cfg)
    assert emb._lr(0) == 0 and emb._lr(cfg.steps - 1) < cfg.lr * 0.3  # warm-up, ramp-down
    assert emb._lr(int(cfg.steps * 0.5)) == pytest.approx(cfg.lr)
    assert emb._latent_noise_scale(0) > emb._latent_noise_scale(5) > 0
    res = emb.run(targets[1][:2], report_every=4)
    assert res.w_single is not None and torch.equal(res.ws[:, 0], res.ws[:, -1])
    for t in res.noise:  # renormalised after every step
        torch.testing.assert_close(t.mean(dim=(1, 2, 3)), torch.zeros(2), atol=1e-5, rtol=0)
        torch.testing.assert_close(
            t.std(dim=(1, 2, 3), correction=0), torch.ones(2), atol=1e-4, rtol=0
        )
    assert "lpips" in res.losses and "noise_reg" in res.losses


def test_noise_regularization_is_per_image_and_zero_for_uncorrelated_maps():
    smooth = torch.ones(1, 1, 16, 16)
    white = torch.randn(1, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    reg = noise_regularization([torch.cat([smooth, white])])
    assert reg.shape == (2,)
    assert reg[0] > 1 and reg[1] < 0.1


def test_content_box_scores_only_the_valid_region(G, vgg):
    # LSUN car: 512 x 384 content in a 512 x 512 frame; here 32 x 24 in 32 x 32.
    emb = build_embedder(G, FAST.replace(steps=1), vgg=vgg, content_size=(32, 24))
    assert emb.content_box == (0, 4, 32, 28)
    _, target = known_targets(G, 1, seed=3)
    other = target.clone()
    other[..., :4, :] = 5.0  # change only the letterbox bars
    a = emb.run(target)
    b = emb.run(other)
    assert torch.equal(a.ws, b.ws)


def test_bf16_autocast_runs_without_nans(G, vgg, targets):
    res = embed(G, targets[1][:1], FAST.replace(steps=3, precision="bf16"), vgg=vgg)
    assert torch.isfinite(res.ws).all() and torch.isfinite(res.history).all()


def test_fp16_with_loss_scaling_follows_fp32(G, vgg, targets):
    # Eq. 1 on the 0-255 scale is ~1e3: the scaler must not skip steps for overflow
    cfg = FAST.replace(steps=10)
    half = embed(G, targets[1][:1], cfg.replace(precision="fp16"), vgg=vgg)
    full = embed(G, targets[1][:1], cfg, vgg=vgg)
    assert (half.history[1:, 0, 0] < half.history[:-1, 0, 0]).all()  # every step moved
    torch.testing.assert_close(half.history, full.history, rtol=2e-2, atol=0)


def test_init_from_tensor_and_shape_errors(G, vgg, targets):
    ws_star = targets[0][:1]
    res = embed(G, targets[1][:1], FAST.replace(steps=0), vgg=vgg, init=ws_star)
    torch.testing.assert_close(res.ws, ws_star)
    assert psnr(res.images, targets[1][:1]) > 60  # starting at w* reproduces the target
    with pytest.raises(ValueError, match="generator takes"):
        embed(G, targets[1][:1], FAST.replace(steps=1), vgg=vgg, init=torch.zeros(1, 3, 7))
    with pytest.raises(ValueError, match="targets must be"):
        embed(G, torch.zeros(1, 3, 16, 16), FAST, vgg=vgg)


def test_config_validation():
    with pytest.raises(ValueError, match="space"):
        EmbedConfig(space="s")
    with pytest.raises(ValueError, match="layer weights"):
        EmbedConfig(layer_weights=(1.0,))
    assert EmbedConfig().fingerprint() == EmbedConfig(compile=True).fingerprint()
    assert EmbedConfig().fingerprint() != EmbedConfig(steps=10).fingerprint()
    paper = PRESETS["paper"]
    assert (paper.space, paper.init, paper.steps, paper.lr) == ("w+", "mean", 5000, 0.01)
    assert (paper.betas, paper.eps, paper.perceptual_size) == ((0.9, 0.999), 1e-8, 256)
    assert paper.layers == ("conv1_1", "conv1_2", "conv3_2", "conv4_2")
