"""Hostile inputs, round three (issue 21, re-probed with new instances of each class): each answered by ONE line
and exit code 2 (or a working run), with nothing outside the test's folders touched.

- a tampered ``state.json``: every key the trainer reads, of the wrong type or out of range, and JSON nested
  deep; folders and special files under the names of checkpoints;
- long class names: figures stay bounded, no library warning reaches the terminal, error lines stay short;
- HDF5 soft-link loops, in data and in models;
- ``activation-max.image_file`` through the checked image open;
- recursive globs through linked folders;
- out of memory from a model option.
"""

from __future__ import annotations

import json
import os
import shutil

import h5py
import pytest
import test_hostile_inputs as hostile
from fixtures import sample_images
from test_hostile_inputs import _declare_jpeg_size, _declare_png_size, _jpeg, _png, assert_refused, snapshot
from typer.testing import CliRunner

from xai_fer.cli import app

# The fixtures of round two, shared: a good model and data, a run folder beside the user's files, the alarm.
good, run_and_victims, no_hang = hostile.good, hostile.run_and_victims, hostile.no_hang


def _set_state(out, **changes):
    path = out / "checkpoints" / "state.json"
    state = json.loads(path.read_text())
    state.update(changes)
    path.write_text(json.dumps(state))


def _drop_state_key(out, key):
    path = out / "checkpoints" / "state.json"
    state = json.loads(path.read_text())
    del state[key]
    path.write_text(json.dumps(state))


def _nest_state(out, depth):
    (out / "checkpoints" / "state.json").write_text("[" * depth + "]" * depth)


STATE_CASES = {
    # id: (tampering, message)
    "nested-200000-deep": (lambda out: _nest_state(out, 200_000), "nested too deep"),
    "nested-object-50000-deep": (lambda out: (out / "checkpoints" / "state.json").write_text(
        '{"a":' * 50_000 + "1" + "}" * 50_000), "nested too deep"),
    "model_options-missing": (lambda out: _drop_state_key(out, "model_options"), "has no 'model_options'"),
    "config-missing": (lambda out: _drop_state_key(out, "config"), "has no 'config'"),
    "changed_after_training-list": (lambda out: _set_state(out, changed_after_training=["tta_flip"]),
                                    "'changed_after_training' is list"),
    "resume_commands-int": (lambda out: _set_state(out, resume_commands=7), "'resume_commands' is int 7"),
    "resume_commands-list-of-ints": (lambda out: _set_state(out, resume_commands=[1, 2]), "'resume_commands' is"),
    "command-a-list": (lambda out: _set_state(out, command=["rm"]), "'command' is list"),
    "data-a-string": (lambda out: _set_state(out, data="tiny.h5"), "'data' is str 'tiny.h5'"),
    "data-a-list": (lambda out: _set_state(out, data=[1, 2]), "'data' is list"),
    "data-without-sha256": (lambda out: _set_state(out, data={"source": "x"}), "'data' is dict"),
    "distillation-a-string": (lambda out: _set_state(out, distillation="teachers"), "'distillation' is str"),
    "distillation-teachers-not-list": (lambda out: _set_state(out, distillation={
        "teachers": "a.keras", "teacher_weight": 0.5, "train_accuracy_together": 0.1}), "'distillation' is dict"),
    "epoch-negative": (lambda out: _set_state(out, epoch=-5), "'epoch' is int -5, not a whole number from 1"),
    "epoch-zero": (lambda out: _set_state(out, epoch=0), "'epoch' is int 0"),
    "epoch-10**12": (lambda out: _set_state(out, epoch=10**12), "'epoch' is int 1000000000000"),
    "epoch-a-float": (lambda out: _set_state(out, epoch=1.5), "'epoch' is float 1.5"),
    "epoch-true": (lambda out: _set_state(out, epoch=True), "'epoch' is bool True"),
    "best_epoch-after-epoch": (lambda out: _set_state(out, best_epoch=9), "'best_epoch' is 9, not between 1 and"),
    "best_val_loss-nan": (lambda out: (out / "checkpoints" / "state.json").write_text(
        (out / "checkpoints" / "state.json").read_text().replace('"best_val_loss": 1.9', '"best_val_loss": NaN')),
        "'best_val_loss' is float nan"),
    "model-a-number": (lambda out: _set_state(out, model=3), "'model' is int 3"),
    "environment-a-string": (lambda out: _set_state(out, environment="gpu"), "'environment' is str"),
    "initialisation-chain-broken": (lambda out: _set_state(out, initialisation={"initialisation": "x"}),
                                    "'initialisation' is dict"),
    "dir-named-like-a-checkpoint": (lambda out: (out / "checkpoints" / "epoch-007.keras").mkdir(),
                                    "epoch-007.keras is not a regular file but has the name of a checkpoint"),
    "fifo-named-like-an-average": (lambda out: os.mkfifo(out / "checkpoints" / "average-003.npz"),
                                   "average-003.npz is not a regular file"),
}


@pytest.mark.parametrize("case", list(STATE_CASES), ids=list(STATE_CASES))
def test_a_tampered_state_is_refused_before_anything_runs(case, run_and_victims):
    out, victims, data = run_and_victims
    tamper, message = STATE_CASES[case]
    tamper(out)
    before, inside = snapshot(victims), snapshot(out)
    line = assert_refused(["train", "dnn", "--data", data, "--out", out, "--resume"], message)
    assert len(line) < 400, line
    assert snapshot(victims) == before, "a file outside --out was changed or deleted"
    inside.pop("checkpoints/.lock", None)
    after = snapshot(out)
    after.pop("checkpoints/.lock", None)
    assert after == inside, "the run was changed before it was refused"


def test_stale_temporary_folders_are_left_and_the_run_resumes_past_them(run_and_victims):
    """A folder under a temporary name is no file of ours: clean() neither deletes it nor stumbles on it."""
    from xai_fer.training.checkpoints import CheckpointStore

    out, _, _ = run_and_victims
    for name in (".epoch-002.keras.tmp-abc", ".state.json.tmp-1"):
        (out / "checkpoints" / name).mkdir()
        (out / "checkpoints" / name / "inside.txt").write_text("kept")
    os.mkfifo(out / "checkpoints" / ".best-003.keras.tmp-x")
    (out / "checkpoints" / "epoch-004.keras").symlink_to(out / "checkpoints" / "epoch-004.keras")  # a loop
    assert CheckpointStore(out).clean() == ["epoch-004.keras"]  # the link goes, nothing it points at
    assert (out / "checkpoints" / ".epoch-002.keras.tmp-abc" / "inside.txt").read_text() == "kept"


# ---------------------------------------------------------------------------------------------------------------
# HDF5 soft-link loops: one line naming the file and the link, in data and in models
# ---------------------------------------------------------------------------------------------------------------

def _h5_with_links(path, links: dict, images: bool = False):
    with h5py.File(path, "w") as handle:
        if images:
            handle["images"] = sample_images(7)
        for name, target in links.items():
            if "/" in name.strip("/"):
                handle.require_group(name.rsplit("/", 1)[0])
            handle[name] = h5py.SoftLink(target)
    return path


DATA_LOOPS = {
    "two-links": ({"images": "/a", "a": "/images"}, False, "loops.h5: 'images' is a link to '/a', which loops"),
    "self": ({"images": "/images"}, False, "loops.h5: 'images' is a link to '/images', which loops"),
    "three-links": ({"images": "/b", "b": "/c", "c": "/images"}, False, "which loops or cannot be followed"),
    "labels-through-a-group": ({"labels": "/g/l", "g/l": "/labels"}, True, "is a link to '/"),
}


@pytest.mark.parametrize("case", list(DATA_LOOPS), ids=list(DATA_LOOPS))
def test_hdf5_data_with_a_link_loop_is_named(case, good, tmp_path):
    links, images, message = DATA_LOOPS[case]
    data = _h5_with_links(tmp_path / "loops.h5", links, images)
    line = assert_refused(["evaluate", good / "model.keras", "--data", data], message)
    assert "which loops" in line


MODEL_LOOPS = {
    "root-x-y": {"x": "/y", "y": "/x"},
    "in-model-weights": {"model_weights/loop": "/model_weights/loop"},
    "three-links": {"p": "/q", "q": "/r", "r": "/p"},
}


@pytest.mark.parametrize("case", list(MODEL_LOOPS), ids=list(MODEL_LOOPS))
def test_an_hdf5_model_with_a_link_loop_is_named(case, good, tmp_path):
    model = tmp_path / "model.h5"
    shutil.copy(good / "model.h5", model)
    with h5py.File(model, "a") as handle:
        for name, target in MODEL_LOOPS[case].items():
            handle[name] = h5py.SoftLink(target)
    assert_refused(["info", model], "model.h5: '")
    assert_refused(["info", model], "which loops or cannot be followed")


# ---------------------------------------------------------------------------------------------------------------
# Recursive globs: linked folders are not walked, the walk is bounded
# ---------------------------------------------------------------------------------------------------------------

def _photo_tree(root):
    (root / "a" / "b").mkdir(parents=True)
    for name in ("a/b/x.png", "y.png"):
        (root / name).write_bytes(b"not read here")
    (root / "a" / "loop").symlink_to("..")  # back to the root: glob.glob would walk a/loop/a/loop/... for ever
    (root / "a" / "b" / "self").symlink_to(".")
    (root / "a" / "linked.png").symlink_to(root / "y.png")  # a linked FILE still counts
    return root


@pytest.mark.parametrize("pattern, expected", [
    ("**/*.png", ["a/b/x.png", "a/linked.png", "y.png"]),
    ("a/**/*.png", ["a/b/x.png", "a/linked.png"]),
    ("**/x.png", ["a/b/x.png"]),
    ("*/*/*.png", ["a/b/x.png", "a/loop/y.png"]),  # no ** walk: a named level may go through a link, finitely
])
def test_a_recursive_glob_does_not_follow_linked_folders(pattern, expected, tmp_path):
    from xai_fer.data.globbing import glob_files

    root = _photo_tree(tmp_path / "photos")
    assert [str(p.relative_to(root)) for p in glob_files(str(root / pattern))] == expected


def test_a_recursive_glob_over_proc_ends(good):
    """/proc links every process to / and to its working folder: the walk must end (here: no PNG there)."""
    import time

    start = time.monotonic()
    assert_refused(["evaluate", good / "model.keras", "--data", "/proc/**/*.png"], "/proc/**/*.png")
    assert time.monotonic() - start < 60


@pytest.mark.parametrize("pattern", ["**/*.png", "**/*", "*/**/*.jpg"])
def test_a_glob_that_looks_through_too_many_entries_is_refused(pattern, good, tmp_path, monkeypatch):
    from xai_fer.data import globbing

    root = _photo_tree(tmp_path / "photos")
    for index in range(30):
        (root / "a" / f"extra-{index}.txt").write_text("")
    monkeypatch.setattr(globbing, "MAX_ENTRIES", 20)
    assert_refused(["evaluate", good / "model.keras", "--data", str(root / pattern)],
                   "looks through more than 20 folder entries")


# ---------------------------------------------------------------------------------------------------------------
# activation-max.image_file: the checked image open (special files, the pixel limit, damaged files)
# ---------------------------------------------------------------------------------------------------------------

def _image_file(tmp, kind):
    path = tmp / "seed.png"
    small = _png(sample_images(1)[0])
    if kind == "png-claims-40000x25000":
        path.write_bytes(_declare_png_size(small, 40000, 25000))
    elif kind == "png-claims-12000x12000":
        path.write_bytes(_declare_png_size(small, 12000, 12000))
    elif kind == "jpeg-claims-60000x60000":
        path = tmp / "seed.jpg"
        path.write_bytes(_declare_jpeg_size(_jpeg(sample_images(1)[0]), 60000, 60000))
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "folder":
        path.mkdir()
    elif kind == "truncated":
        path.write_bytes(small[:60])
    return path


IMAGE_FILE_CASES = {
    # id: (file, environment, message)
    "png-claims-40000x25000": (lambda tmp: _image_file(tmp, "png-claims-40000x25000"), {},
                               "(40000x25000) is 1 gigapixels, over xai-fer's limit per image"),
    "png-claims-12000x12000": (lambda tmp: _image_file(tmp, "png-claims-12000x12000"), {},
                               "(12000x12000) is 144 megapixels"),
    "jpeg-claims-60000x60000": (lambda tmp: _image_file(tmp, "jpeg-claims-60000x60000"), {},
                                "(60000x60000) is 3.6 gigapixels"),
    "a-48x48-png-over-a-lowered-limit": (lambda tmp: _image_file(tmp, "plain"), {"XAI_FER_MAX_IMAGE_PIXELS": "1000"},
                                         "(48x48) is 2,304 pixels, over xai-fer's limit per image of 1,000 pixels"),
    "dev-zero": (lambda tmp: "/dev/zero", {}, "image_file '/dev/zero' is a character device"),
    "fifo": (lambda tmp: _image_file(tmp, "fifo"), {}, "seed.png' is a FIFO (named pipe)"),
    "folder": (lambda tmp: _image_file(tmp, "folder"), {}, "seed.png' is a folder"),
    "truncated": (lambda tmp: _image_file(tmp, "truncated"), {}, "seed.png: not a readable image"),
    "missing": (lambda tmp: tmp / "gone.png", {}, "gone.png' does not exist"),
}


@pytest.mark.parametrize("case", list(IMAGE_FILE_CASES), ids=list(IMAGE_FILE_CASES))
def test_activation_max_image_file_goes_through_the_checked_open(case, tmp_path, monkeypatch):
    from xai_fer_plugins.activation_max import read_image_file

    from xai_fer.errors import UserError

    build, environment, message = IMAGE_FILE_CASES[case]
    path = build(tmp_path)
    if case == "a-48x48-png-over-a-lowered-limit":
        path.write_bytes(_png(sample_images(1)[0]))
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(UserError) as caught:
        read_image_file(str(path), (48, 48, 1))
    line = caught.value.one_line()
    assert message in line and "bug in xai-fer" not in line and "\n" not in line, line


def test_activation_max_image_file_still_reads_a_good_image(tmp_path):
    from xai_fer_plugins.activation_max import read_image_file

    path = tmp_path / "seed.png"
    path.write_bytes(_png(sample_images(1)[0]))
    assert read_image_file(str(path), (24, 24, 3)).shape == (24, 24, 3)


# ---------------------------------------------------------------------------------------------------------------
# Out of memory from a model option: ceilings, a parameter count, and OOM while building said as the options'
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("model, option, message", [
    ("dnn", "hidden_units=1000000000", "hidden_units allows at most 32 layers of at most 16,384 units"),
    ("dnn", "hidden_units=64,20000", "hidden_units allows at most"),
    ("dnn", "hidden_units=" + ",".join(["8"] * 40), "hidden_units allows at most 32 layers"),
    ("cnn", "filters=32,64,1000000", "filters allows at most 8 blocks of at most 4,096 filters"),
    ("cnn", "filters=" + ",".join(["4"] * 9), "filters allows at most 8 blocks"),
    ("cnn", "dense_units=10000000000", "dense_units allows at most"),
])
def test_architecture_options_have_ceilings(model, option, message, tmp_path):
    data = hostile._tiny_training_h5(tmp_path / "tiny.h5")
    assert_refused(["train", model, "--data", data, "--out", tmp_path / "run", "--epochs", "1", "--option", option],
                   message)
    assert not (tmp_path / "run").exists()


def _out_of_memory_errors():
    import tensorflow as tf

    class XlaRuntimeError(RuntimeError):  # what JAX raises, by name and text
        pass

    return {"memory-error": MemoryError(),
            "tensorflow": tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor with shape"),
            "jax": XlaRuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 8.00TiB")}


@pytest.mark.parametrize("kind", ["memory-error", "tensorflow", "jax"])
def test_out_of_memory_while_building_is_the_options_asking_too_much(kind, tmp_path, monkeypatch):
    from xai_fer_plugins.dnn import Dnn

    error = _out_of_memory_errors()[kind]

    def build(self, *args):
        raise error

    monkeypatch.setattr(Dnn, "build", build)
    data = hostile._tiny_training_h5(tmp_path / "tiny.h5")
    line = assert_refused(["train", "dnn", "--data", data, "--out", tmp_path / "run", "--epochs", "1",
                           "--option", "hidden_units=16000,16000"],
                          "model 'dnn' with hidden_units=(16000, 16000) needs more memory than this machine has")
    assert "bug" not in line


def test_a_network_over_the_parameter_ceiling_is_refused(tmp_path, monkeypatch):
    from xai_fer.training import building

    monkeypatch.setattr(building, "MAX_PARAMETERS", 10_000)
    data = hostile._tiny_training_h5(tmp_path / "tiny.h5")
    assert_refused(["train", "dnn", "--data", data, "--out", tmp_path / "run", "--epochs", "1"],
                   "model 'dnn' with its default options has")


def test_a_bug_in_a_build_is_still_the_plugins(tmp_path, monkeypatch):
    from xai_fer_plugins.dnn import Dnn

    def build(self, *args):
        raise KeyError("wrong")

    monkeypatch.setattr(Dnn, "build", build)
    data = hostile._tiny_training_h5(tmp_path / "tiny.h5")
    result = CliRunner().invoke(app, ["train", "dnn", "--data", str(data), "--out", str(tmp_path / "run"),
                                      "--epochs", "1"])
    assert result.exit_code != 0 and "failed in build: KeyError" in result.output, result.output


# ---------------------------------------------------------------------------------------------------------------
# Long class names: every figure stays bounded, no library warning, the JSON keeps the full names
# ---------------------------------------------------------------------------------------------------------------

def _long_names(kind: str) -> list[str]:
    import numpy as np

    if kind == "300-ascii":
        return [f"{i}" + "x" * 300 for i in range(7)]
    if kind == "1500-with-spaces":
        return [f"{i} " + "happy face " * 136 for i in range(7)]
    if kind == "5000-ascii":
        return [f"{i}" + "W" * 5000 for i in range(7)]
    if kind == "3000-wide-characters":
        return [f"{i}" + "\u8868" * 3000 for i in range(7)]
    rng = np.random.default_rng(0)  # 2,000 characters with line breaks and mathtext in them
    return [f"{i}$" + "".join(rng.choice(list("ab\n$^_{} "), 2000)) for i in range(7)]


@pytest.mark.parametrize("kind", ["300-ascii", "1500-with-spaces", "5000-ascii", "3000-wide-characters",
                                  "2000-lines-and-mathtext"])
def test_long_class_names_give_bounded_figures_and_no_warnings(kind, good, tmp_path):
    import warnings

    import numpy as np
    from fixtures import write_npz
    from PIL import Image

    names = _long_names(kind)
    data = write_npz(tmp_path / "long.npz", sample_images(14), np.arange(14) % 7, class_names=names)
    out = tmp_path / "report"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = CliRunner().invoke(app, [str(a) for a in [
            "explain", good / "model.keras", "--data", data, "--out", out, "-e", "confusion", "-e", "saliency",
            "-o", "saliency.per_class=1", "--preprocess", "unit"]])
    assert result.exit_code == 0, result.output
    assert "Warning" not in result.output and "warn" not in result.output.lower(), result.output
    shown = [str(w.message) for w in caught if "matplotlib" in (w.filename or "") or "layout" in str(w.message)]
    assert not shown, shown
    for figure in out.rglob("*.png"):
        with Image.open(figure) as image:
            width, height = image.size
        assert max(width, height) < 5000 and width * height < 12_000_000, (figure.name, image.size)
    summary = json.loads((out / "confusion" / "summary.json").read_text())
    assert summary["class_names"] == names  # the full names stay in the JSON


@pytest.mark.parametrize("names, message", [
    (["x" * 60_000] * 7, "class name 'xxxxxxxx"),
    (["\u8868" * 9_000, "\u8868" * 9_000, *"abcde"], "is given twice"),
])
def test_names_quoted_in_an_error_line_are_shortened(names, message, good, tmp_path):
    import numpy as np
    from fixtures import write_npz

    data = write_npz(tmp_path / "names.npz", sample_images(7), np.arange(7), class_names=names)
    line = assert_refused(["evaluate", good / "model.keras", "--data", data, "--preprocess", "unit"], message)
    assert len(line) < 400 and "\u2026" in line, len(line)


def test_an_npz_of_many_arrays_lists_a_few_in_its_error_line(good, tmp_path):
    import numpy as np

    np.savez(tmp_path / "many.npz", **{f"array_{i}_" + "k" * 200: np.zeros(1) for i in range(50)})
    line = assert_refused(["evaluate", good / "model.keras", "--data", tmp_path / "many.npz"], "no 'images' array")
    assert "and 40 more" in line and len(line) < 1000, line


# ---------------------------------------------------------------------------------------------------------------
# Two explain runs into one report: the second stops in one line
# ---------------------------------------------------------------------------------------------------------------

_HOLD_LOCK = """
import fcntl, os, sys, time
handle = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
fcntl.flock(handle, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("extra", [[], ["-e", "saliency", "-o", "saliency.per_class=1"]])
def test_a_second_overwrite_into_a_report_being_written_is_refused(extra, good, tmp_path):
    """Another explain holds the report it will replace: this one stops before any work, the report unchanged."""
    import subprocess
    import sys

    args = ["explain", good / "model.keras", "--data", good / "data.h5", "--out", tmp_path / "report",
            "-e", "confusion", "--preprocess", "unit", *extra]
    assert CliRunner().invoke(app, [str(a) for a in args]).exit_code == 0
    before = snapshot(tmp_path / "report")
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(tmp_path / "report")], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert_refused([*args, "--overwrite"], "report is being written by another explain run")
    finally:
        holder.kill()
        holder.communicate()
    assert snapshot(tmp_path / "report") == before
    assert CliRunner().invoke(app, [str(a) for a in [*args, "--overwrite"]]).exit_code == 0  # free again


def test_an_overwrite_into_a_new_folder_does_not_replace_a_report_written_meanwhile(good, tmp_path, monkeypatch):
    """With nothing to replace when it started, a run that finds a report there at the end (written by a run
    that started alongside) stops in one line instead of replacing it."""
    from xai_fer.explain import output

    out = tmp_path / "report"
    real = output._write_report

    def other_run_first(target, *rest):
        target.mkdir()
        (target / "manifest.json").write_text('{"files": ["manifest.json"]}')
        return real(target, *rest)

    monkeypatch.setattr(output, "_write_report", other_run_first)
    assert_refused(["explain", good / "model.keras", "--data", good / "data.h5", "--out", out, "-e", "confusion",
                    "--preprocess", "unit", "--overwrite"], "was written by another run while this one worked")
    assert (out / "manifest.json").read_text() == '{"files": ["manifest.json"]}'


# ---------------------------------------------------------------------------------------------------------------
# A model whose architecture has the wrong structure: said as such, not as a missing plugin
# ---------------------------------------------------------------------------------------------------------------

def _keras_with_config(good, path, config: str):
    import zipfile

    with zipfile.ZipFile(good / "model.keras") as source, zipfile.ZipFile(path, "w") as target:
        for info in source.infolist():
            target.writestr(info, config if info.filename == "config.json" else source.read(info))
    return path


@pytest.mark.parametrize("name, config", [
    ("sequential-layers-a-number.keras", '{"class_name": "Sequential", "config": {"layers": 7}}'),
    ("dense-config-a-string.keras", '{"class_name": "Dense", "config": "units"}'),
    ("functional-config-a-list.keras", '{"class_name": "Functional", "config": [1, 2]}'),
])
def test_a_keras_architecture_of_the_wrong_structure_is_named(name, config, good, tmp_path):
    line = assert_refused(["info", _keras_with_config(good, tmp_path / name, config)],
                          "its architecture (the model's config) could not be read")
    assert "not registered" not in line


@pytest.mark.parametrize("model_config", ['{"class_name": "Sequential", "config": 5}', "{not json",
                                          '{"class_name": "Sequential"}'])
def test_an_h5_architecture_of_the_wrong_structure_is_named(model_config, good, tmp_path):
    shutil.copy(good / "model.h5", tmp_path / "model.h5")
    with h5py.File(tmp_path / "model.h5", "a") as handle:
        handle.attrs["model_config"] = model_config
    assert_refused(["info", tmp_path / "model.h5"], "its architecture (the model's config) could not be read")


@pytest.mark.parametrize("layer", ["c" * 3000, "conv $x^2$ " * 200])
def test_a_long_layer_name_gives_a_bounded_activation_max_figure(layer, tmp_path):
    import keras
    from PIL import Image

    keras.utils.set_random_seed(3)
    inputs = keras.Input((48, 48, 1))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(2, 3, activation="relu", name=layer)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    keras.Model(inputs, keras.layers.Dense(7, activation="softmax")(x)).save(tmp_path / "long.keras")
    data = tmp_path / "data.h5"
    with h5py.File(data, "w") as handle:
        handle["images"] = sample_images(7)
        handle["labels"] = list(range(7))
    out = tmp_path / "report"
    result = CliRunner().invoke(app, [str(a) for a in [
        "explain", tmp_path / "long.keras", "--data", data, "--out", out, "-e", "activation-max",
        "-o", "activation-max.steps=2", "-o", "activation-max.first=2", "--preprocess", "unit"]])
    assert result.exit_code == 0, result.output
    figures = list((out / "activation-max").glob("*.png"))
    assert figures
    for figure in figures:
        with Image.open(figure) as image:
            assert max(image.size) < 3000, (figure.name, image.size)
