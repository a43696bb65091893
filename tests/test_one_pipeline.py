"""One embed path for every front end: the CLI, the web UI and the experiments write the same
latent metadata for the same settings; options are parsed before anything loads; the runner's
stop flag, stages and metrics; the generator description; the Generator ABC."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from image2stylegan import load_latent
from image2stylegan.checkpoints.native import save_native
from image2stylegan.cli.main import main
from image2stylegan.embed import PRESETS, EmbedConfig, RunOptions, build_embedder, embed_config
from image2stylegan.embed.generators import default_align, describe_generator, open_generator
from image2stylegan.embed.pipeline import EmbedPipeline, load_pipeline
from image2stylegan.embed.records import OutputPaths
from image2stylegan.embed.runner import BatchDone, JobOutcome, embed_files, plan_jobs
from image2stylegan.errors import CheckpointError
from image2stylegan.fileio import sha256_file
from image2stylegan.models.base import Generator

from .fixtures.embedding import embedding_generator

RES = 32
SETTINGS = {"steps": 3, "lr": 0.05, "seed": 0, "perceptual_size": 16}  # the same run, 3 ways
VOLATILE = {"elapsed_s"}  # wall-clock time: the only field that may differ


@pytest.fixture(scope="module")
def gen_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("gen") / "tiny.safetensors"
    save_native(embedding_generator(RES), path, source="test")
    return path


def run_cli(args: list, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def _cli_args(gen_file: Path) -> list:
    s = SETTINGS
    return ["-g", gen_file, "--vgg", "random", "--steps", s["steps"], "--lr", s["lr"],
            "--seed", s["seed"], "--perceptual-size", s["perceptual_size"], "--device", "cpu",
            "--quiet"]  # fmt: skip


def _stable(meta: dict) -> dict:
    out = {k: v for k, v in meta.items() if k not in VOLATILE}
    if "metrics" in out:  # the time per image is a measurement of the clock
        out["metrics"] = {k: v for k, v in out["metrics"].items() if k != "time_s"}
    return out


def test_cli_web_and_experiment_write_identical_latent_metadata(
    gen_file, shared_images, tmp_path, capsys
):
    gr = pytest.importorskip("gradio")
    del gr
    from image2stylegan.web import build_app
    from image2stylegan.web.embedding import EmbedTab

    photo = shared_images / "face_01.jpg"
    # 1. image2stylegan embed
    code, _, err = run_cli(
        ["embed", photo, "--out", tmp_path / "cli", *_cli_args(gen_file)], capsys
    )
    assert code == 0, err
    cli = load_latent(tmp_path / "cli" / "face_01" / "latent.npz")
    # 2. image2stylegan experiment (its plain variant embeds the photo itself)
    code, _, err = run_cli(
        ["experiment", "convergence", "--images", photo, "--out", tmp_path / "exp",
         *_cli_args(gen_file)],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    exp = load_latent(tmp_path / "exp" / "embeddings" / "main" / "face_01" / "latent.npz")
    # 3. the web UI's Embed tab with the same form values
    tab = EmbedTab(build_app(device="cpu", workdir=tmp_path / "web").workspace)
    s = SETTINGS
    *_, last = tab.run(
        [str(photo)], str(gen_file), "paper", s["steps"], "w+", "mean", s["seed"], False,
        "random", 2, s["lr"], "perceptual+mse", str(s["perceptual_size"]), "const", 1, [],
    )  # fmt: skip
    web = load_latent(last[4][0])

    assert _stable(cli.metadata) == _stable(exp.metadata) == _stable(web.metadata)
    assert cli.metadata["image"] == "face_01.jpg"
    assert cli.metadata["image_sha256"] == sha256_file(photo)
    assert cli.metadata["stopped_early"] is False and cli.metadata["device"] == "cpu"
    assert torch.equal(cli.w, exp.w) and torch.equal(cli.w, web.w)  # the same optimisation
    with np.load(tmp_path / "cli" / "face_01" / "latent.npz", allow_pickle=False) as data:
        assert set(json.loads(str(data["metadata"]))) == set(cli.metadata)


def test_options_are_checked_before_the_generator_loads(
    shared_images, tmp_path, capsys, monkeypatch
):
    from image2stylegan.embed import generators

    def no_loading(*args, **kwargs):
        raise AssertionError("the generator was loaded before the options were checked")

    monkeypatch.setattr(generators, "load_generator", no_loading)
    monkeypatch.setattr(generators, "resolve_weights", no_loading)
    photo = shared_images / "face_01.jpg"
    for bad in (["--content-size", "512by384"], ["--perceptual-size", "8"],
                ["--layer-weights", "1,x"], ["--loss", "pixels"]):  # fmt: skip
        code, _, err = run_cli(["embed", photo, "-g", "ffhq-1024", "--out", tmp_path, *bad],
                               capsys)  # fmt: skip
        assert code == 2, (bad, err)


def test_run_options_validate_their_fields():
    with pytest.raises(ValueError, match="batch_size"):
        RunOptions(batch_size=0)
    with pytest.raises(ValueError, match="fit"):
        RunOptions(fit="zoom")
    with pytest.raises(ValueError, match="init_file"):
        RunOptions(config=EmbedConfig(init="file"))
    with pytest.raises(ValueError, match="unknown embed settings"):
        embed_config("paper", step=3)
    assert embed_config("nvidia", steps=7) == PRESETS["nvidia"].replace(steps=7)


def test_generator_description_resolves_once_and_keeps_hints_apart(gen_file):
    G, info = open_generator(str(gen_file))
    assert info.sha256 == sha256_file(gen_file) and info.path == gen_file
    assert info.record(G.architecture) == {
        "generator": str(gen_file),
        "generator_sha256": sha256_file(gen_file),
        "architecture": G.architecture,
    }
    assert G.source == str(gen_file) and describe_generator(str(gen_file)) == info
    random_info = describe_generator("random:stylegan2-8")
    assert random_info.sha256 is None and random_info.path is None
    assert default_align("ffhq-1024") and not default_align(str(gen_file))
    with pytest.raises(CheckpointError, match="no such file"):
        describe_generator("/nonexistent/G.pkl")


def _pipeline(gen_file: Path, **options) -> EmbedPipeline:
    config = EmbedConfig(steps=6, lr=0.05, perceptual_size=16)
    return load_pipeline(RunOptions(generator=str(gen_file), config=config, vgg="random",
                                    device="cpu", **options))  # fmt: skip


def test_stop_finishes_the_batch_and_records_it(gen_file, shared_images, tmp_path):
    pipeline = _pipeline(gen_file, report_every=1)
    sources = [shared_images / "face_02.jpg", shared_images / "cat_01.jpg"]
    jobs = plan_jobs(sources, tmp_path, layout="flat")
    reports: list[int] = []

    def stop() -> bool:
        return len(reports) >= 2

    outcomes = pipeline.run(jobs, on_report=lambda p: reports.append(p.report.step), stop=stop)
    assert [o.status for o in outcomes] == ["done", "stopped"]  # batch size 1: one batch ran
    meta = load_latent(tmp_path / "face_02.npz").metadata
    assert meta["stopped_early"] is True and meta["steps"] == 2
    assert (tmp_path / "face_02_target.png").is_file()
    assert (tmp_path / "face_02_losses.csv").read_text().count("\n") == 3
    assert not (tmp_path / "cat_01.npz").exists()


def test_stages_refine_and_metrics_are_recorded(gen_file, shared_images, tmp_path):
    pipeline = _pipeline(gen_file)
    seen: list[int] = []

    def stage(embedder, targets, result):
        seen.append(targets.shape[0])
        result.ws = result.ws + 0.0  # a stage returns the (possibly refined) result
        return result

    def pixel_mse(result, target, mask):  # Eq. 1's MSE term, recomputed from the recorded result
        return {"mse_0_255": float(((result.images - target) * 127.5).square().mean())}

    pipeline.stages.append(stage)
    pipeline.metrics.append(pixel_mse)
    events = list(pipeline.iterate(plan_jobs([shared_images / "dog_01.jpg"], tmp_path)))
    assert [type(e) for e in events][-2:] == [BatchDone, JobOutcome] and seen == [1]
    meta = load_latent(tmp_path / "dog_01" / "latent.npz").metadata
    assert meta["metrics"]["mse_0_255"] == pytest.approx(meta["final_loss"]["mse"], rel=1e-4)


def test_embed_files_without_a_pipeline_keeps_the_folder_layout(gen_file, shared_images, tmp_path):
    G, _ = open_generator(str(gen_file))
    embedder = build_embedder(G, EmbedConfig(steps=2, perceptual_size=16), vgg="random")
    jobs = plan_jobs([shared_images / "car_01.jpg"], tmp_path)
    assert jobs[0].paths == OutputPaths.folder(tmp_path / "car_01")
    (outcome,) = embed_files(jobs, embedder, record={"generator": "tiny"})
    assert outcome.status == "done" and outcome.latent == str(tmp_path / "car_01" / "latent.npz")
    assert load_latent(outcome.latent).metadata["generator"] == "tiny"


def test_generator_base_class_is_abstract():
    class Incomplete(Generator):
        architecture = "incomplete"

    with pytest.raises(TypeError, match="abstract"):
        Incomplete(8, 8, 2, 8, 3)


def test_a_checkpoint_is_not_resumed_with_another_alignment(gen_file, shared_images, tmp_path):
    G, _ = open_generator(str(gen_file))
    embedder = build_embedder(G, EmbedConfig(steps=8, perceptual_size=16), vgg="random")
    sources = [shared_images / "face_03.jpg"]

    def interrupt(progress):
        if progress.report.step == 4:
            raise KeyboardInterrupt

    plain = RunOptions(report_every=1, checkpoint_every=100)
    with pytest.raises(KeyboardInterrupt):
        embed_files(plan_jobs(sources, tmp_path), embedder, plain, record={}, on_report=interrupt)
    assert (tmp_path / "face_03" / ".checkpoint.pt").is_file()
    (outcome,) = embed_files(plan_jobs(sources, tmp_path), embedder, plain.replace(align=True),
                             record={})  # fmt: skip
    assert outcome.status == "failed" and "--overwrite" in (outcome.error or "")
    (outcome,) = embed_files(plan_jobs(sources, tmp_path), embedder, plain, record={})
    assert outcome.status == "done" and outcome.steps == 8  # resumed with the same settings
