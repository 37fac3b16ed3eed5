"""The output side of hostile and careless inputs (issue 21): user strings shown as text everywhere (terminal,
figures, HTML, JSON), ``--out`` folders that are never lost or half-written, unusual but legal models, and
options with no ceiling. Every case ends in a working run or in one line with exit code 2; nothing outside the
test's tmp folders is touched.

Several instances per class, not one example: class names, file names and paths holding Rich markup, terminal
escape sequences, bidi overrides, mathtext and bytes that are not UTF-8."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tiny_models
from fixtures import sample_images, write_npz
from PIL import Image
from typer.testing import CliRunner

import xai_fer
from xai_fer import display
from xai_fer.cli import app

# What must never reach a terminal or a page: C0 controls but the newline, DEL, C1, bidi controls, line and
# paragraph separators, lone surrogates.
HIDDEN = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
                    "\ud800-\udfff]")
MARKUP = ["[link=https://evil.example]Happy", "[/]", "d[/b]x", "[bold red]loud[/bold red]", "\\[x]", "[", "]"]
ESCAPES = ["\x1b]0;pwned\x07", "\x1b[2J\x1b[H", "\x9b31mred", "del\x7f", "\u202eevil", "\u2066iso\u2069", "a\r\nb"]
MATHTEXT = ["$\\frac{", "a$b$", "$x$", "\\$", "$$", "$\\alpha", "}$"]
NOT_UTF8 = [os.fsdecode(name) for name in (b"caf\xe9", b"\xff", b"x\x80y", b"\xc3(", b"Sad", b"Fear", b"Neutral")]
NAME_SETS = {"markup": MARKUP, "escapes": ESCAPES, "mathtext": MATHTEXT, "not-utf8": NOT_UTF8}
FAST = ["-e", "confusion", "-e", "saliency", "-o", "saliency.per_class=1", "--preprocess", "unit"]


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def assert_clean(text: str) -> None:
    found = HIDDEN.search(text)
    assert found is None, f"{found.group()!r} reached the output: {text!r}"


def assert_one_line_error(result, *fragments):
    text = result.output
    assert result.exit_code == 2, text
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("running ")]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in text, text
    for fragment in fragments:
        assert fragment in " ".join(text.split()), text
    assert_clean(text)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("hostile")
    tiny_models.sequential_fused_softmax().save(folder / "model.keras")  # 48x48x1, 7 classes
    _data(folder, "markup", MARKUP)  # markup.npz: the data of most runs below
    return folder


def _image_folder(folder: Path, names: list[str]) -> Path:
    """One class folder per name (names are file names here: bytes that are not UTF-8 stay bytes)."""
    images = sample_images(2 * len(names))
    for index, name in enumerate(names):
        (folder / name).mkdir(parents=True)
        for k in range(2):
            Image.fromarray(images[2 * index + k]).save(folder / name / f"{k}.png")
    return folder


def _data(root: Path, kind: str, names: list[str]) -> Path:
    """Class names in an .npz (any string) or, where they can be file names, as class folders."""
    if kind in ("not-utf8", "escapes"):
        return _image_folder(root / f"folder-{kind}", [name.replace("\r\n", "_") for name in names])
    return write_npz(root / f"{kind}.npz", sample_images(14)[..., None], np.arange(14) % 7, class_names=names)


# ---------------------------------------------------------------------------------------------------------
# Terminal injection and user strings in every renderer.


@pytest.mark.parametrize("kind", list(NAME_SETS))
def test_hostile_class_names_and_paths_are_text_everywhere(root, tmp_path, kind):
    names = NAME_SETS[kind]
    data = _data(root, kind, names)
    class_names = list(xai_fer.load_dataset(data).class_names)
    # The terminal: evaluate's table, every name shown as it is (markup) or with its controls made visible.
    result = invoke("evaluate", root / "model.keras", "--data", data, "--preprocess", "unit")
    assert result.exit_code == 0, result.output
    assert_clean(result.output)
    for name in class_names:
        assert display.visible(name) in result.output, (name, result.output)
    result = invoke("evaluate", root / "model.keras", "--data", data, "--preprocess", "unit", "--json")
    assert result.exit_code == 0 and result.stdout.isascii(), result.output  # JSON for scripts: ASCII only
    assert list(json.loads(result.stdout)["per_class"]) == class_names  # and the exact strings
    # --out named with the same strings; explain writes figures, arrays, JSON and the page.
    out = tmp_path / f"out {names[0].replace('/', '_')} {names[1].replace('/', '_')}"
    result = invoke("explain", root / "model.keras", "--data", data, "--out", out, *FAST)
    assert result.exit_code == 0, result.output
    assert_clean(result.output)
    assert f"wrote {display.visible(out)}/" in result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["data"]["class_names"] == class_names  # JSON keeps the exact strings
    summary = json.loads((out / "confusion" / "summary.json").read_text())
    assert summary["class_names"] == class_names
    for figure in ("confusion/confusion_counts.png", "confusion/per_class_metrics.png", "saliency/grid.png"):
        with Image.open(out / figure) as image:
            assert image.size[0] > 100, figure
    page = (out / "index.html").read_bytes().decode("utf-8")  # valid UTF-8, whatever the names' bytes
    assert_clean(page)
    import html

    for name in class_names:
        assert html.escape(display.visible(name)) in page, name
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")], "staging left behind"


@pytest.mark.parametrize("kind", ["markup", "mathtext", "escapes"])
def test_figure_text_is_literal_in_the_python_api(root, kind):
    names = NAME_SETS[kind]
    dataset = xai_fer.Dataset(images=sample_images(14)[..., None], labels=np.arange(14) % 7, class_names=names,
                              source="api")
    model = xai_fer.load_model(root / "model.keras")
    artifacts, *_ = xai_fer.run_explainers(model, dataset, ["confusion"], preprocess="unit")
    figure = artifacts["confusion"].figures["confusion_counts"]
    labels = [label for label in figure.axes[0].get_xticklabels()]
    assert [label.get_text() for label in labels] == [display.visible(n, keep_newlines=True) for n in names]
    assert not any(label.get_parse_math() for label in labels)
    import io

    figure.savefig(io.BytesIO(), format="png")  # what a notebook does to show it: no mathtext error


def test_hostile_layer_and_model_names_print_as_text_and_explain(root, tmp_path):
    # Legal in Keras, refused by TensorFlow as name scopes (spaces, brackets, a colon, a leading underscore).
    keras.utils.set_random_seed(7)
    inputs = keras.Input((48, 48, 1), name="in put [1]")
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv [red]a[bold] (1)")(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu", name="_conv b:2\x1b[2J")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap ()")(x)
    outputs = keras.layers.Dense(7, activation="softmax", name="caf\u00e9 \u202eout")(x)
    keras.Model(inputs, outputs, name="my model [v2] (final)").save(tmp_path / "names.keras")
    result = invoke("info", tmp_path / "names.keras")
    assert result.exit_code == 0, result.output
    assert_clean(result.output)
    assert "conv [red]a[bold] (1)" in result.output and "\\x1b[2J" in result.output
    out = tmp_path / "report"
    result = invoke("explain", tmp_path / "names.keras", "--data", _data(root, "markup", MARKUP), "--out", out,
                    "-e", "saliency", "-e", "activation-max", "-o", "saliency.per_class=1",
                    "-o", "activation-max.steps=3", "--preprocess", "unit")
    assert result.exit_code == 0, result.output
    assert_clean(result.output)
    renamed = json.loads((out / "manifest.json").read_text())["model"]["renamed"]["names"]
    assert renamed["my model [v2] (final)"] == "my_model__v2___final_" and "conv [red]a[bold] (1)" in renamed
    assert "Note: renamed" in result.output
    # The Python API renames the same way (in memory; the context says what it renamed).
    from xai_fer import explain_model

    explanation = explain_model(keras.models.load_model(tmp_path / "names.keras"), _data(root, "markup", MARKUP),
                                ["saliency"], {"saliency": {"per_class": 1}}, preprocess="unit")
    assert explanation.context.renamed["my model [v2] (final)"] == "my_model__v2___final_"
    assert explanation.artifacts["saliency"].arrays["maps"].shape[1:] == (48, 48)


@pytest.mark.parametrize("path", ["missing [/] model.keras", "\x1b]0;title\x07\x1b[2J.keras", "\u202ecod.exe.keras",
                                  os.fsdecode(b"caf\xe9.keras"), "[link=https://evil.example]m.keras"])
def test_errors_quoting_hostile_paths_are_one_clean_line(tmp_path, monkeypatch, capsys, path):
    for command in (["info", tmp_path / path], ["evaluate", tmp_path / path, "--data", tmp_path / path],
                    ["explain", tmp_path / path, "--out", tmp_path / "out"]):
        assert_one_line_error(invoke(*command), "does not exist")
    assert_one_line_error(invoke("plugins", path), "is named")
    # Typer's own usage errors, as the console entry point prints them.
    from xai_fer.cli import main

    for args in (["explain", "--seed", path], ["explain", path, "--no-such-option", path], ["info"]):
        monkeypatch.setattr(sys, "argv", ["xai-fer", *args])
        with pytest.raises(SystemExit) as stopped:
            main()
        error = capsys.readouterr().err
        assert stopped.value.code == 2 and error.startswith("Error: ") and len(error.splitlines()) == 1, error
        assert_clean(error)


# ---------------------------------------------------------------------------------------------------------
# Data loss: --overwrite replaces only a report's own files; two runs into one new --out.


@pytest.fixture(scope="module")
def report(root, tmp_path_factory) -> Path:
    """A real report, copied by each test that changes it."""
    out = tmp_path_factory.mktemp("report") / "report"
    result = invoke("explain", root / "model.keras", "--data", _data(root, "markup", MARKUP), "--out", out, *FAST)
    assert result.exit_code == 0, result.output
    return out


def _copy(report: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(report, tmp_path / "report"))


def _explain_into(root, out, *extra):
    return invoke("explain", root / "model.keras", "--data", root / "markup.npz", "--out", out, *FAST, *extra)


def test_the_manifest_lists_every_file_the_report_wrote(report):
    listed = set(json.loads((report / "manifest.json").read_text())["files"])
    written = {p.relative_to(report).as_posix() for p in report.rglob("*") if p.is_file()}
    assert listed == written


@pytest.mark.parametrize("extra", ["notes.txt", "annotations/mine.txt", "confusion/mine.txt", ".DS_Store",
                                   "saliency/sub/deep.txt"])
def test_overwrite_refuses_a_report_holding_the_users_files(root, report, tmp_path, extra):
    out = _copy(report, tmp_path)
    added = next(out / part for part in [*reversed(Path(extra).parents), Path(extra)]
                 if not (out / part).exists())  # the user's outermost new entry
    (out / extra).parent.mkdir(parents=True, exist_ok=True)
    (out / extra).write_text("mine")
    before = sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))
    assert_one_line_error(_explain_into(root, out, "--overwrite"), added.relative_to(out).as_posix(), "did not write")
    assert (out / extra).read_text() == "mine"
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == before
    shutil.rmtree(added) if added.is_dir() else added.unlink()
    result = _explain_into(root, out, "--overwrite")  # without them, the report is replaced
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("manifest", [
    {"explainers": {}, "model": {}},
    {"explainers": {"confusion": {}}, "model": {}},
    {"explainers": {}, "model": {"sha256": "0" * 64}},
    {"explainers": {"x": {}}, "model": {"sha256": "0" * 64}, "files": ["notes.txt"]},
    {"explainers": {"x": {}}, "model": {"sha256": "0" * 64}, "files": ["x/../../notes.txt"]},
    {"explainers": {"x": {}}, "model": {"sha256": "0" * 64}, "files": ["/etc/passwd"]},
    ["explainers", "model"],
])
def test_a_manifest_that_only_looks_like_a_report_is_not_replaced(root, tmp_path, manifest):
    out = tmp_path / "folder"
    out.mkdir()
    (out / "manifest.json").write_text(json.dumps(manifest))
    (out / "notes.txt").write_text("mine")
    assert_one_line_error(_explain_into(root, out, "--overwrite"))
    assert (out / "notes.txt").read_text() == "mine"


def test_a_run_that_finds_its_out_taken_when_it_writes_fails_in_one_line(root, tmp_path, monkeypatch):
    from xai_fer.explain import pipeline

    out = tmp_path / "new" / "run"
    compute = pipeline.explain_loaded

    def other_run_finished_first(*args, **kwargs):  # another explain into the same new --out wrote it meanwhile
        results = compute(*args, **kwargs)
        out.mkdir(parents=True)
        (out / "theirs.txt").write_text("the other run's report")
        return results

    monkeypatch.setattr(pipeline, "explain_loaded", other_run_finished_first)
    assert_one_line_error(_explain_into(root, out), "written by another run")
    assert sorted(p.name for p in out.iterdir()) == ["theirs.txt"]
    monkeypatch.undo()

    later = tmp_path / "later"
    render = pipeline.render_index

    def other_run_wins_the_rename(manifest, sections, **browser):  # after the check, before the final rename
        later.mkdir()
        (later / "theirs.txt").write_text("the other run's report")
        return render(manifest, sections, **browser)

    monkeypatch.setattr(pipeline, "render_index", other_run_wins_the_rename)
    assert_one_line_error(_explain_into(root, later), "written by another run")
    assert sorted(p.name for p in later.iterdir()) == ["theirs.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["later", "new"], "staging left behind"


@pytest.mark.slow
def test_two_explain_processes_into_one_new_out_one_fails_in_one_line(root, tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "xai_fer", "explain", str(root / "model.keras"), "--data",
               str(root / "markup.npz"), "--out", str(out), *FAST]
    env = {**os.environ, "XAI_FER_DISABLE_PLUGINS": "1"}
    processes = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for _ in range(2)]
    results = [(p.wait(timeout=420), p.stdout.read()) for p in processes]
    assert sorted(code for code, _ in results) == [0, 2], results
    loser = next(text for code, text in results if code == 2)
    assert "Traceback" not in loser and ("already exists" in loser or "written by another run" in loser), loser
    assert (out / "manifest.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_a_stale_folder_of_a_killed_run_is_never_in_the_way(root, report, tmp_path):
    out = _copy(report, tmp_path)
    for stale in (f".report.old-{os.getpid()}", ".report.old-1", ".report.tmp-abc"):
        (tmp_path / stale).mkdir()
        (tmp_path / stale / "manifest.json").write_text("{}")
    result = _explain_into(root, out, "--overwrite")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == [
        ".report.old-1", f".report.old-{os.getpid()}", ".report.tmp-abc"]  # not ours to delete


# ---------------------------------------------------------------------------------------------------------
# --out paths that would fail after the compute, and full disks.


@pytest.mark.parametrize("name, ok", [("a" * 250, True), ("a" * 255, True), ("a" * 256, False),
                                      ("\u00e9" * 128, False), ("deep/" * 900 + "run", False)])
def test_long_out_names_work_or_are_refused_before_any_work(root, tmp_path, name, ok):
    result = _explain_into(root, tmp_path / name)
    if ok:
        assert result.exit_code == 0, result.output
        assert (tmp_path / name / "index.html").exists()
    else:
        assert_one_line_error(result, "pick a shorter --out")
        assert "running" not in result.output  # refused before the explainers
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def _immutable(folder: Path) -> bool:
    return subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0


@pytest.mark.parametrize("out", ["/proc/xai-fer-test/run", "/sys/xai-fer-test", "immutable/run", "immutable",
                                 "file.txt/run"])
def test_out_paths_that_cannot_be_written_are_refused_before_any_work(root, report, tmp_path, out):
    (tmp_path / "file.txt").write_text("a file")
    if out.startswith("immutable"):
        shutil.copytree(report, tmp_path / "immutable")
        if not _immutable(tmp_path / "immutable"):
            pytest.skip("chattr +i is not available here")
    try:
        target = Path(out) if out.startswith("/") else tmp_path / out
        assert_one_line_error(_explain_into(root, target, "--overwrite"))
        train = invoke("train", "dnn", "--data", root / "markup.npz", "--out", target, "--epochs", 1)
        assert_one_line_error(train)
    finally:
        subprocess.run(["chattr", "-i", str(tmp_path / "immutable")], capture_output=True)
    assert not Path("/proc/xai-fer-test").exists()


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS])
def test_a_full_disk_while_writing_is_one_line_and_leaves_nothing(root, report, tmp_path, monkeypatch, code):
    from xai_fer.explain.artifact import Artifact

    def fail(self, directory, max_figures=None):
        raise OSError(code, os.strerror(code), str(directory / "x.png"))

    monkeypatch.setattr(Artifact, "write", fail)
    assert_one_line_error(_explain_into(root, tmp_path / "a" / "b" / "run"), os.strerror(code))
    assert list(tmp_path.iterdir()) == [], "staging or parents left behind"
    out = _copy(report, tmp_path)  # an earlier report stays as it was
    before = (out / "index.html").read_bytes()
    assert_one_line_error(_explain_into(root, out, "--overwrite"), os.strerror(code))
    assert (out / "index.html").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EFBIG])
def test_a_full_disk_while_training_is_one_line(root, tmp_path, monkeypatch, code):
    from xai_fer import atomic

    def fail(model, path):
        raise OSError(code, os.strerror(code), str(path))

    monkeypatch.setattr(atomic, "save_keras", fail)
    result = invoke("train", "dnn", "--data", root / "markup.npz", "--out", tmp_path / "run", "--epochs", 1)
    assert_one_line_error(result, os.strerror(code))
    assert list(tmp_path.iterdir()) == [], "a run without a checkpoint leaves no folder"


def _limited(limit_bytes: int, *args) -> subprocess.CompletedProcess:
    """``xai-fer ARGS`` in a process whose files may not grow past ``limit_bytes`` (ulimit -f): a real EFBIG."""
    code = (f"import resource; resource.setrlimit(resource.RLIMIT_FSIZE, ({limit_bytes}, resource.RLIM_INFINITY)); "
            "from xai_fer.cli import main; main()")
    env = {**os.environ, "XAI_FER_DISABLE_PLUGINS": "1"}
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=420)


@pytest.mark.slow
def test_a_real_file_size_limit_in_explain_and_train(root, tmp_path):
    explain = _limited(20_000, "explain", root / "model.keras", "--data", root / "markup.npz", "--out",
                       tmp_path / "x" / "run", *FAST)
    train = _limited(20_000, "train", "dnn", "--data", root / "markup.npz", "--out", tmp_path / "train",
                     "--epochs", 1)
    for result in (explain, train):
        assert result.returncode == 2 and "File too large" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) <= 4, result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_sighup_leaves_the_previous_report_and_no_staging(root, report, tmp_path):
    out = _copy(report, tmp_path)
    before = (out / "index.html").read_bytes()
    command = [sys.executable, "-m", "xai_fer", "explain", str(root / "model.keras"), "--data",
               str(root / "markup.npz"), "--out", str(out), "--overwrite", "-e", "activation-max",
               "-o", "activation-max.steps=100000", "--progress", "lines"]
    env = {**os.environ, "XAI_FER_DISABLE_PLUGINS": "1"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in process.stdout:
        if "running activation-max" in line:
            break
    time.sleep(2.0)
    process.send_signal(signal.SIGHUP)
    output = process.communicate(timeout=60)[0]
    assert process.returncode == 130, output
    assert (out / "index.html").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]


# ---------------------------------------------------------------------------------------------------------
# Legal but unusual models: many classes.


@pytest.mark.parametrize("classes", [41, 300, 1000])
def test_many_classes_give_bounded_figures_and_full_arrays(tmp_path, classes):
    keras.utils.set_random_seed(classes)
    model = keras.Sequential([keras.Input((48, 48, 1)), keras.layers.Conv2D(2, 3, name="conv"),
                              keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(classes, activation="softmax", name="out")])
    model.save(tmp_path / "many.keras")
    names = [f"class {i} $x$" for i in range(classes)]
    write_npz(tmp_path / "many.npz", sample_images(classes)[..., None], np.arange(classes), class_names=names)
    out = tmp_path / "run"
    result = invoke("explain", tmp_path / "many.keras", "--data", tmp_path / "many.npz", "--out", out,
                    "-e", "confusion", "--preprocess", "unit")
    assert result.exit_code == 0, result.output
    for figure in out.glob("confusion/*.png"):
        with Image.open(figure) as image:
            assert max(image.size) < 6000, (figure.name, image.size)  # the same at 41 and 1,000 classes
    with np.load(out / "confusion" / "arrays.npz") as arrays:
        assert arrays["counts"].shape == (classes, classes) and arrays["counts"].sum() == classes
    summary = json.loads((out / "confusion" / "summary.json").read_text())
    assert len(summary["figures_show_classes"]) == 40 and len(summary["per_class"]) == classes
    assert summary["confusion_counts"] is None and "arrays.npz" in summary["confusion_counts_note"]
    assert (out / "index.html").stat().st_size < 2_000_000


# ---------------------------------------------------------------------------------------------------------
# Options with no ceiling.


@pytest.mark.parametrize("option, message", [
    ("activation-max.steps=1000000000", "steps must be at most 100,000"),
    ("activation-max.steps=100001", "steps must be at most 100,000"),
    ("activation-max.first=5000", "first must be at most 1024"),
    ("activation-max.columns=100000", "columns must be from 1 to 64"),
    ("activation-max.filters=" + ",".join(map(str, range(2000))), "at most 1024"),
])
def test_runaway_activation_max_options_are_refused_at_once(root, tmp_path, option, message):
    started = time.perf_counter()
    result = invoke("explain", root / "model.keras", "--data", root / "markup.npz", "--out", tmp_path / "run",
                    "-e", "activation-max", "-o", option)
    assert_one_line_error(result, message)
    assert time.perf_counter() - started < 30 and not (tmp_path / "run").exists()


@pytest.mark.parametrize("options", [["-o", "saliency.per_class=100000"],
                                     ["-o", "saliency.indices=" + ",".join(map(str, range(24)))],
                                     ["-o", "saliency.select=misclassified", "-o", "saliency.count=100000"]])
def test_per_image_figures_are_capped_with_a_note(root, tmp_path, options):
    write_npz(tmp_path / "many.npz", sample_images(24)[..., None], np.arange(24) % 7)
    out = tmp_path / "run"
    result = invoke("explain", root / "model.keras", "--data", tmp_path / "many.npz", "--out", out, "-e",
                    "saliency", *options, "-o", "saliency.grid_rows=2", "--max-figures", 5, "--preprocess", "unit")
    assert result.exit_code == 0, result.output
    figures = sorted(p.name for p in (out / "saliency").glob("*.png"))
    assert len(figures) == 5 and "grid.png" in figures, figures
    with np.load(out / "saliency" / "arrays.npz") as arrays:
        selected = len(arrays["maps"])
    assert selected > 5
    left_out = json.loads((out / "manifest.json").read_text())["figures_left_out"]
    assert left_out["explainers"]["saliency"] == {"written": 5, "made": selected + 1}
    assert "--max-figures 5" in " ".join(result.output.split())
    assert "Figures left out" in (out / "index.html").read_text()
    assert_one_line_error(invoke("explain", "--max-figures", 0, "--out", tmp_path / "zero"), "--max-figures")


# ---------------------------------------------------------------------------------------------------------
# Issue 17, section 5: command-line details.


@pytest.mark.parametrize("command", [[], ["train"], ["explain"], ["evaluate"], ["info"], ["plugins"]])
def test_help_shows_no_type_after_flags_and_cuts_nothing_at_80_columns(monkeypatch, command):
    from typer import rich_utils

    monkeypatch.setattr(rich_utils, "MAX_WIDTH", 80)
    result = invoke(*command, "--help")
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output and "\u2026" not in result.output, result.output


def test_a_training_run_folder_stands_for_its_model(root, tmp_path):
    run = tmp_path / "runs" / "dnn1"
    run.mkdir(parents=True)
    shutil.copy(root / "model.keras", run / "model.keras")
    for command in (["info", run], ["evaluate", run, "--data", root / "markup.npz", "--preprocess", "unit"]):
        result = invoke(*command)
        assert result.exit_code == 0, result.output
        assert f"using its model {run / 'model.keras'}" in " ".join(result.output.split())
    (run / "model.keras").unlink()
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "state.json").write_text("{}")
    assert_one_line_error(invoke("info", run), "without a model.keras", "--finish")


def test_gitignore_holds_the_readmes_output_folder():
    lines = (Path(__file__).resolve().parents[1] / ".gitignore").read_text().splitlines()
    assert "xai-fer-out/" in lines


@pytest.mark.parametrize("usage, reason", [(None, "no Usage column"), ("Training", "only Training rows")])
def test_training_without_test_splits_says_why_there_are_no_test_metrics(tmp_path, usage, reason):
    data = write_npz(tmp_path / "train.npz", sample_images(70)[..., None], np.arange(70) % 7,
                     usage=None if usage is None else np.zeros(70, np.uint8))
    out = tmp_path / "run"
    result = invoke("train", "dnn", "--data", data, "--out", out, "--epochs", 1, "--set", "validation_fraction=0.2")
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["splits"] == {} and reason in metrics["splits_note"]
    assert "no test metrics: " in result.output
