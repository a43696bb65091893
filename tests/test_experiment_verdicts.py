"""Each experiment's analysis on hand-made embeddings: the paper's observations are judged from
the measurements, both ways. For every experiment with a claim, one set of embeddings is built
where the observation is true and one where it is false, and the verdicts (`holds`) must follow.
(random-walk makes no claim: the paper shows those walks as videos only.)"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from image2stylegan.experiments import (
    affine,
    convergence,
    defects,
    distances,
    init,
    iterative,
    loss_ablation,
    noise,
    noise_space,
    perceptual_size,
    random_generator,
    space,
)
from image2stylegan.experiments.items import ImageItem
from image2stylegan.experiments.results import Claim, Embedding


def emb(
    variant: str,
    name: str,
    loss: float,
    dist: float = 30.0,
    *,
    category: str | None = None,
    ws: torch.Tensor | None = None,
    history: np.ndarray | None = None,
    mse: float | None = None,
) -> Embedding:
    category = category or name.split("_")[0]
    return Embedding(
        variant,
        ImageItem(Path(f"{name}.png"), name, category),
        Path("."),
        "done",
        ws=torch.zeros(2, 3) if ws is None else ws,
        losses={"total": loss, "perceptual": loss / 2, "mse": loss / 2 if mse is None else mse},
        history=np.zeros((0, 3)) if history is None else history,
        w_dist=dist,
    )


def verdicts(claims: list[Claim]) -> dict[str, bool | None]:
    """The paper's observation (up to its parenthesis) -> holds."""
    return {c.paper.split(" (")[0]: c.holds for c in claims}


# --- Table 1: affine ------------------------------------------------------------------------

AFFINE = [
    "translation has the worst performance",
    "transformed faces embed worse than the normal embedding",
    "transformed faces land farther from w̄",
]


def test_affine_verdicts_hold_when_transformations_hurt_and_translation_most():
    losses = dict(zip(affine.TRANSFORMS, [1e4, 9e4, 8e4, 2e4, 3e4, 4e4, 5e4], strict=True))
    embs = [emb(t, "face_01", loss, dist=30.0 + 5 * k)
            for k, (t, loss) in enumerate(losses.items())]  # fmt: skip
    got = verdicts(affine.analyse(embs, affine.Params(), 64).claims)
    assert [got[c] for c in AFFINE] == [True, True, True]


def test_affine_verdicts_fail_when_measurements_disagree():
    losses = dict(zip(affine.TRANSFORMS, [1e4, 2e4, 3e4, 0.5e4, 3e4, 4e4, 9e4], strict=True))
    dists = dict(zip(affine.TRANSFORMS, [30, 40, 40, 20, 40, 40, 40], strict=True))
    embs = [emb(t, "face_01", losses[t], dist=dists[t]) for t in affine.TRANSFORMS]
    got = verdicts(affine.analyse(embs, affine.Params(), 64).claims)
    # rotate_180 is the worst, zoom_out beats the original and lands closer to w̄
    assert [got[c] for c in AFFINE] == [False, False, False]


# --- Table 2: init ----------------------------------------------------------------------------


def _init_set(face_mean_better: bool, cat_random_better: bool, face_mean_closer: bool):
    lo, hi = 2e4, 4e4
    return [
        emb("mean", "face_01", lo if face_mean_better else hi, 30 if face_mean_closer else 40),
        emb("random", "face_01", hi if face_mean_better else lo, 40 if face_mean_closer else 30),
        emb("mean", "cat_01", hi if cat_random_better else lo, 70),
        emb("random", "cat_01", lo if cat_random_better else hi, 71),
    ]


def test_init_verdicts_follow_which_init_wins():
    claims = verdicts(init.analyse(_init_set(True, True, True)).claims)
    assert claims == {
        "w̄ initialisation is better for faces, random initialisation for other classes": True,
        "initialising faces with w̄ makes w* closer to w̄": True,
    }
    claims = verdicts(init.analyse(_init_set(True, False, False)).claims)
    assert set(claims.values()) == {False}


# --- Table 3: defects -------------------------------------------------------------------------


@pytest.mark.parametrize("farther", [True, False])
def test_defects_verdict_is_whether_defective_faces_land_farther(farther):
    embs = [emb("none", "face_01", 1e4, dist=30.0)]
    embs += [emb(d, "face_01", 1e4, dist=35.0) for d in defects.DEFECTS if d != "none"]
    if not farther:
        embs[-1] = emb("eyes_nose_mouth", "face_01", 1e4, dist=29.0)
    (claim,) = defects.analyse(embs).claims
    assert claim.holds is farther


# --- Figs. 5, 14: space and random weights ----------------------------------------------------


@pytest.mark.parametrize("wplus_better", [True, False])
def test_space_verdict_compares_w_plus_with_w_per_image(wplus_better):
    embs = []
    for name in ("face_01", "cat_01"):
        for init_ in ("mean", "random"):
            embs.append(emb(f"w_{init_}", name, 5e4))
            embs.append(emb(f"wplus_{init_}", name, 2e4))
    if not wplus_better:  # one image where W wins
        embs[1] = emb("wplus_mean", "face_01", 6e4)
    (claim,) = space.analyse(embs).claims
    assert claim.holds is wplus_better
    assert ("face_01 (mean)" in claim.measured) is not wplus_better


@pytest.mark.parametrize("trained_better", [True, False])
def test_random_generator_verdict_compares_trained_with_random_weights(trained_better):
    embs = []
    for s in ("w", "wplus"):
        embs.append(emb(f"random_{s}", "face_01", 9e4))
        embs.append(emb(f"trained_{s}", "face_01", 3e4 if trained_better or s == "w" else 9.5e4))
    (claim,) = random_generator.analyse(embs).claims
    assert claim.holds is trained_better


# --- Figs. 9, 22: loss ablation ---------------------------------------------------------------


def test_loss_ablation_verdicts_follow_the_common_yardstick():
    order = ["mse", "mse_resized", "conv3_2", "mse_conv3_2", "perceptual", "eq1"]
    good = {v: 1e5 * (6 - k) for k, v in enumerate(order)}  # eq1 scores lowest
    embs = [emb(v, "face_01", 1.0) for v in order]  # own losses: not comparable, not used
    scores = {(v, "face_01"): {"total": s, "perceptual": s / 2, "mse": s / 2}
              for v, s in good.items()}  # fmt: skip
    assert all(c.holds for c in loss_ablation.analyse(embs, scores).claims)
    bad = dict(good, conv3_2=1.0)  # a single layer scores best of all
    scores = {(v, "face_01"): {"total": s, "perceptual": s / 2, "mse": s / 2}
              for v, s in bad.items()}  # fmt: skip
    got = verdicts(loss_ablation.analyse(embs, scores).claims)
    assert (
        got["matching features at several VGG-16 layers works better than a single layer"] is False
    )
    assert got["Eq. 1"] is False  # "Eq. 1 (MSE + multi-layer perceptual) achieves the best ..."
    assert got["adding the pixel-wise MSE to the perceptual loss works better"] is True


# --- Fig. 10: convergence ---------------------------------------------------------------------


def _history(converge_at: int, steps: int = 5000) -> np.ndarray:
    t = np.arange(1, steps + 1, dtype=np.float64)
    total = 1e4 * (1 + 9 * np.exp(-t / (converge_at / 6)))
    return np.stack([total, total / 2, total / 2], 1)


def test_convergence_verdicts_follow_the_measured_steps():
    paper_like = {"face": 1000, "cat": 3000, "car": 3000, "painting": 5000}
    embs = [emb("main", f"{c}_01", 1e4, history=_history(s)) for c, s in paper_like.items()]
    result = convergence.analyse(embs, convergence.Params(), 5000)
    assert [c.holds for c in result.claims] == [True, True, True]
    swapped = {"face": 5000, "cat": 3000, "car": 800, "painting": 1000}
    embs = [emb("main", f"{c}_01", 1e4, history=_history(s)) for c, s in swapped.items()]
    result = convergence.analyse(embs, convergence.Params(), 5000)
    assert [c.holds for c in result.claims] == [False, False, False]


def test_convergence_cannot_judge_the_step_budget_of_a_short_run():
    embs = [emb("main", "face_01", 1e4, history=_history(100, steps=300))]
    (claim,) = convergence.analyse(embs, convergence.Params(), 300).claims
    assert claim.holds is None and "not checkable" in claim.measured


# --- Fig. 11: iterative -----------------------------------------------------------------------


@pytest.mark.parametrize(("drift", "holds"), [(1.0, True), (-1.0, False)])
def test_iterative_verdict_is_whether_the_loss_to_the_original_grows(drift, holds):
    embs = [emb(f"round_{k}", "face_01", 1e4) for k in range(4)]
    vs_original = {(f"round_{k}", "face_01"): 1e4 * (5 + drift * k) for k in range(4)}
    (claim,) = iterative.analyse(embs, vs_original).claims
    assert claim.holds is holds


# --- Fig. 12: perceptual size -----------------------------------------------------------------


@pytest.mark.parametrize("resized_better", [True, False])
def test_perceptual_size_verdict_compares_the_full_resolution_mse(resized_better):
    embs = [
        emb("resized", "face_01", 5e4, mse=100.0 if resized_better else 300.0),
        emb("full", "face_01", 4e4, mse=200.0),  # its own loss is lower: not the measure
    ]
    (claim,) = perceptual_size.analyse(embs, 256, 1024).claims
    assert claim.holds is resized_better


# --- Fig. 16: noise ---------------------------------------------------------------------------


def test_noise_verdicts_similar_restarts_and_worse_resampling():
    params = noise.Params(restarts=3, similar=0.1)

    def run(restart_losses: list[float], resample: float) -> dict[str, bool | None]:
        embs = [emb("const", "face_01", 1e4)]
        embs += [emb(f"restart_{k}", "face_01", v) for k, v in enumerate(restart_losses)]
        embs.append(emb("resample", "face_01", resample))
        return verdicts(noise.analyse(embs, params).claims)

    similar = "restarting the embedding with a different noise leads to similar results"
    worse = "resampling the noise at each step gives significantly worse quality"
    assert run([1.00e4, 1.02e4, 0.99e4], 3e4) == {similar: True, worse: True}
    assert run([1.0e4, 2.0e4, 1.0e4], 1.5e4) == {similar: False, worse: False}


# --- Fig. 20: distances -----------------------------------------------------------------------


def _codes(spread: dict[str, float]) -> list[Embedding]:
    """Two images per class, their codes +-spread apart around a class centre."""
    embs = []
    for k, (c, s) in enumerate(spread.items()):
        centre = 100.0 * k
        for sign, i in ((1, 1), (-1, 2)):
            embs.append(emb("main", f"{c}_{i:02d}", 1e4, ws=torch.full((2, 3), centre + sign * s)))
    return embs


def test_distance_verdicts_follow_the_clusters():
    got = verdicts(distances.analyse(_codes({"face": 1.0, "cat": 5.0, "painting": 20.0})).claims)
    assert got == {
        "the distances between faces are smaller than those within other classes": True,
        "faces are closer to each other than to the other classes": True,
        "paintings are the most scattered": True,
    }
    got = verdicts(distances.analyse(_codes({"face": 30.0, "cat": 5.0, "painting": 2.0})).claims)
    assert got["the distances between faces are smaller than those within other classes"] is False
    assert got["paintings are the most scattered"] is False


def test_distance_matrix_is_the_frobenius_norm():
    ws = torch.stack([torch.zeros(2, 3), torch.ones(2, 3)])
    assert distances.distance_matrix(ws)[0, 1] == pytest.approx(math.sqrt(6))


# --- Image2StyleGAN++: noise space --------------------------------------------------------------

NOISE_SPACE = [
    "noise optimisation restores high frequency features and significantly improves the "
    "reconstruction",
    "stable noise optimisation must be sequential with W+, not joint: the W+ code should encode "
    "as much as possible, the noise only high frequency details",
]


def _noise_space(psnrs: dict[str, float], code: dict[str, float]) -> dict[str, bool | None]:
    embs, measured = [], {}
    for variant, value in psnrs.items():
        for k, name in enumerate(("face_01", "face_02")):
            embs.append(emb(variant, name, 1e4))
            measured[(variant, name)] = noise_space.Measured(
                value + k, 0.9, None, code[variant] + k
            )
    return verdicts(noise_space.analyse(embs, measured, noise_space.Params()).claims)


def test_noise_space_verdicts_hold_when_noise_helps_and_sequential_keeps_the_code():
    got = _noise_space(
        {"wplus": 21.0, "wplus_noise": 42.0, "joint": 40.0},
        {"wplus": 21.0, "wplus_noise": 21.0, "joint": 15.0},
    )
    assert [got[c] for c in NOISE_SPACE] == [True, True]


def test_noise_space_verdicts_fail_when_measurements_disagree():
    got = _noise_space(
        {"wplus": 21.0, "wplus_noise": 20.0, "joint": 40.0},
        {"wplus": 21.0, "wplus_noise": 21.0, "joint": 25.0},
    )
    assert [got[c] for c in NOISE_SPACE] == [False, False]
