"""Whole splits (--all-images): every map streamed in chunks into maps.h5, equal to the ordinary per-image path's
maps for the same rows; an interrupted run resumes from its last finished chunk and gives the maps of an
uninterrupted one; the local engine's job is picklable and its chunks do not depend on their order."""

import json
import pickle

import h5py
import numpy as np
import pytest
import tiny_models
from fixtures import sample_images, write_npz
from typer.testing import CliRunner

from xai_fer.cli import app
from xai_fer.errors import UserError
from xai_fer.explain import wholesplit
from xai_fer.explain.pipeline import run_explain, run_explainers
from xai_fer.models.loading import load_model

METHODS = ["saliency", "grad-cam", "smoothgrad"]
BATCH = 16


def _options(**extra):
    smoothgrad = {"samples": "3"}
    return {name: {"batch_size": str(BATCH), "grid_rows": "2", **(smoothgrad if name == "smoothgrad" else {}), **extra}
            for name in METHODS}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A tiny conv model and 100 labelled images on disk."""
    folder = tmp_path_factory.mktemp("whole")
    model_path = folder / "tiny.keras"
    tiny_models.sequential_fused_softmax().save(model_path)
    images = sample_images(100, seed=3)
    data = write_npz(folder / "data.npz", images, labels=np.arange(100) % 7)
    return model_path, data


def _whole(model_path, data, out, **kwargs):
    return run_explain(model_path, data, out, METHODS, _options(), preprocess="unit", all_images=True,
                       chunk_size=32, **kwargs)


def _maps(out) -> dict:
    with h5py.File(out / "maps.h5", "r") as handle:
        return {name: handle[f"maps/{name}"][:] for name in METHODS}


def test_whole_split_maps_equal_the_ordinary_path(tiny_run, tmp_path):
    model_path, data = tiny_run
    out = tmp_path / "report"
    run = _whole(model_path, data, out)
    assert not (tmp_path / "report.partial").exists()  # the work folder goes once the report is in place
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["whole_split"]["chunks"] == 4 and manifest["whole_split"]["resumed_chunks"] == 0
    assert "maps.h5" in manifest["files"] and manifest["run_files"][0] == "maps.h5"
    with h5py.File(out / "maps.h5", "r") as handle:
        assert handle["maps/saliency"].shape == (100, 48, 48) and handle["maps/saliency"].chunks[0] <= 64
        assert list(handle["true"][:]) == list(np.arange(100) % 7)
        assert list(handle["names"].asstr()[:3]) == ["row 0", "row 1", "row 2"]
        confidence, probabilities = handle["confidence"][:], handle["probabilities"][:]
        assert np.allclose(confidence, probabilities.max(axis=1))
    # Figures only for what the report shows: the grid, no per-image figures.
    assert sorted(p.name for p in (out / "saliency").glob("*.png")) == ["grid.png"]
    whole = _maps(out)
    model = load_model(model_path)
    from xai_fer.data import load_dataset

    ordinary, _, _, _ = run_explainers(model, load_dataset(data), METHODS,
                                       _options(indices=",".join(map(str, range(100)))), preprocess="unit")
    for name in METHODS:
        np.testing.assert_allclose(whole[name], ordinary[name].arrays["maps"], rtol=1e-5, atol=1e-6)
    assert run.manifest["explainers"]["smoothgrad"]["seconds"] > 0


def test_interrupted_run_resumes_from_its_last_finished_chunk(tiny_run, tmp_path, monkeypatch):
    model_path, data = tiny_run
    reference = _maps(_whole(model_path, data, tmp_path / "uninterrupted").out_dir)
    real = wholesplit.chunk_maps
    calls = []

    def failing_after_two(context, job, start, stop, seconds=None):
        if len(calls) == 2:
            raise RuntimeError("injected failure after 2 chunks")
        calls.append(start)
        return real(context, job, start, stop, seconds)

    monkeypatch.setattr(wholesplit, "chunk_maps", failing_after_two)
    out = tmp_path / "report"
    with pytest.raises(RuntimeError, match="injected"):
        _whole(model_path, data, out)
    assert not out.exists()  # the report appears complete or not at all
    work = tmp_path / "report.partial"
    assert sorted(p.name for p in (work / "chunks").iterdir()) == ["000000.npz", "000001.npz"]

    calls.clear()
    monkeypatch.setattr(wholesplit, "chunk_maps", lambda *a, **k: calls.append(a[2]) or real(*a, **k))
    run = _whole(model_path, data, out)
    assert calls == [64, 96]  # only the chunks not finished before
    assert run.manifest["whole_split"]["resumed_chunks"] == 2
    assert not work.exists()
    resumed = _maps(out)
    for name in METHODS:
        np.testing.assert_array_equal(resumed[name], reference[name])


def test_changed_job_starts_over(tiny_run, tmp_path, monkeypatch):
    model_path, data = tiny_run
    real = wholesplit.chunk_maps

    def fail_second(context, job, start, stop, seconds=None):
        if start:
            raise KeyboardInterrupt
        return real(context, job, start, stop, seconds)

    monkeypatch.setattr(wholesplit, "chunk_maps", fail_second)
    with pytest.raises(KeyboardInterrupt):
        _whole(model_path, data, tmp_path / "report")
    monkeypatch.setattr(wholesplit, "chunk_maps", real)
    run = run_explain(model_path, data, tmp_path / "report", METHODS, _options(), preprocess="unit", seed=5,
                      all_images=True, chunk_size=32)
    assert run.manifest["whole_split"]["resumed_chunks"] == 0 and "started_over" in run.manifest["whole_split"]


def test_job_is_picklable_and_chunks_do_not_depend_on_order(tiny_run, tmp_path):
    model_path, data = tiny_run
    from xai_fer.data import load_dataset
    from xai_fer.explain.pipeline import build_context
    from xai_fer.explain.plan import plan_explainers

    context = build_context(load_model(model_path), load_dataset(data), "unit")
    planned = plan_explainers(METHODS, _options())
    job = wholesplit.make_job(context, planned, wholesplit.WholeSplit(tmp_path / "w", chunk_size=32),
                              {"model_path": str(model_path), "data": str(data)})
    job = pickle.loads(pickle.dumps(job))
    ranges = job.chunk_ranges()
    forward = dict(wholesplit.LocalEngine(context).run(job, ranges))
    backward = dict(wholesplit.LocalEngine().run(job, ranges[::-1]))  # a fresh context, built from the job
    for index in forward:
        for name in METHODS:
            np.testing.assert_allclose(forward[index][name].values, backward[index][name].values, rtol=1e-5,
                                       atol=1e-6)


def test_selection_options_are_refused_with_all_images(tiny_run, tmp_path):
    model_path, data = tiny_run
    with pytest.raises(UserError, match="select/indices do not apply"):
        run_explain(model_path, data, tmp_path / "r", ["saliency"], {"saliency": {"indices": "1,2"}},
                    preprocess="unit", all_images=True)
    assert not (tmp_path / "r.partial").exists() and not (tmp_path / "r").exists()


def test_cli_all_images(tiny_run, tmp_path):
    model_path, data = tiny_run
    out = tmp_path / "cli"
    result = CliRunner().invoke(app, ["explain", str(model_path), "--data", str(data), "--out", str(out),
                                      "-e", "saliency", "-o", "saliency.grid_rows=2", "--preprocess", "unit",
                                      "--all-images", "--chunk-size", "64",
                                      "--maps-dtype", "float16"])
    assert result.exit_code == 0, result.output
    with h5py.File(out / "maps.h5", "r") as handle:
        assert handle["maps/saliency"].dtype == np.float16 and handle["maps/saliency"].shape[0] == 100
    # A report with maps.h5 is still a report: --overwrite replaces it.
    again = CliRunner().invoke(app, ["explain", str(model_path), "--data", str(data), "--out", str(out),
                                     "-e", "saliency", "-o", "saliency.per_class=1", "--preprocess", "unit",
                                     "--overwrite"])
    assert again.exit_code == 0, again.output
    assert not (out / "maps.h5").exists()


def test_cli_interrupted_says_how_to_resume(tiny_run, tmp_path, monkeypatch):
    model_path, data = tiny_run
    out = tmp_path / "cli"
    real = wholesplit.chunk_maps

    def interrupted_second(context, job, start, stop, seconds=None):
        if start:
            raise KeyboardInterrupt  # as Ctrl-C, or SIGTERM (turned into it while explaining)
        return real(context, job, start, stop, seconds)

    monkeypatch.setattr(wholesplit, "chunk_maps", interrupted_second)
    command = ["explain", str(model_path), "--data", str(data), "--out", str(out), "-e", "saliency", "-o",
               "saliency.grid_rows=1", "-o", "saliency.batch_size=50", "--preprocess", "unit", "--all-images",
               "--chunk-size", "50"]
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 130
    assert "1 finished chunks are kept in" in result.output and "run the same command again" in result.output
    work = tmp_path / "cli.partial"
    (work / ".maps.h5.tmp-killed").write_bytes(b"half")  # what a process killed outright while writing leaves
    monkeypatch.setattr(wholesplit, "chunk_maps", real)
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 0, result.output
    assert "1 resumed from an earlier run" in result.output and not work.exists()
