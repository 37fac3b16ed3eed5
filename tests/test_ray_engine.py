"""--engine ray: the whole-split chunks on a pool of Ray workers (Ray on this machine, two CPUs) give the local
engine's report and maps exactly, in whatever order and on whichever worker the chunks run; a worker killed in
the middle of a chunk is restarted by Ray and the chunk computed again, and the report is still complete and
identical. Skipped where Ray is not installed (the optional extra "ray")."""

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import tiny_models
from fixtures import sample_images, write_npz
from typer.testing import CliRunner

from xai_fer.cli import app
from xai_fer.errors import UserError
from xai_fer.explain import rayengine, wholesplit
from xai_fer.explain.pipeline import run_explain

try:
    import ray
    import ray.data  # noqa: F401
except ImportError:
    ray = None

needs_ray = pytest.mark.skipif(ray is None, reason='Ray is not installed (pip install "xai-fer[ray]")')

METHODS = ["saliency", "grad-cam", "smoothgrad"]
OPTIONS = {name: {"batch_size": "16", "grid_rows": "2", **({"samples": "3"} if name == "smoothgrad" else {})}
           for name in METHODS}


@pytest.fixture(scope="module")
def ray_here(tmp_path_factory):
    """Ray on this machine with two CPUs, shut down after this module; yields the side channel folder of the
    fault-injecting worker (tests/ray_faults.py), which the workers import from the tests folder."""
    side = tmp_path_factory.mktemp("side")
    (side / "done").mkdir()
    path = os.pathsep.join(filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH")]))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="warning",
             runtime_env={"env_vars": {"PYTHONPATH": path, "XAI_FER_TEST_SIDE_CHANNEL": str(side)}})
    yield side
    ray.shutdown()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A tiny conv model, 100 labelled images on disk (4 chunks of 32 rows), and the local engine's report."""
    folder = tmp_path_factory.mktemp("ray")
    model_path = folder / "tiny.keras"
    tiny_models.sequential_fused_softmax().save(model_path)
    data = write_npz(folder / "data.npz", sample_images(100, seed=3), labels=np.arange(100) % 7)
    local = folder / "local"
    run_explain(model_path, data, local, METHODS, OPTIONS, preprocess="unit", seed=11, all_images=True,
                chunk_size=32)
    return model_path, data, local


def _maps(out) -> dict:
    with h5py.File(out / "maps.h5", "r") as handle:
        return {key: handle[key][:] for key in
                ["true", "predicted", "confidence", *(f"maps/{name}" for name in METHODS)]}


def _assert_same_report(out, local):
    ours, theirs = _maps(out), _maps(local)
    for key in theirs:
        np.testing.assert_array_equal(ours[key], theirs[key], err_msg=key)
    manifest = json.loads((out / "manifest.json").read_text())
    reference = json.loads((local / "manifest.json").read_text())
    assert manifest["files"] == reference["files"]
    for name in METHODS:
        ours = json.loads((out / name / "summary.json").read_text())
        theirs = json.loads((local / name / "summary.json").read_text())
        assert ours["images"] == theirs["images"]
    return manifest


@needs_ray
@pytest.mark.slow
def test_ray_engine_from_the_cli_gives_the_local_report(ray_here, tiny_run, tmp_path):
    model_path, data, local = tiny_run
    out = tmp_path / "report"
    options = [item for name, pairs in OPTIONS.items() for key, value in pairs.items()
               for item in ("-o", f"{name}.{key}={value}")]
    result = CliRunner().invoke(app, ["explain", str(model_path), "--data", str(data), "--out", str(out),
                                      "--preprocess", "unit", "--seed", "11", "--all-images", "--chunk-size", "32",
                                      "--engine", "ray", "--workers", "2",
                                      *[arg for name in METHODS for arg in ("-e", name)], *options])
    assert result.exit_code == 0, result.output
    manifest = _assert_same_report(out, local)
    whole = manifest["whole_split"]
    assert whole["engine"] == "ray" and whole["workers"] == 2 and whole["chunks"] == 4
    assert all(manifest["explainers"][name]["seconds"] > 0 for name in METHODS)  # the workers' time, summed


def _kill_when_named(pid_file, killed: list, deadline: float):
    while time.monotonic() < deadline:
        if pid_file.exists() and pid_file.read_text():
            pid, start = map(int, pid_file.read_text().split())
            os.kill(pid, signal.SIGKILL)
            killed.append((pid, start))
            return
        time.sleep(0.05)


@needs_ray
@pytest.mark.slow
def test_a_killed_worker_is_replaced_and_the_report_is_complete_and_identical(ray_here, tiny_run, tmp_path,
                                                                                monkeypatch):
    model_path, data, local = tiny_run
    side = ray_here
    from ray_faults import KillableWorker

    monkeypatch.setattr(rayengine, "ChunkWorker", KillableWorker)
    killed = []
    killer = threading.Thread(target=_kill_when_named, args=(side / "pid", killed, time.monotonic() + 300))
    killer.start()
    try:
        out = tmp_path / "report"
        run = run_explain(model_path, data, out, METHODS, OPTIONS, preprocess="unit", seed=11, all_images=True,
                          chunk_size=32, engine="ray", workers=1)
    finally:
        killer.join()
    assert len(killed) == 1, "no worker reached its second chunk"
    (pid, start), = killed
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # that worker is gone,
    done = dict(map(int, name.split("-")) for name in os.listdir(side / "done"))
    assert sorted(done) == [0, 32, 64, 96]  # every chunk finished once,
    assert done[start] != pid  # the one it was computing by the worker Ray started in its place,
    assert run.manifest["whole_split"]["resumed_chunks"] == 0
    _assert_same_report(out, local)


def test_a_job_from_a_model_in_memory_is_refused():
    job = wholesplit.AttributionJob(methods=(), targets={}, seed=0, batch_size=16, chunk_size=32, num_rows=10,
                                    scaling="unit", source={})
    with pytest.raises(UserError, match="only in memory"):
        list(rayengine.RayEngine().run(job, job.chunk_ranges()))


def test_without_ray_the_engine_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(UserError, match=r"xai-fer\[ray\]"):
        rayengine.import_ray()


def test_worker_settings_out_of_range_are_refused(tmp_path):
    with pytest.raises(UserError, match="--worker-cpus 0"):
        wholesplit.WholeSplit(tmp_path, engine="ray", worker_cpus=0)


@needs_ray
@pytest.mark.slow
def test_a_model_a_worker_cannot_read_is_one_line_naming_the_worker(ray_here, tiny_run, tmp_path):
    model_path, data, _ = tiny_run
    job = wholesplit.AttributionJob(methods=(), targets={}, seed=0, batch_size=16, chunk_size=32, num_rows=10,
                                    scaling="unit", source={"model_path": str(tmp_path / "gone.keras"),
                                                            "data": str(data)})
    with pytest.raises(UserError, match="^on a Ray worker: .*gone.keras"):
        list(rayengine.RayEngine(workers=1).run(job, job.chunk_ranges()))


def test_a_cluster_it_cannot_reach_is_one_line(monkeypatch):
    class Unreachable:
        @staticmethod
        def is_initialized():
            return False

        @staticmethod
        def init(**kwargs):
            raise ConnectionError("Failed to connect to Ray cluster at 10.0.0.9:6379")

    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.9:6379")
    with pytest.raises(UserError, match=r"cannot reach the Ray cluster at RAY_ADDRESS=10\.0\.0\.9:6379"):
        rayengine.connect(Unreachable)
