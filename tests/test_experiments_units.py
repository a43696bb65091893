"""The experiments' parts without a generator: exact transform geometry, landmark patches, and the
tables computed from known measurements (never typed: the paper's columns come from
`paper_numbers`, ours from the inputs)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from image2stylegan.cli.experiment_cmd import _expand_greedy
from image2stylegan.experiments import (
    EXPERIMENTS,
    affine,
    convergence,
    defects,
    distances,
    init,
    iterative,
    load_experiment,
)
from image2stylegan.experiments.items import ImageItem, category_of, collect_items, sort_items
from image2stylegan.experiments.measures import w_distance
from image2stylegan.experiments.paper_numbers import (
    FIG10_CONVERGENCE_STEPS,
    TABLE1_AFFINE,
    TABLE2_INIT,
    TABLE3_DEFECTS,
)
from image2stylegan.experiments.params import parse_params
from image2stylegan.experiments.report import table_markdown
from image2stylegan.experiments.results import Embedding, Table

# ---------------------------------------------------------------------------------------------
# affine transformations: exact geometry


def _random_image(h=32, w=32, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3)).astype(np.float64)


def test_translate_is_an_exact_shift():
    img = _random_image()
    right = affine.translate(img, 4, 0)
    np.testing.assert_array_equal(right[:, 4:], img[:, :-4])
    np.testing.assert_array_equal(right[:, :4], 0)
    left = affine.translate(img, -5, 0)
    np.testing.assert_array_equal(left[:, :-5], img[:, 5:])
    np.testing.assert_array_equal(left[:, -5:], 0)
    down = affine.translate(img, 0, 3)
    np.testing.assert_array_equal(down[3:], img[:-3])
    edge = affine.translate(img, 4, 0, fill="edge")
    np.testing.assert_array_equal(edge[:, :4], np.repeat(img[:, :1], 4, axis=1))
    with pytest.raises(ValueError):
        affine.translate(img, 32, 0)


def test_zoom_out_is_a_centred_box_shrink():
    blocks = _random_image(16, 16, seed=1)
    img = np.repeat(np.repeat(blocks, 2, axis=0), 2, axis=1)  # constant on 2 x 2 blocks, 32 px
    out = affine.zoom_out(img, 2.0)
    np.testing.assert_allclose(out[8:24, 8:24], blocks, atol=1e-9)
    mask = np.ones((32, 32), bool)
    mask[8:24, 8:24] = False
    assert np.all(out[mask] == 0)
    # a general image: each output pixel is the mean of its 2 x 2 source block
    g = _random_image(seed=2)
    means = g.reshape(16, 2, 16, 2, 3).mean(axis=(1, 3))
    np.testing.assert_allclose(affine.zoom_out(g, 2.0)[8:24, 8:24], means, atol=1e-9)


def test_zoom_in_enlarges_the_centre_by_the_factor():
    # a linear ramp stays linear under bilinear resampling: out(x) = f(8 + (x + 0.5) / 2 - 0.5)
    x = np.arange(32, dtype=np.float64)
    img = np.broadcast_to((3.0 * x + 7.0)[None, :, None], (32, 32, 3)).copy()
    out = affine.zoom_in(img, 2.0)
    src = 8 + (x + 0.5) / 2 - 0.5
    interior = slice(1, 31)  # the outermost pixels clamp to the crop's edge
    np.testing.assert_allclose(out[5, interior, 0], 3.0 * src[interior] + 7.0, atol=1e-4)
    # zoom in after zoom out recovers a block-constant image's centre exactly up to blur
    assert out.shape == img.shape


def test_rotation_is_counter_clockwise_and_exact():
    img = np.zeros((32, 32, 3))
    img[0, 31] = 255  # top-right corner
    r90 = affine.rotate(img, 90)
    assert r90[0, 0, 0] == 255  # counter-clockwise: top-right -> top-left
    g = _random_image(seed=3)
    np.testing.assert_array_equal(affine.rotate(g, 90)[3, 5], g[5, 31 - 3])
    np.testing.assert_array_equal(affine.rotate(g, 180), g[::-1, ::-1])
    with pytest.raises(ValueError):
        affine.rotate(g, 45)


def test_transform_scales_the_papers_pixels_to_the_resolution():
    params = affine.Params()
    assert params.shifts(1024) == (140, 160)
    assert params.shifts(32) == (4, 5)  # 140 * 32 / 1024 = 4.375, 160 * 32 / 1024 = 5
    img = Image.fromarray(_random_image().astype(np.uint8))
    a = np.asarray(img)
    out = np.asarray(affine.transform(img, "translate_right", params))
    np.testing.assert_array_equal(out[:, 4:], a[:, :-4])
    out = np.asarray(affine.transform(img, "translate_left", params))
    np.testing.assert_array_equal(out[:, :-5], a[:, 5:])
    np.testing.assert_array_equal(np.asarray(affine.transform(img, "original", params)), a)
    np.testing.assert_array_equal(
        np.asarray(affine.transform(img, "rotate_180", params)), a[::-1, ::-1]
    )
    with pytest.raises(ValueError):
        affine.transform(img, "shear", params)


# ---------------------------------------------------------------------------------------------
# defects: patches exactly in the landmark regions


def _landmarks(offset=(0.0, 0.0)) -> np.ndarray:
    """Synthetic 68 landmarks of a 64 px face: eyes around (20, 24) / (44, 24), nose 30-34 x
    22-40, mouth 24-40 x 46-52, the rest on the jaw."""
    lm = np.zeros((68, 2))
    lm[0:17] = np.stack([np.linspace(6, 58, 17), np.full(17, 56.0)], 1)  # jaw
    lm[17:27] = np.stack([np.linspace(14, 50, 10), np.full(10, 16.0)], 1)  # brows
    lm[27:31] = np.stack([np.full(4, 32.0), np.linspace(22, 34, 4)], 1)  # nose bridge
    lm[31:36] = np.stack([np.linspace(28, 36, 5), np.full(5, 38.0)], 1)  # nostrils
    for k, cx in ((36, 20.0), (42, 44.0)):  # eyes: 6 points on an ellipse
        t = np.linspace(0, 2 * np.pi, 6, endpoint=False)
        lm[k : k + 6] = np.stack([cx + 5 * np.cos(t), 24 + 2 * np.sin(t)], 1)
    t = np.linspace(0, 2 * np.pi, 20, endpoint=False)
    lm[48:68] = np.stack([32 + 8 * np.cos(t), 49 + 3 * np.sin(t)], 1)  # lips
    return lm + np.asarray(offset)


def test_feature_boxes_follow_the_landmarks():
    lm = _landmarks()
    pad = 0.15 * 24.0  # inter-ocular distance 24 px
    (left, right) = defects.feature_boxes(lm, "eyes", (64, 64))
    assert left == (math.floor(15 - pad), math.floor(22 - pad), math.ceil(25 + pad) + 1,
                    math.ceil(26 + pad) + 1)  # fmt: skip
    assert right[0] == math.floor(39 - pad) and right[2] == math.ceil(49 + pad) + 1
    (nose,) = defects.feature_boxes(lm, "nose", (64, 64))
    assert nose == (math.floor(28 - pad), math.floor(22 - pad), math.ceil(36 + pad) + 1,
                    math.ceil(38 + pad) + 1)  # fmt: skip
    (mouth,) = defects.feature_boxes(lm, "mouth", (64, 64), margin=0.0)
    assert mouth == (24, 46, 41, 53)
    # boxes are clipped to the frame
    (clipped,) = defects.feature_boxes(lm - np.array([30.0, 0.0]), "mouth", (64, 64))
    assert clipped[0] == 0


def test_paste_features_places_patches_exactly_in_the_regions():
    rng = np.random.default_rng(0)
    face = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    donor = Image.new("RGB", (80, 80), (10, 200, 30))
    donor_lm = _landmarks(offset=(8, 5))
    lm = _landmarks()
    for features in (
        ("eyes",),
        ("nose",),
        ("mouth",),
        ("eyes", "mouth"),
        ("eyes", "nose", "mouth"),
    ):
        out, boxes = defects.paste_features(face, lm, features, donor, donor_lm)
        a, f = np.asarray(out), np.asarray(face)
        expected = [b for feat in features for b in defects.feature_boxes(lm, feat, (64, 64))]
        assert boxes == expected
        inside = np.zeros((64, 64), bool)
        for x0, y0, x1, y1 in boxes:
            inside[y0:y1, x0:x1] = True
        assert np.all(a[inside] == (10, 200, 30))  # the donor's pixels, exactly in the boxes
        np.testing.assert_array_equal(a[~inside], f[~inside])  # nothing else changed
    # a textured donor: the patch is the donor's own box resized to the target box
    donor = Image.fromarray(rng.integers(0, 256, (80, 80, 3), dtype=np.uint8))
    out, (box,) = defects.paste_features(face, lm, ("nose",), donor, donor_lm)
    (dbox,) = defects.feature_boxes(donor_lm, "nose", donor.size)
    patch = donor.crop(dbox).resize((box[2] - box[0], box[3] - box[1]), Image.Resampling.LANCZOS)
    np.testing.assert_array_equal(
        np.asarray(out)[box[1] : box[3], box[0] : box[2]], np.asarray(patch)
    )
    # no donor: the face's mean colour
    out, (box,) = defects.paste_features(face, lm, ("mouth",))
    colour = np.round(np.asarray(face, dtype=np.float64).mean(axis=(0, 1)))
    assert np.all(np.asarray(out)[box[1] : box[3], box[0] : box[2]] == colour)


# ---------------------------------------------------------------------------------------------
# tables computed from known measurements


def _emb(variant, name, category, loss, dist=math.nan, ws=None, history=None) -> Embedding:
    return Embedding(
        variant,
        ImageItem(Path(f"{name}.png"), name, category),
        Path("."),
        "done",
        ws=torch.zeros(2, 3) if ws is None else ws,
        losses={"total": loss, "perceptual": loss / 2, "mse": loss / 2},
        history=np.zeros((0, 3)) if history is None else history,
        w_dist=dist,
    )


def test_affine_table_is_computed_from_the_measurements():
    embs = []
    for k, t in enumerate(affine.TRANSFORMS):
        embs.append(_emb(t, "face_01", "face", 1e4 * (k + 1), dist=10.0 + k))
        embs.append(_emb(t, "face_02", "face", 3e4 * (k + 1), dist=20.0 + k))
    embs.append(Embedding("zoom_in", ImageItem(Path("x.png"), "face_03", "face"), Path("."),
                          "failed", error="boom"))  # fmt: skip
    result = affine.analyse(embs, affine.Params(), 32)
    table = result.tables[0]
    names = affine.labels(affine.Params(), 32)
    for k, t in enumerate(affine.TRANSFORMS):
        row = names[t]
        assert table.get(row, "L x1e5 (ours)") == pytest.approx(0.2 * (k + 1))  # mean/1e5
        assert table.get(row, "‖w*−w̄‖ (ours)") == pytest.approx(15.0 + k)
        assert table.get(row, "images") == 2
        paper = TABLE1_AFFINE.get(t)
        assert table.get(row, "L x1e5 (paper)") == (paper.loss_e5 if paper else None)
        assert table.get(row, "‖w*−w̄‖ (paper)") == (paper.w_dist if paper else None)
    assert result.failures == [("zoom_in/face_03", "boom")]
    assert [r["status"] for r in result.rows].count("failed") == 1
    claims = {c.paper.split(" (")[0]: c for c in result.claims}
    # the highest loss is the last transform (rotate_180), not a translation
    assert claims["translation has the worst performance"].holds is False
    assert claims["transformed faces embed worse than the normal embedding"].holds is True
    md = table_markdown(table)
    assert "0.782" in md and "48.56" in md and "0.2" in md


def test_init_table_and_the_better_init_per_class():
    embs = [
        _emb("mean", "face_01", "face", 2e4, dist=30.0),
        _emb("random", "face_01", "face", 4e4, dist=36.0),
        _emb("mean", "cat_01", "cat", 9e4, dist=70.0),
        _emb("random", "cat_01", "cat", 7e4, dist=71.0),
        _emb("mean", "bird_01", "bird", 5e4, dist=50.0),
        _emb("random", "bird_01", "bird", 6e4, dist=51.0),
    ]
    result = init.analyse(embs)
    table, better = result.tables
    assert table.get("face, w = w̄", "L x1e5 (ours)") == pytest.approx(0.2)
    assert table.get("face, w = w̄", "L x1e5 (paper)") == TABLE2_INIT[("face", "mean")].loss_e5
    assert table.get("cat, Random", "‖w*−w̄‖ (ours)") == pytest.approx(71.0)
    assert table.get("cat, Random", "‖w*−w̄‖ (paper)") == TABLE2_INIT[("cat", "random")].w_dist
    assert table.get("bird, Random", "L x1e5 (paper)") is None  # not in the paper
    assert better.get("face", "lower L (ours)") == "w̄" and better.get("face", "agrees") is True
    assert better.get("cat", "lower L (ours)") == "random"
    assert better.get("cat", "lower L (paper)") == "random"  # 0.740 < 0.752 in Table 2
    assert better.get("bird", "agrees") is None
    assert all(c.holds for c in result.claims)


def test_defects_table():
    embs = []
    for k, d in enumerate(defects.DEFECTS):
        embs.append(_emb(d, "face_01", "face", 1e4 + k, dist=29.0 + k))
    result = defects.analyse(embs)
    table = result.tables[0]
    for k, d in enumerate(defects.DEFECTS):
        label = TABLE3_DEFECTS[d].label
        assert table.get(label, "L x1e5 (ours)") == pytest.approx((1e4 + k) / 1e5)
        assert table.get(label, "L x1e5 (paper)") == TABLE3_DEFECTS[d].loss_e5
        assert table.get(label, "‖w*−w̄‖ (paper)") == TABLE3_DEFECTS[d].w_dist
    assert result.claims[0].holds is True  # every defect farther than non-defective


def test_convergence_step_definition():
    losses = np.array([100.0, 50.0, 20.0, 10.4, 10.6, 10.2, 10.0])
    assert convergence.convergence_step(losses, 0.05) == 4  # 10.4 <= 1.05 * 10
    assert convergence.convergence_step(losses, 0.025) == 6  # 10.2 <= 1.025 * 10
    assert convergence.convergence_step(losses, 0.01) == 7  # only the final 10.0
    assert convergence.convergence_step(np.array([5.0]), 0.05) == 1
    assert convergence.convergence_step(np.array([]), 0.05) is None


def test_convergence_table_from_known_histories():
    steps = 5000
    t = np.arange(1, steps + 1, dtype=np.float64)

    def history(converge_at: float) -> np.ndarray:
        total = 1e4 * (1 + 9 * np.exp(-t / (converge_at / 6)))  # within ~2.5 % at converge_at
        return np.stack([total, total / 2, total / 2], 1)

    embs = [
        _emb("main", f"{c}_01", c, 1e4, history=history(s))
        for c, s in FIG10_CONVERGENCE_STEPS.items()
    ]
    result = convergence.analyse(embs, convergence.Params(tolerance=0.05), steps)
    table = result.tables[0]
    measured = {row[0]: row[1] for row in table.rows}
    for c, s in FIG10_CONVERGENCE_STEPS.items():
        expected = convergence.convergence_step(history(s)[:, 0], 0.05)
        assert measured[c] == expected and 0.5 * s < expected < s
        assert table.get(c, "steps (paper, ~)") == s
    assert [c.holds for c in result.claims] == [True, True, True]


def test_distance_table_from_known_latents():
    def code(value: float) -> torch.Tensor:
        return torch.full((2, 3), value)

    embs = [
        _emb("main", "face_01", "face", 1.0, ws=code(0.0)),
        _emb("main", "face_02", "face", 1.0, ws=code(1.0)),
        _emb("main", "painting_01", "painting", 1.0, ws=code(5.0)),
        _emb("main", "painting_02", "painting", 1.0, ws=code(-5.0)),
    ]
    D = distances.distance_matrix(torch.stack([e.ws for e in embs]))
    assert D[0, 1] == pytest.approx(math.sqrt(6))  # Frobenius over the 2 x 3 code
    result = distances.analyse(embs)
    table = result.tables[0]
    assert table.get("face", "within class") == pytest.approx(math.sqrt(6))
    assert table.get("painting", "within class") == pytest.approx(10 * math.sqrt(6))
    inter = np.mean([5, 5, 4, 6]) * math.sqrt(6)  # faces (0, 1) to paintings (5, -5)
    assert table.get("face", "to other classes") == pytest.approx(inter)
    assert all(c.holds for c in result.claims)


def test_iterative_table():
    embs = [_emb(f"round_{k}", "face_01", "face", 100.0 + k) for k in range(4)]
    vs_original = {(f"round_{k}", "face_01"): 1e4 * (1 + k) for k in range(4)}
    result = iterative.analyse(embs, vs_original)
    table = result.tables[0]
    assert table.get(3, "L x1e5 vs original") == pytest.approx(0.4)
    assert table.get(2, "L x1e5 vs own input") == pytest.approx(102e-5)
    assert result.claims[0].holds is True


def test_w_distance_is_the_frobenius_norm_to_the_broadcast_mean():
    ws = torch.zeros(18, 512)
    ws[3] = 1.0
    w_avg = torch.zeros(512)
    assert w_distance(ws, w_avg) == pytest.approx(math.sqrt(512))
    assert w_distance(ws[None], w_avg + 1.0) == pytest.approx(math.sqrt(17 * 512))


# ---------------------------------------------------------------------------------------------
# categories, params, CLI arguments


def test_categories_from_names_and_folders():
    assert category_of("a/face_01.jpg") == "face"
    assert category_of("paintings-3.png") == "painting"
    assert category_of("x/dogs/img001.jpg") == "dog"
    assert category_of("x/cars/cat_01.jpg") == "cat"  # the file name wins
    assert category_of("x/misc/img001.jpg") == "img"
    assert category_of("x/misc/0001.jpg") == "other"
    items = collect_items([Path("b/painting_01.jpg"), Path("a/face_01.jpg"), Path("c/face_01.png")])
    assert [it.name for it in items] == ["painting_01", "face_01-jpg", "face_01-png"]
    assert [it.name for it in sort_items(items)] == ["face_01-jpg", "face_01-png", "painting_01"]


def test_parse_params():
    p = parse_params(affine.Params, ["zoom=1.5", "fill=edge", "all-images=true"])
    assert p == affine.Params(zoom=1.5, fill="edge", all_images=True)
    assert parse_params(iterative.Params, ["rounds=2"]).rounds == 2
    assert parse_params(load_experiment("perceptual-size").Params, ["size=none"]).size is None
    with pytest.raises(ValueError, match="unknown parameter"):
        parse_params(affine.Params, ["zoomz=2"])
    with pytest.raises(ValueError, match="choose one of"):
        parse_params(affine.Params, ["fill=blue"])
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_params(affine.Params, ["zoom"])
    with pytest.raises(ValueError, match="zoom must be > 1"):
        parse_params(affine.Params, ["zoom=0.5"])


def test_every_experiment_module_has_its_parts():
    for name in EXPERIMENTS:
        module = load_experiment(name)
        assert callable(module.run) and module.TITLE and module.DESCRIPTION
        module.Params()  # defaults construct


def test_images_option_takes_several_values():
    args = ["affine", "--images", "a.jpg", "b/", "c.png", "--steps", "3", "-i", "d.jpg", "e.jpg"]
    assert _expand_greedy(args) == [
        "affine", "--images", "a.jpg", "--images", "b/", "--images", "c.png", "--steps", "3",
        "-i", "d.jpg", "-i", "e.jpg",
    ]  # fmt: skip
    assert _expand_greedy(["x", "--", "--images", "a"]) == ["x", "--", "--images", "a"]


def test_table_markdown_formats_missing_values():
    t = Table("t", ["a", "b", "c"], [["x", None, 0.123456], ["y", math.nan, 12]])
    md = table_markdown(t)
    assert "| x | — | 0.1235 |" in md and "| y | — | 12 |" in md


def test_reinitialise_gives_the_architecture_with_fresh_seeded_weights():
    from image2stylegan.experiments.random_generator import reinitialise

    from .fixtures.embedding import embedding_generator

    G = embedding_generator(32)
    R, R2 = reinitialise(G, 3), reinitialise(G, 3)
    assert type(R) is type(G) and R.config_dict() == G.config_dict()
    trained, fresh, again = G.state_dict(), R.state_dict(), R2.state_dict()
    assert all(torch.equal(fresh[k], again[k]) for k in fresh)  # seeded
    assert any(not torch.equal(fresh[k], trained[k]) for k in fresh)  # new weights
    assert not any(p.requires_grad for p in R.parameters())
    with torch.no_grad():
        z = torch.randn(4000, R.z_dim, generator=torch.Generator().manual_seed(9))
        assert torch.allclose(R.w_avg, R.map_z(z).mean(0), atol=0.1)  # w̄ = mean mapped w
