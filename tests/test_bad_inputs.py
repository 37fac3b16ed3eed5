"""Bad inputs: every way of handing xai-fer something it cannot use ends in ONE line that says what is wrong and
what to do, exit code 2, no traceback and no partial output. Each case runs through ``xai-fer explain`` (in
process, with ``CliRunner``) and, mirrored, through the Python API (``xai_fer.run_explain``), which must raise
``xai_fer.UserError`` with the same one-line text.

An unwritable ``--out``: the tests run as root, for whom ``chmod`` does not stop writes, so the case puts ``--out``
under a regular FILE (``blocker.txt/run``), which no user, root included, can create a directory in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest
import tiny_models
from fixtures import pixel_field, sample_images, write_fer_csv, write_image_folder, write_npz
from PIL import Image
from typer.testing import CliRunner

import xai_fer
from xai_fer.cli import app

LABELS = np.arange(7)  # one image per FER2013 class


def _fer_csv_lines(images) -> list[str]:
    return ["emotion,pixels,Usage"] + [f"{label},{pixel_field(image)},PrivateTest"
                                       for label, image in zip(LABELS, images, strict=True)]


def _write_lines(path: Path, lines: list[str], row: int, edit) -> None:
    """``lines`` with the pixels of ``lines[row]`` replaced by ``edit(list of pixel strings)``."""
    label, pixels, usage = lines[row].split(",")
    changed = list(lines)
    changed[row] = f"{label},{' '.join(edit(pixels.split()))},{usage}"
    path.write_text("\n".join(changed) + "\n")


def _image_classifier(x):
    x = keras.layers.Conv2D(2, 3, activation="relu", name="conv")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.layers.Dense(7, activation="softmax", name="out")(x)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    """Every bad (and the few good) inputs, written once: models first, then data sources."""
    root = tmp_path_factory.mktemp("bad_inputs")
    images = sample_images(len(LABELS))

    # --- models ---
    good = tiny_models.sequential_fused_softmax()  # 48x48x1; conv_a (4 filters), conv_b (6), Dense "out"
    good.save(root / "model.keras")
    good.save(root / "model.h5")
    (root / "folder_model").mkdir()
    (root / "notes.h5").write_text("this is not a model\n")
    for suffix in (".keras", ".h5"):
        whole = (root / f"model{suffix}").read_bytes()
        (root / f"truncated{suffix}").write_bytes(whole[: len(whole) // 2])
    good.save_weights(root / "w.weights.h5")
    (root / "weights.h5").write_bytes((root / "w.weights.h5").read_bytes())  # weights under a model's name
    (root / "saved_model").mkdir()
    (root / "saved_model" / "saved_model.pb").write_bytes(b"\x08\x01")
    (root / "saved_model" / "variables").mkdir()
    vector = keras.Input((10,))
    keras.Model(vector, keras.layers.Dense(7, activation="softmax")(vector)).save(root / "vector.keras")
    a, b = keras.Input((48, 48, 1)), keras.Input((48, 48, 1))
    keras.Model([a, b], _image_classifier(keras.layers.Add()([a, b]))).save(root / "two_inputs.keras")
    x = keras.Input((48, 48, 1))
    flat = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(2, 3, name="conv")(x))
    keras.Model(x, [keras.layers.Dense(7, activation="softmax")(flat), keras.layers.Dense(1)(flat)]).save(
        root / "two_outputs.keras")
    x = keras.Input((48, 48, 1))
    scaled = keras.layers.Lambda(lambda t: t / 255.0, name="scale")(x)  # code in the file: safe mode refuses it
    keras.Model(x, _image_classifier(scaled)).save(root / "lambda.keras")
    x = keras.Input((48, 48, 1))
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(2, 3, name="conv")(x))
    keras.Model(x, keras.layers.Dense(3, activation="softmax")(pooled)).save(root / "three_classes.keras")

    # --- data ---
    with h5py.File(root / "data.h5", "w") as handle:
        handle["images"] = images
        handle["labels"] = LABELS.astype(np.uint8)
    with h5py.File(root / "one_hot.h5", "w") as handle:
        handle["images"] = images
        handle["labels"] = np.eye(7, dtype=np.uint8)[LABELS]
    with h5py.File(root / "usage_codes.h5", "w") as handle:
        handle["images"] = images
        handle["labels"] = LABELS.astype(np.uint8)
        handle["usage"] = np.array([0, 1, 2, 9, 0, 1, 2], dtype=np.uint8)
    with h5py.File(root / "no_images.h5", "w") as handle:
        handle["pixels"] = images
        handle["labels"] = LABELS.astype(np.uint8)
    lines = _fer_csv_lines(images)
    (root / "missing_column.csv").write_text("\n".join(["emotion,pixel,Usage", *lines[1:]]) + "\n")
    _write_lines(root / "pixel_count.csv", lines, 3, lambda pixels: pixels[:-1])  # line 4: one pixel short
    _write_lines(root / "non_numeric.csv", lines, 2, lambda pixels: pixels[:4] + ["12a"] + pixels[5:])
    write_fer_csv(root / "label_range.csv", images, [0, 1, 2, 9, 4, 5, 6], ["PrivateTest"] * 7)
    (root / "empty.csv").write_bytes(b"")
    (root / "utf16.csv").write_text("\n".join(lines) + "\n", encoding="utf-16")  # Excel's "Unicode text"
    latin1 = list(lines)
    latin1[2] = latin1[2].replace("PrivateTest", "PrivéTest")
    (root / "latin1.csv").write_bytes(("\n".join(latin1) + "\n").encode("latin-1"))

    def folder(name: str):
        return write_image_folder(root / name, images, LABELS)

    (folder("folder_with_text") / "happy" / "notes.txt").write_text("not an image")
    typo = folder("folder_with_typo")
    (typo / "hapy").mkdir()
    Image.fromarray(images[0]).save(typo / "hapy" / "extra.png")
    flat = root / "folder_flat"
    flat.mkdir()
    for index, image in enumerate(images):
        Image.fromarray(image).save(flat / f"{index}.png")

    bad_floats = images.astype(np.float32)
    bad_floats[2, 10, 10] = np.nan
    bad_floats[5, 0, 0] = np.inf
    write_npz(root / "nan.npz", bad_floats, LABELS)
    (root / "blocker.txt").write_text("a file, so nothing can be created under it\n")
    return root


@dataclass
class Case:
    """One bad input. Paths are relative to the ``files`` fixture's folder; ``out`` to the test's tmp_path."""

    id: str
    message: str  # a distinctive substring of the one line
    model: str = "model.keras"
    data: str = "data.h5"
    explainers: tuple[str, ...] = ("confusion",)
    options: dict = field(default_factory=dict)
    out: str = "results/run"
    existing_out: bool = False  # --out already holds a previous result
    overwrite: bool = False
    split: str | None = None
    data_format: str | None = None
    seed: int = 0


AM = ("activation-max",)
CASES = [
    # models
    Case("missing-model", "runs [old]/nowhere.keras' does not exist: check the MODEL path",  # printed verbatim
         model="runs [old]/nowhere.keras"),
    Case("directory-as-model", "is a directory, not a model file: pass a .keras or .h5 file", model="folder_model"),
    Case("text-file-as-h5", "is not a Keras model", model="notes.h5"),
    Case("truncated-keras", "truncated .keras archive: copy or export the model again", model="truncated.keras"),
    Case("truncated-h5", "not a complete HDF5 file (truncated or corrupt)", model="truncated.h5"),
    Case("weights-only-h5", "holds only weights, not a model", model="weights.h5"),
    Case("savedmodel-directory", "TensorFlow SavedModel directory", model="saved_model"),
    Case("input-not-an-image", "the model takes 10 values per image, which 48x48x1 images (2304 values) do not fill",
         model="vector.keras"),
    Case("two-inputs", "has 2 inputs: xai-fer explains single-image models", model="two_inputs.keras"),
    Case("two-outputs", "has 2 outputs: save a model with one classification output", model="two_outputs.keras"),
    Case("lambda-in-safe-mode", "rerun with --unsafe only if you trust", model="lambda.keras"),
    # data
    Case("csv-missing-column", "no 'pixels' column (header: emotion,pixel,usage)", data="missing_column.csv"),
    Case("csv-pixel-count", "line 4: 2303 pixel values, expected 2304", data="pixel_count.csv"),
    Case("csv-non-numeric-pixel", "is '12a', not an integer", data="non_numeric.csv"),
    Case("csv-label-out-of-range", "line 5: emotion '9': not an integer in 0..6", data="label_range.csv"),
    Case("csv-empty-file", "empty.csv' is an empty file: pass a file with images", data="empty.csv"),
    Case("csv-utf16", "line 1 is not UTF-8 text (UTF-16, e.g. Excel's 'Unicode Text') (byte 0xff at column 1): "
         "save it as UTF-8", data="utf16.csv"),
    Case("csv-latin1-row", "line 3: not UTF-8 text (byte 0xe9", data="latin1.csv"),
    Case("folder-non-image-file", "notes.txt: not a .jpg, .jpeg or .png image", data="folder_with_text"),
    Case("folder-unknown-class", "class folder 'hapy' is not a FER2013 class (did you mean 'happy'?): rename it",
         data="folder_with_typo"),
    # A folder without class folders is unlabelled photos, and images of mixed sizes are resized (see
    # tests/test_photos_and_folders.py): what remains refused is asking for what needs labels.
    Case("photos-without-labels", "confusion needs labels", data="folder_flat"),
    Case("hdf5-without-images", "no 'images' dataset (found: labels, pixels)", data="no_images.h5"),
    Case("split-without-usage", "data.h5 has no Usage column to pick the PrivateTest split from: drop --split",
         split="PrivateTest"),
    Case("hdf5-one-hot-labels", "'labels' must hold 7 integers (one per image), got uint8 (7, 7)", data="one_hot.h5"),
    Case("hdf5-usage-code-9", "'usage' values outside 0..2", data="usage_codes.h5"),
    Case("format-fer-csv-on-a-folder", "the fer-csv format (chosen with --format) cannot read", data="folder_flat",
         data_format="fer-csv"),
    Case("format-image-folder-on-a-file", "the image-folder format (chosen with --format) cannot read",
         data_format="image-folder"),
    Case("nan-and-inf-pixels", "2 images hold NaN or infinite pixel values (first: row 2)", data="nan.npz"),
    # explainers and options
    Case("unknown-explainer", "unknown explainer 'saliancy': did you mean 'saliency'?", explainers=("saliancy",)),
    Case("unknown-option", "did you mean saliency.per_class?", explainers=("saliency",),
         options={"saliency": {"per_clas": "2"}}),
    Case("option-of-wrong-type", "option saliency.per_class: expected a whole number, got 'two'",
         explainers=("saliency",), options={"saliency": {"per_class": "two"}}),
    Case("unknown-layer", "'conv_c' is not a conv layer of model 'seq_fused': did you mean 'conv_b'? valid conv "
         "layers: conv_a, conv_b", explainers=AM, options={"activation-max": {"layer": "conv_c"}}),
    Case("filter-out-of-range", "filter 9 is out of range: layer 'conv_b' has 6 filters: use indices 0-5",
         explainers=AM, options={"activation-max": {"layer": "conv_b", "filters": "0,9"}}),
    Case("non-conv-layer", "layer 'out' is not a conv layer of model 'seq_fused': valid conv layers: conv_a, conv_b",
         explainers=AM, options={"activation-max": {"layer": "out"}}),
    Case("nan-option", "option activation-max.l2: expected a finite number, got 'nan'", explainers=AM,
         options={"activation-max": {"l2": "nan"}}),
    Case("saliency-label-beyond-the-model", "saliency: labels go up to 6 (Neutral) but the model has 3 classes (0..2)",
         model="three_classes.keras", explainers=("saliency",), options={"saliency": {"target": "true"}}),
    Case("saliency-per-class-label-beyond-the-model",
         "saliency: labels go up to 6 (Neutral) but the model has 3 classes",
         model="three_classes.keras", explainers=("saliency",)),
    Case("negative-seed", "--seed -1 is out of range", seed=-1),
    # output
    # Unwritable --out: under a regular file (see the module docstring: chmod does not stop root).
    Case("out-under-a-file", "blocker.txt is a file, not a directory: pick another --out", out="blocker.txt/run"),
    Case("existing-out", "already exists: pass --overwrite to replace it", out="run", existing_out=True),
    Case("overwrite-a-folder-that-is-not-a-report", "is not an xai-fer report", out="run", existing_out=True,
         overwrite=True),
]
IDS = [case.id for case in CASES]


def _snapshot(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): None if p.is_dir() else p.read_bytes() for p in sorted(root.rglob("*"))}


def _out(case: Case, files: Path, tmp_path: Path) -> Path:
    if case.out.startswith("blocker.txt"):
        return files / case.out
    out = tmp_path / case.out
    if case.existing_out:
        out.mkdir(parents=True)
        (out / "previous.txt").write_text("earlier results")
    return out


def _cli_args(case: Case, files: Path, out: Path, unsafe: bool = False) -> list[str]:
    args = ["explain", str(files / case.model), "--data", str(files / case.data), "--out", str(out)]
    for name in case.explainers:
        args += ["-e", name]
    for name, values in case.options.items():
        for key, value in values.items():
            args += ["-o", f"{name}.{key}={value}"]
    args += ["--split", case.split] if case.split else []
    args += ["--format", case.data_format] if case.data_format else []
    args += ["--seed", str(case.seed)] + (["--overwrite"] if case.overwrite else [])
    return args + (["--unsafe"] if unsafe else [])


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(case, files, tmp_path):
    out = _out(case, files, tmp_path)
    before, files_before = _snapshot(tmp_path), _snapshot(files)
    result = CliRunner().invoke(app, _cli_args(case, files, out))
    text = result.output
    lines = [line for line in text.splitlines() if line.strip()]
    assert result.exit_code == 2, text
    assert isinstance(result.exception, SystemExit) and "Traceback" not in text, text  # handled, not crashed
    assert len(lines) == 1, text
    assert lines[0].startswith("Error: ") and case.message in lines[0], text
    assert _snapshot(tmp_path) == before, "partial output left behind"
    assert _snapshot(files) == files_before, "partial output left behind"


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_bad_input_through_the_python_api(case, files, tmp_path):
    out = _out(case, files, tmp_path)
    before, files_before = _snapshot(tmp_path), _snapshot(files)
    with pytest.raises(xai_fer.UserError) as caught:
        xai_fer.run_explain(files / case.model, files / case.data, out, list(case.explainers), case.options,
                            split=case.split, data_format=case.data_format, seed=case.seed, overwrite=case.overwrite)
    line = caught.value.one_line()
    assert "\n" not in line and case.message in line
    assert _snapshot(tmp_path) == before and _snapshot(files) == files_before, "partial output left behind"


def test_lambda_model_runs_with_unsafe(files, tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(app, _cli_args(Case("lambda", "", model="lambda.keras"), files, out, unsafe=True))
    assert result.exit_code == 0, result.output
    assert (out / "confusion" / "summary.json").is_file()
    assert isinstance(xai_fer.load_model(files / "lambda.keras", unsafe=True), keras.Model)


@pytest.mark.parametrize("preprocess", ["unit", "standardize"])
def test_constant_images_give_finite_saliency_maps(files, tmp_path, preprocess):
    """Zero (or undefined) gradients are not an error: constant images get finite, all-zero-or-scaled maps."""
    constant = np.stack([np.full((48, 48), value, np.float32) for value in (0, 0, 127.5, 255, 255, 30, 200)])
    data = write_npz(tmp_path / "constant.npz", constant, LABELS)
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["explain", str(files / "model.keras"), "--data", str(data), "--out", str(out),
                                      "-e", "saliency", "-o", "saliency.per_class=1", "-o",
                                      "saliency.image_figures=false", "--preprocess", preprocess])
    assert result.exit_code == 0, result.output
    with np.load(out / "saliency" / "arrays.npz") as arrays:
        maps = arrays["maps"]
    assert maps.shape == (7, 48, 48) and np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1
    # The raw gradients themselves are finite too (standardize divides by a zero std on constant images).
    from xai_fer.explain.gradients import input_gradients

    context = xai_fer.build_context(xai_fer.load_model(files / "model.keras"), xai_fer.load_dataset(data),
                                    preprocess)
    grads = input_gradients(context.data_model(logits=True), context.images(), context.predictions)
    assert np.isfinite(grads).all()
