"""``xai-fer explain`` end to end: every file written, the report's links, options, overwrite, determinism,
and interruption leaving no half-written output."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
import tiny_models
from typer.testing import CliRunner

from xai_fer import registry
from xai_fer.cli import app

ATTRIBUTIONS = ("saliency", "grad-cam", "grad-cam-plus-plus", "smoothgrad", "integrated-gradients", "gradient-x-input",
                "occlusion", "rise")
EXPLAINERS = tuple(registry.explainers())  # every built-in explainer runs by default (tests load only those)
SPEED = ["-o", "activation-max.steps=20", "-o", "activation-max.first=4", "-o", "rise.masks=40", "-o",
         "smoothgrad.samples=2", "-o", "integrated-gradients.steps=4"]
FAST = [*SPEED,
        *[arg for name in ATTRIBUTIONS for arg in ("-o", f"{name}.per_class=1")],
        "-o", "saliency.per_class=2"]  # more than one image per class, so the per-class dataset views apply too


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A tiny model (64x64x3, residual, separate softmax) and 21 labelled 48x48 grayscale images."""
    root = tmp_path_factory.mktemp("explain")
    tiny_models.residual_separable_rgb64().save(root / "model.keras")
    rng = np.random.default_rng(0)
    with h5py.File(root / "data.h5", "w") as handle:
        handle["images"] = rng.integers(0, 256, size=(21, 48, 48), dtype=np.uint8)
        handle["labels"] = np.arange(21, dtype=np.uint8) % 7
    return root


def _explain(workdir, out, *extra, options=FAST):
    args = ["explain", str(workdir / "model.keras"), "--data", str(workdir / "data.h5"), "--out", str(out),
            "--preprocess", "symmetric", *options, *extra]
    return CliRunner().invoke(app, args)


def test_explain_writes_every_file_and_a_consistent_report(workdir, tmp_path):
    out = tmp_path / "run"
    result = _explain(workdir, out)
    assert result.exit_code == 0, result.output
    for name in EXPLAINERS:
        folder = out / name
        assert (folder / "summary.json").exists() and (folder / "arrays.npz").exists()
        assert list(folder.glob("*.png")), name
        json.loads((folder / "summary.json").read_text())
        with np.load(folder / "arrays.npz", allow_pickle=False) as arrays:
            assert arrays.files
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model"]["sha256"] and manifest["preprocessing"]["scaling"] == "symmetric"
    assert manifest["preprocessing"]["resize"] == "48x48 -> 64x64 bilinear"
    assert set(manifest["explainers"]) == set(EXPLAINERS)
    assert manifest["versions"]["tensorflow"]
    page = (out / "index.html").read_text()
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert sources and all((out / src).is_file() for src in sources)
    assert not re.search(r'(src|href)="(https?:)?//', page), "the report must not load anything from outside"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "staging directory left behind"


def _previous_report(out):
    """A folder that reads as an earlier report: ``--overwrite`` may replace it."""
    (out / "old").mkdir(parents=True)
    (out / "manifest.json").write_text(json.dumps({"model": {"sha256": "0" * 64}, "explainers": {"old": {}},
                                                   "files": ["manifest.json", KEEP]}))
    (out / KEEP).write_text("previous results")


KEEP = "old/keep.txt"  # a file the previous report wrote (its manifest lists it)


def test_existing_output_is_refused_unless_overwrite(workdir, tmp_path):
    out = tmp_path / "run"
    _previous_report(out)
    result = _explain(workdir, out, "-e", "confusion", options=[])
    assert result.exit_code == 2
    assert "--overwrite" in result.output and (out / KEEP).exists()
    result = _explain(workdir, out, "-e", "confusion", "--overwrite", options=[])
    assert result.exit_code == 0, result.output
    assert not (out / KEEP).exists() and (out / "confusion" / "summary.json").exists()
    assert (out.stat().st_mode & 0o777) == (0o777 & ~_umask()), "the report folder must not be owner-only"


def _umask():
    umask = os.umask(0)
    os.umask(umask)
    return umask


def test_overwrite_never_replaces_a_folder_that_is_not_a_report(workdir, tmp_path, monkeypatch):
    # A training run's folder: --overwrite must not delete the model being explained, nor anything else.
    run = tmp_path / "runs" / "cnn"
    run.mkdir(parents=True)
    (run / "model.keras").write_bytes((workdir / "model.keras").read_bytes())
    args = ["explain", str(run / "model.keras"), "--data", str(workdir / "data.h5"), "-e", "confusion",
            "--preprocess", "symmetric", "--overwrite", "--out"]
    result = CliRunner().invoke(app, [*args, str(run)])
    assert result.exit_code == 2 and "an input of this run" in " ".join(result.output.split())
    result = CliRunner().invoke(app, [*args, str(tmp_path / "runs")])  # the model lies deeper inside
    assert result.exit_code == 2 and "an input of this run" in " ".join(result.output.split())
    (tmp_path / "papers").mkdir()
    (tmp_path / "papers" / "notes.txt").write_text("mine")
    result = CliRunner().invoke(app, [*args, str(tmp_path / "papers")])
    assert result.exit_code == 2 and "not an xai-fer report" in " ".join(result.output.split())
    assert (run / "model.keras").exists() and (tmp_path / "papers" / "notes.txt").exists()
    monkeypatch.chdir(run)
    for out in (".", "..", "/"):
        result = CliRunner().invoke(app, [*args, out])
        assert result.exit_code == 2 and "current directory" in " ".join(result.output.split()), out
    assert (run / "model.keras").exists()


def test_a_linked_out_is_filled_and_stays_a_link(workdir, tmp_path):
    real = tmp_path / "real" / "report"
    _previous_report(real)
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    result = _explain(workdir, link, "-e", "confusion", "--overwrite", options=[])
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and (real / "confusion" / "summary.json").exists()
    assert not (real / KEEP).exists()
    leftovers = [p.name for p in [*tmp_path.iterdir(), *real.parent.iterdir()] if p.name.startswith(".")]
    assert not leftovers


@pytest.mark.parametrize(
    "args, message",
    [
        (["-e", "saliancy"], "did you mean 'saliency'"),
        (["-o", "saliency.per_clas=2"], "did you mean saliency.per_class"),
        (["-o", "saliency.per_class=two"], "expected a whole number"),
        (["-e", "confusion", "-o", "saliency.per_class=2"], "does not include"),
        (["-o", "noexplainer=1"], "does not name its explainer"),
        (["-o", "saliency.per_class"], "is not EXPLAINER.KEY=VALUE: write it like --option EXPLAINER.KEY=VALUE"),
    ],
)
def test_bad_names_and_options_fail_before_any_work(workdir, tmp_path, args, message):
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["explain", str(workdir / "missing.keras"), "--out", str(out), *args])
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
    assert not out.exists()


def test_seeded_runs_are_identical(workdir, tmp_path):
    for name in ("a", "b"):
        result = _explain(workdir, tmp_path / name, "-e", "saliency", "-e", "activation-max", "--seed", "3",
                          options=FAST[:4])
        assert result.exit_code == 0, result.output
    for explainer in ("saliency", "activation-max"):
        first, second = (tmp_path / run / explainer / "arrays.npz" for run in ("a", "b"))
        with np.load(first) as a, np.load(second) as b:
            assert a.files == b.files
            for key in a.files:
                np.testing.assert_array_equal(a[key], b[key], err_msg=f"{explainer}/{key}")


def test_python_api_returns_figures(workdir):
    import matplotlib.figure

    import xai_fer

    model = xai_fer.load_model(workdir / "model.keras")
    data = xai_fer.load_dataset(workdir / "data.h5")
    artifacts, *_ = xai_fer.run_explainers(model, data, ["confusion"], preprocess="symmetric")
    figure = next(iter(artifacts["confusion"].figures.values()))
    assert isinstance(figure, matplotlib.figure.Figure)
    assert artifacts["confusion"].summary


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_killed_run_leaves_previous_results_and_no_partial_output(workdir, tmp_path, sig):
    out = tmp_path / "run"
    _previous_report(out)
    env = {k: v for k, v in os.environ.items()} | {"XAI_FER_DISABLE_PLUGINS": "1"}
    command = [sys.executable, "-m", "xai_fer", "explain", str(workdir / "model.keras"), "--data",
               str(workdir / "data.h5"), "--out", str(out), "--overwrite", "--preprocess", "symmetric",
               "-e", "activation-max", "-o", "activation-max.steps=100000", "--progress", "lines"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    for line in process.stdout:  # the run announces each explainer as it starts it
        seen.append(line)
        if "running activation-max" in line:
            break
    assert process.poll() is None, "".join(seen)
    time.sleep(2.0)  # well inside the (100,000-step) optimisation
    process.send_signal(sig)
    output = "".join(seen) + process.communicate(timeout=60)[0]
    assert process.returncode != 0, output
    assert (out / KEEP).read_text() == "previous results"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"], f"half-written output left behind: {output}"


def test_all_explainers_means_all_that_apply(tmp_path):
    # The shipped DNN has no conv layer: activation-max and the CAM methods are skipped with their reason, the
    # others run.
    from xai_fer.reference import MODELS, SAMPLE

    out = tmp_path / "dnn"
    needs_conv = {"activation-max", "grad-cam", "grad-cam-plus-plus"}
    # Options given for an explainer make it run even where it does not apply: none for those skipped here.
    fast = [arg for pair in zip(FAST[::2], FAST[1::2], strict=True) if pair[1].split(".")[0] not in needs_conv
            for arg in pair]
    result = CliRunner().invoke(app, ["explain", str(MODELS["dnn"]), "--data", str(SAMPLE), "--out", str(out),
                                      *fast])
    assert result.exit_code == 0, result.output
    shown = " ".join(result.output.split())
    for name in needs_conv:
        assert f"skipped {name}: model 'dnn' has no conv layers" in shown
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["explainers"]) == set(EXPLAINERS) - needs_conv and set(manifest["skipped"]) == needs_conv
    # Asked for by name (or given options), it is an error as before.
    result = CliRunner().invoke(app, ["explain", str(MODELS["dnn"]), "--data", str(SAMPLE), "--out",
                                      str(tmp_path / "again"), "-e", "activation-max"])
    assert result.exit_code == 2 and "has no conv layers" in result.output


def test_bundled_files_are_named_as_such_and_the_command_is_recorded(tmp_path, monkeypatch):
    from xai_fer.reference import MODELS

    out = tmp_path / "run"
    args = ["explain", "bundled:dnn", "--data", "bundled:sample", "-e", "confusion", "--preset", "quick", "--out",
            str(out)]
    monkeypatch.setattr(sys, "argv", ["xai-fer", *args])
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model"]["path"] == "bundled:dnn" and manifest["data"]["source"] == "bundled:sample"
    assert manifest["command"] == ("xai-fer explain bundled:dnn --data bundled:sample -e confusion --preset quick "
                                   f"--out {out}") and manifest["preset"] == "quick"
    assert "site-packages" not in (out / "index.html").read_text() and str(MODELS["dnn"]) not in json.dumps(manifest)
    # The bundled file given by its path is named the same way.
    again = tmp_path / "again"
    result = CliRunner().invoke(app, ["explain", str(MODELS["dnn"]), "-e", "confusion", "--out", str(again)])
    assert result.exit_code == 0 and json.loads((again / "manifest.json").read_text())["model"]["path"] == "bundled:dnn"
    result = CliRunner().invoke(app, ["explain", "bundled:vgg", "-e", "confusion", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "bundled:vgg is not a bundled file" in " ".join(result.output.split())


def test_progress_stays_quiet_in_a_pipe_and_lines_are_asked_for(workdir, tmp_path):
    """CliRunner's stderr is no terminal, as a pipe: no bars, no lines. ``--progress lines`` names each explainer
    as it starts (for logs); an unknown mode is one line."""
    quick = ["-e", "saliency", "-e", "activation-max", "-o", "saliency.indices=0", "-o", "activation-max.steps=12",
             "-o", "activation-max.first=2"]
    quiet = _explain(workdir, tmp_path / "quiet", options=quick)
    assert quiet.exit_code == 0, quiet.output
    assert "running" not in quiet.stderr and "━" not in quiet.stderr and "ascent steps" not in quiet.stderr
    assert "saliency" not in quiet.stderr, quiet.stderr
    logged = _explain(workdir, tmp_path / "logged", "--progress", "lines", options=quick)
    assert logged.exit_code == 0, logged.output
    assert [line for line in logged.stderr.splitlines() if line.startswith("running ")] == [
        "running saliency...", "running activation-max..."]
    wrong = _explain(workdir, tmp_path / "wrong", "--progress", "sideways", options=quick)
    assert wrong.exit_code == 2 and "--progress 'sideways' is not one of auto, bar, lines, off" in wrong.output


def test_per_class_views_are_skipped_with_their_reason_on_one_image_per_class(workdir, tmp_path):
    """--preset quick explains one image per class: a class's mean map or confidence extremes would only repeat
    that image's map, so those views are left out of "all" and say why (method-disagreement, which compares
    methods per image, still runs); asked for by name, such a view is refused in one line; with two images per
    class it runs."""
    out = tmp_path / "quick"
    result = _explain(workdir, out, "--preset", "quick", options=SPEED)
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["skipped"]) == {"class-maps", "confusion-maps", "confidence-extremes"}
    assert all("one image per class" in reason for reason in manifest["skipped"].values())
    assert "method-disagreement" in manifest["explainers"]
    named = ["-e", "saliency", "-e", "class-maps", "--preset", "quick"]
    result = _explain(workdir, tmp_path / "named", *named, options=[])
    assert result.exit_code == 2 and "one image per class" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "named").exists()
    result = _explain(workdir, tmp_path / "two", *named, options=["-o", "saliency.per_class=2"])
    assert result.exit_code == 0, result.output
    assert "class-maps" in json.loads((tmp_path / "two" / "manifest.json").read_text())["explainers"]
