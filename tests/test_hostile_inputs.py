"""Hostile inputs (issue 21, the input side): files made to hurt, each answered by ONE line and exit code 2 (or a
working run), with nothing outside the test's folders touched. Several instances per class:

- a run folder is untrusted input: names in ``checkpoints/state.json`` that lead outside ``--out``;
- bombs: small files that declare gigabytes (zip members, ``.npy`` headers, HDF5 shapes, image dimensions);
- the user's files are not blamed on xai-fer: damaged images, forged headers, HDF5 groups and dangling links,
  out of memory;
- runaways: ``/dev/zero``, FIFOs, a sparse CSV, a CSV of one endless line (linear time);
- silent wrong results: HDF5 that reads other files, models whose outputs are NaN;
- promises of the docs: a Lambda's unregistered function, what ``--seed`` guarantees across ``--resume``.

Every hostile file is generated in tmp folders; a FIFO that nobody writes to would block a read for ever, so
each test runs under an alarm that turns a hang into a failure.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import struct
import threading
import time
import zipfile
import zlib
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest
import tiny_models
from fixtures import sample_images, write_fer_csv, write_image_folder, write_npz
from PIL import Image, PngImagePlugin
from typer.testing import CliRunner

from xai_fer.cli import app
from xai_fer.data import SPLITS

LABELS = np.arange(7)
HANG_SECONDS = 120


@pytest.fixture(autouse=True)
def no_hang():
    """A read that blocks (a FIFO without a writer) fails the test instead of stopping the suite."""

    def alarm(signum, frame):
        raise TimeoutError(f"hung for {HANG_SECONDS} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(HANG_SECONDS)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def assert_refused(args, message: str, env: dict | None = None) -> str:
    """Run ``xai-fer ARGS``; it must print exactly one line, ``Error: ...`` holding ``message``, exit with code 2
    and blame no one but the named file (no "bug in xai-fer", no traceback)."""
    result = CliRunner().invoke(app, [str(a) for a in args], env=env)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output + repr(result.exception)
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output, result.output
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert message in lines[0], lines[0]
    assert "bug in xai-fer" not in lines[0], lines[0]
    return lines[0]


def works(args, env: dict | None = None) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args], env=env)
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def snapshot(root: Path) -> dict:
    """Every entry under ``root``: links by target, files by content, folders by name."""
    found = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_symlink():
            found[key] = ("link", os.readlink(path))
        elif path.is_file():
            found[key] = path.read_bytes()
        else:
            found[key] = "dir" if path.is_dir() else "special"
    return found


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    """A good model (.keras and .h5) and good data, for cases where only one input is hostile."""
    root = tmp_path_factory.mktemp("good")
    model = tiny_models.sequential_fused_softmax()
    model.save(root / "model.keras")
    model.save(root / "model.h5")
    with h5py.File(root / "data.h5", "w") as handle:
        handle["images"] = sample_images(7)
        handle["labels"] = LABELS.astype(np.uint8)
    return root


def _npy_header(shape, descr: str = "|u1") -> bytes:
    """A version 1.0 .npy header declaring ``shape``: what np.save writes before the data."""
    text = repr({"descr": descr, "fortran_order": False, "shape": tuple(shape)}).encode()
    text += b" " * (63 - (10 + len(text)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text


def _png(image: np.ndarray, **params) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", **params)
    return buffer.getvalue()


def _declare_png_size(data: bytes, width: int, height: int) -> bytes:
    """The PNG ``data`` with its IHDR claiming ``width`` x ``height`` (checksum fixed): 140 bytes of header that
    promise gigabytes of pixels."""
    ihdr = bytearray(data[8:33])
    ihdr[8:16] = struct.pack(">II", width, height)
    ihdr[21:25] = struct.pack(">I", zlib.crc32(bytes(ihdr[4:21])))
    return data[:8] + bytes(ihdr) + data[33:]


def _declare_jpeg_size(data: bytes, width: int, height: int) -> bytes:
    start = data.index(b"\xff\xc0") + 5  # SOF0: marker, length (2), precision (1), then height and width
    return data[:start] + struct.pack(">HH", height, width) + data[start + 4:]


def _folder_with(root: Path, name: str, content: bytes | None, kind: str = "file") -> Path:
    """A valid image folder whose happy/00003.png is replaced by ``content`` (or a FIFO, or a dangling link)."""
    folder = write_image_folder(root / name, sample_images(7), LABELS)
    target = folder / "happy" / "00003.png"
    target.unlink()
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "dangling":
        target.symlink_to(root / "nowhere.png")
    else:
        target.write_bytes(content)
    return folder


# ---------------------------------------------------------------------------------------------------------------
# A run folder is untrusted input
# ---------------------------------------------------------------------------------------------------------------

def _tiny_training_h5(path: Path) -> Path:
    sizes = {"Training": 35, "PublicTest": 7, "PrivateTest": 7}
    usage = np.concatenate([np.full(n, SPLITS.index(split)) for split, n in sizes.items()]).astype(np.uint8)
    with h5py.File(path, "w") as handle:
        handle["images"] = sample_images(len(usage))
        handle["labels"] = (np.arange(len(usage)) % 7).astype(np.uint8)
        handle["usage"] = usage
    return path


@pytest.fixture
def run_and_victims(tmp_path, good):
    """An interrupted run (its state as ``save`` writes it, numbered checkpoints that are real models), and a
    folder of the user's own files beside it that a tampered state points at."""
    out, victims = tmp_path / "runs" / "r", tmp_path / "victims"
    checkpoints = out / "checkpoints"
    checkpoints.mkdir(parents=True)
    victims.mkdir()
    (victims / "thesis.tex").write_text("four years of work\n")
    shutil.copy(good / "model.keras", victims / "x.keras")
    shutil.copy(good / "model.keras", victims / "epoch-009.keras")  # a name clean() would delete in a run
    for name in ("epoch-001.keras", "best-001.keras"):
        shutil.copy(good / "model.keras", checkpoints / name)
    state = {"best_val_loss": 1.9, "best_epoch": 1, "epoch": 1, "checkpoint": "epoch-001.keras",
             "best": "best-001.keras", "history": {"loss": [2.0], "val_loss": [1.9]}, "config": {"epochs": 3},
             "model": "dnn", "model_options": {}}
    (checkpoints / "state.json").write_text(json.dumps(state))
    data = _tiny_training_h5(tmp_path / "tiny.h5")
    return out, victims, data


def _edit_state(out: Path, **changes):
    path = out / "checkpoints" / "state.json"
    state = json.loads(path.read_text())
    state.update(changes)
    path.write_text(json.dumps(state))


def _replace_with_link(path: Path, target: Path):
    if path.exists() or path.is_symlink():
        path.unlink() if not path.is_dir() or path.is_symlink() else shutil.rmtree(path)
    path.symlink_to(target)


RUN_CASES = {
    # id: (how the run is tampered with, train flag, message)
    "best-up-and-out": (lambda out, v: _edit_state(out, best="../../victims/thesis.tex"), "--finish",
                        "'best' names '../../victims/thesis.tex', not a file this run writes"),
    "best-up-and-out-on-resume": (lambda out, v: _edit_state(out, best="../../../victims/x.keras"), "--resume",
                                  "'best' names '../../../victims/x.keras'"),
    "checkpoint-up-and-out": (lambda out, v: _edit_state(out, checkpoint="../../x.keras"), "--resume",
                              "'checkpoint' names '../../x.keras', not a file this run writes"),
    "checkpoint-absolute": (lambda out, v: _edit_state(out, checkpoint=str(v / "x.keras")), "--resume",
                            "'checkpoint' names '/"),
    "average-up-and-out": (lambda out, v: _edit_state(out, average="../../victims/epoch-009.keras"), "--resume",
                           "'average' names '../../victims/epoch-009.keras'"),
    "best-not-a-name": (lambda out, v: _edit_state(out, best=5), "--finish", "'best' names 5"),
    "history-not-numbers": (lambda out, v: _edit_state(out, history={"loss": "rm -rf"}), "--resume",
                            "'history' is dict {'loss': 'rm -rf'}"),
    "epoch-not-a-number": (lambda out, v: _edit_state(out, epoch="1"), "--resume",
                           "'epoch' is str '1', not a whole number"),
    "state-not-an-object": (lambda out, v: (out / "checkpoints" / "state.json").write_text("[]"), "--resume",
                            "holds list, not a run's state"),
    "checkpoint-linked-out": (lambda out, v: _replace_with_link(out / "checkpoints" / "epoch-001.keras",
                                                                v / "x.keras"), "--resume",
                              "epoch-001.keras (the training checkpoint) is a link that leads outside the run"),
    "best-linked-out": (lambda out, v: _replace_with_link(out / "checkpoints" / "best-001.keras", v / "x.keras"),
                        "--finish", "best-001.keras (the best epoch's model) is a link that leads outside the run"),
    "state-linked-out": (lambda out, v: (shutil.move(out / "checkpoints" / "state.json", v / "state.json"),
                                         _replace_with_link(out / "checkpoints" / "state.json", v / "state.json")),
                         "--resume", "state.json (the run's state) is a link that leads outside the run"),
    "checkpoints-folder-linked-out": (lambda out, v: (shutil.copytree(out / "checkpoints", v / "ckpt"),
                                                      shutil.copy(v / "epoch-009.keras", v / "ckpt"),
                                                      _replace_with_link(out / "checkpoints", v / "ckpt")),
                                      "--resume", "is a link that leads outside the run folder"),
    "lock-linked-out": (lambda out, v: (out / "checkpoints" / ".lock").symlink_to(v / "created-by-the-lock"),
                        "--resume", ".lock (the run's lock) is a link that leads outside the run"),
    # Teachers are the user's models outside the run by design (recorded by absolute path): a tampered path is
    # loaded only as a MODEL argument would be, so /dev/zero is refused rather than hashed for ever.
    "teacher-is-dev-zero": (lambda out, v: _edit_state(out, config={"epochs": 3, "teachers": ["/dev/zero"]}),
                            "--resume", "teacher model '/dev/zero' is a character device"),
    "state-is-a-fifo": (lambda out, v: ((out / "checkpoints" / "state.json").unlink(),
                                        os.mkfifo(out / "checkpoints" / "state.json")), "--resume",
                        "state.json (the run's state) is not a regular file"),
}


@pytest.mark.parametrize("case", list(RUN_CASES), ids=list(RUN_CASES))
def test_a_tampered_run_folder_is_refused_and_nothing_outside_it_is_touched(case, run_and_victims):
    out, victims, data = run_and_victims
    tamper, flag, message = RUN_CASES[case]
    tamper(out, victims)
    before = snapshot(victims)
    assert_refused(["train", "dnn", "--data", data, "--out", out, flag], message)
    assert snapshot(victims) == before, "a file outside --out was changed or deleted"
    assert not (victims / "created-by-the-lock").exists()


def test_an_untampered_run_folder_passes_the_same_checks(run_and_victims):
    """The checks refuse tampering, not runs: the fixture's own state reads, and its files resolve inside."""
    from xai_fer.training.checkpoints import CheckpointStore

    out, _, _ = run_and_victims
    store = CheckpointStore(out)
    assert store.read_state()["checkpoint"] == "epoch-001.keras"
    assert store.best_path == out / "checkpoints" / "best-001.keras"
    assert store.clean() == []


# ---------------------------------------------------------------------------------------------------------------
# Bombs: declared sizes are checked before anything is read
# ---------------------------------------------------------------------------------------------------------------

def _rezip(source: Path, target: Path, replace: dict, compression=zipfile.ZIP_STORED):
    """A copy of the .keras ``source`` whose members named in ``replace`` are written by ``replace[name](member)``
    (a function given the open member), so a member of any size streams without being held in memory."""
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w", compression) as dst:
        for info in src.infolist():
            if info.filename in replace:
                with dst.open(info.filename, "w", force_zip64=True) as member:
                    replace[info.filename](member, src.read(info))
            else:
                dst.writestr(info.filename, src.read(info))
    return target


def _padded_json(megabytes: int):
    def write(member, original: bytes):  # valid JSON: whitespace before the closing brace
        member.write(original[:-1])
        for _ in range(megabytes):
            member.write(b" " * 2**20)
        member.write(original[-1:])
    return write


def _weights_with(good: Path, tmp: Path, name: str, change) -> Path:
    """A .keras whose model.weights.h5 was changed by ``change(h5py.File)``."""
    with zipfile.ZipFile(good / "model.keras") as archive:
        (tmp / "weights.h5").write_bytes(archive.read("model.weights.h5"))
    with h5py.File(tmp / "weights.h5", "a") as handle:
        change(handle)
    weights = (tmp / "weights.h5").read_bytes()
    return _rezip(good / "model.keras", tmp / name, {"model.weights.h5": lambda member, _: member.write(weights)})


def _h5_model_with(good: Path, tmp: Path, name: str, change) -> Path:
    shutil.copy(good / "model.h5", tmp / name)
    with h5py.File(tmp / name, "a") as handle:
        change(handle)
    return tmp / name


def _npz_weights_keras(good: Path, target: Path) -> Path:
    """A .keras archive that keeps its weights as .npz (Keras' other weights format), one header forged."""
    weights = io.BytesIO()
    with zipfile.ZipFile(weights, "w") as archive:
        archive.writestr("layers.npy", _npy_header((10**6, 10**6), "<f4") + bytes(256))
    with zipfile.ZipFile(good / "model.keras") as src, zipfile.ZipFile(target, "w") as dst:
        for name in ("metadata.json", "config.json"):
            dst.writestr(name, src.read(name))
        dst.writestr("model.weights.npz", weights.getvalue())
    return target


MODEL_BOMBS = {
    # id: (builder(good, tmp) -> model path, env, message)
    "keras-config-inflates-to-100-MiB": (
        lambda good, tmp: _rezip(good / "model.keras", tmp / "config.keras", {"config.json": _padded_json(100)},
                                 zipfile.ZIP_DEFLATED), None,
        "config.json unpacked is 100 MiB, over xai-fer's limit for a model's architecture of 64 MiB"),
    "keras-metadata-inflates": (
        lambda good, tmp: _rezip(good / "model.keras", tmp / "meta.keras", {"metadata.json": _padded_json(8)},
                                 zipfile.ZIP_DEFLATED), {"XAI_FER_MAX_CONFIG_BYTES": "4M"},
        "metadata.json unpacked is 8 MiB, over xai-fer's limit for a model's architecture of 4 MiB: if that is what "
        "you meant, raise the limit: XAI_FER_MAX_CONFIG_BYTES=9M"),
    "keras-weights-declare-37-GiB": (
        lambda good, tmp: _weights_with(good, tmp, "declared.keras", lambda h: h.create_dataset(
            "extra", shape=(10**6, 10**4), dtype="f4")), None,
        "model.weights.h5 (its datasets as declared) is 37.3 GiB, over xai-fer's model limit of 4 GiB"),
    "keras-over-a-lowered-model-limit": (
        lambda good, tmp: good / "model.keras", {"XAI_FER_MAX_MODEL_BYTES": "1K"},
        "unpacked is "),
    "keras-npz-weights-forged-header": (
        lambda good, tmp: _npz_weights_keras(good, tmp / "npzweights.keras"), None,
        "model.weights.npz: 'layers': its .npy header declares 1000000x1000000 float32 (3.64 TiB) but only"),
    "h5-model-declares-37-GiB": (
        lambda good, tmp: _h5_model_with(good, tmp, "declared.h5", lambda h: h.create_dataset(
            "model_weights/extra", shape=(10**6, 10**4), dtype="f4")), None,
        "declared.h5 (its datasets as declared) is 37.3 GiB, over xai-fer's model limit of 4 GiB"),
    "h5-model-config-attribute": (
        lambda good, tmp: _h5_model_with(good, tmp, "config.h5", lambda h: None), {"XAI_FER_MAX_CONFIG_BYTES": "100"},
        "attribute 'model_config' is "),
}


@pytest.mark.parametrize("case", list(MODEL_BOMBS), ids=list(MODEL_BOMBS))
def test_model_bombs_are_refused_before_keras_reads_them(case, good, tmp_path):
    build, env, message = MODEL_BOMBS[case]
    path = build(good, tmp_path)
    assert path.stat().st_size < 2**20  # each is a small file that declares far more
    assert_refused(["info", path], message, env=env)


def test_a_raised_limit_lets_the_same_file_through(good):
    assert_refused(["info", good / "model.keras"], "XAI_FER_MAX_MODEL_BYTES=", env={"XAI_FER_MAX_MODEL_BYTES": "1K"})
    assert "seq_fused" in works(["info", good / "model.keras", "--json"], env={"XAI_FER_MAX_MODEL_BYTES": "1G"})
    assert_refused(["info", good / "model.keras"], "XAI_FER_MAX_MODEL_BYTES='lots' is not a size",
                   env={"XAI_FER_MAX_MODEL_BYTES": "lots"})


def _npz_bomb(path: Path, megabytes: int) -> Path:
    """An .npz whose 'images' member is ``megabytes`` of zeros, deflated to a thousandth of that."""
    rows = megabytes * 2**20 // 2304
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("images.npy", "w", force_zip64=True) as member:
            member.write(_npy_header((rows, 48, 48)))
            for _ in range(rows * 2304 // 2**16):
                member.write(bytes(2**16))
            member.write(bytes(rows * 2304 % 2**16))
        archive.writestr("labels.npy", (_npy_header((rows,)) + bytes(rows)))
    return path


def _h5(path: Path, fill) -> Path:
    with h5py.File(path, "w") as handle:
        fill(handle)
    return path


def _folder_of_size(root: Path, name: str, size: int) -> Path:
    return write_image_folder(root / name, sample_images(7, size=size), LABELS)


DATA_BOMBS = {
    # id: (builder(tmp) -> data path, env, message)
    "npz-inflates-to-64-MiB": (lambda tmp: _npz_bomb(tmp / "bomb.npz", 64), {"XAI_FER_MAX_DATA_BYTES": "16M"},
                               "bomb.npz: 'images' unpacked is 64 MiB, over xai-fer's data limit of 16 MiB"),
    "npz-header-declares-2-GiB": (
        lambda tmp: _zip_of(tmp / "declares.npz", {"images.npy": _npy_header((10**6, 48, 48)) + bytes(2**21)}),
        None, "'images': its .npy header declares 1000000x48x48 uint8 (2.15 GiB) but only 2 MiB of data follow"),
    "npz-arrays-together-over-the-limit": (
        lambda tmp: write_npz(tmp / "together.npz", np.zeros((700, 48, 48), np.uint8), np.zeros(700, np.int64)),
        {"XAI_FER_MAX_DATA_BYTES": "1577K"}, "together.npz (its arrays as declared) is 1.54 MiB"),
    "h5-declares-2-GiB-unwritten": (
        lambda tmp: _h5(tmp / "declared.h5", lambda h: h.create_dataset("images", shape=(10**6, 48, 48), dtype="u1")),
        None, "declared.h5: 'images' (declared 1000000x48x48 uint8) is 2.15 GiB, over xai-fer's data limit of 1 GiB"),
    "h5-labels-declare-8-GiB": (
        lambda tmp: _h5(tmp / "labels.h5", lambda h: (h.create_dataset("images", data=sample_images(7)),
                                                      h.create_dataset("labels", shape=(2**30,), dtype="i8"))),
        None, "labels.h5: 'labels' (declared 1073741824 int64) is 8 GiB"),
    "png-declares-12000x12000": (
        lambda tmp: _folder_with(tmp, "big_png", _declare_png_size(_png(sample_images(1)[0]), 12000, 12000)), None,
        "happy/00003.png (12000x12000) is 144 megapixels, over xai-fer's limit per image of 50 megapixels: if that "
        "is what you meant, raise the limit: XAI_FER_MAX_IMAGE_PIXELS=144M"),
    "png-declares-a-billion-pixels": (
        lambda tmp: _folder_with(tmp, "huge_png", _declare_png_size(_png(sample_images(1)[0]), 40000, 25000)), None,
        "(40000x25000) is 1 gigapixels"),
    "jpeg-declares-60000x60000": (
        lambda tmp: _folder_with(tmp, "big_jpeg", _declare_jpeg_size(_jpeg(sample_images(1)[0]), 60000, 60000)),
        None, "(60000x60000) is 3.6 gigapixels"),
    "images-over-a-lowered-pixel-limit": (lambda tmp: _folder_of_size(tmp, "faces", 48),
                                          {"XAI_FER_MAX_IMAGE_PIXELS": "2K"},
                                          "(48x48) is 2,304 pixels, over xai-fer's limit per image of 2,000 pixels"),
    "folder-decodes-over-the-data-limit": (lambda tmp: _folder_of_size(tmp, "many", 64),
                                           {"XAI_FER_MAX_DATA_BYTES": "20K"},
                                           "once decoded at 64x64 is 28 KiB, over xai-fer's data limit of 20 KiB"),
    "csv-larger-than-the-limit": (
        lambda tmp: write_fer_csv(tmp / "big.csv", sample_images(7), LABELS), {"XAI_FER_MAX_DATA_BYTES": "10K"},
        "big.csv is "),
}


def _zip_of(path: Path, members: dict) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _jpeg(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.mark.parametrize("case", list(DATA_BOMBS), ids=list(DATA_BOMBS))
def test_data_bombs_are_refused_before_they_are_read(case, good, tmp_path):
    build, env, message = DATA_BOMBS[case]
    data = build(tmp_path)
    if DATA_BOMBS[case][1] is None:
        size = sum(p.stat().st_size for p in ([data] if data.is_file() else data.rglob("*")))
        assert size < 4 * 2**20  # small files, gigabytes declared
    line = assert_refused(["evaluate", good / "model.keras", "--data", data], message, env=env)
    assert ("XAI_FER_MAX_" in line) or ("damaged" in line)  # says which limit to raise, or that it is damaged


def test_a_forged_npy_header_is_refused_wherever_an_npy_is_read(good, tmp_path):
    """--labels .npy and a lone .npy given as --format npz: a header claiming 10^12 values."""
    forged = tmp_path / "labels.npy"
    forged.write_bytes(_npy_header((10**12,), "<i8") + bytes(64))
    unlabelled = write_npz(tmp_path / "unlabelled.npz", sample_images(7))
    assert_refused(["evaluate", good / "model.keras", "--data", unlabelled, "--labels", forged],
                   "its .npy header declares 1000000000000 int64 (7.28 TiB) but only 64 bytes of data follow")
    lone = tmp_path / "images.npz"
    lone.write_bytes(_npy_header((10**6, 10**6)) + bytes(100))
    assert_refused(["evaluate", good / "model.keras", "--data", lone, "--format", "npz"], "but only 100 bytes")
    damaged = _zip_of(tmp_path / "damaged.npz", {"images.npy": b"\x93NUMPY\x01\x00\x10\x00{'descr': 5}     \n"})
    assert_refused(["evaluate", good / "model.keras", "--data", damaged], "damaged.npz: 'images': damaged .npy header")
    negative = _zip_of(tmp_path / "negative.npz", {"images.npy": _npy_header((-7, 48, 48)) + bytes(64)})
    assert_refused(["evaluate", good / "model.keras", "--data", negative],
                   "negative.npz: 'images': damaged .npy header")


# ---------------------------------------------------------------------------------------------------------------
# The user's files are not blamed on xai-fer
# ---------------------------------------------------------------------------------------------------------------

def _png_text_bomb() -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("comment", "a" * (8 * 2**20), zip=True)  # 8 MB of text in a few kB: Pillow refuses it
    return _png(sample_images(1)[0], pnginfo=info)


def _flip_idat_byte(data: bytes) -> bytes:
    start = data.index(b"IDAT") + 8
    return data[:start] + bytes([data[start] ^ 0xFF]) + data[start + 1:]


DAMAGED = {
    # id: (builder(tmp) -> data path, message)
    "png-truncated": (lambda tmp: _folder_with(tmp, "t", _png(sample_images(1)[0])[:200]),
                      "happy/00003.png: not a readable image (OSError"),
    "png-damaged-pixel-data": (lambda tmp: _folder_with(tmp, "d", _flip_idat_byte(_png(sample_images(1)[0]))),
                               "happy/00003.png: not a readable image ("),
    "png-signature-then-garbage": (lambda tmp: _folder_with(tmp, "g", b"\x89PNG\r\n\x1a\n" + bytes(range(256))),
                                   "happy/00003.png: not a readable image (UnidentifiedImageError"),
    "png-text-chunk-bomb": (lambda tmp: _folder_with(tmp, "z", _png_text_bomb()),
                            "happy/00003.png: not a readable image (ValueError"),
    "jpeg-truncated": (lambda tmp: _folder_with(tmp, "j", _jpeg(sample_images(1)[0])[:300]),
                       "happy/00003.png: not a readable image ("),
    "image-is-a-dangling-link": (lambda tmp: _folder_with(tmp, "l", None, "dangling"),
                                 "happy/00003.png' is a link to "),
    "h5-labels-are-a-group": (lambda tmp: _images_and_group(tmp / "g.h5", "labels"),
                              "g.h5: 'labels' is a group, not an array of labels"),
    "h5-usage-is-a-group": (lambda tmp: _images_and_group(tmp / "u.h5", "usage"),
                            "u.h5: 'usage' is a group, not an array of split codes"),
    "h5-images-link-nowhere": (lambda tmp: _h5(tmp / "s.h5", lambda h: h.__setitem__("images",
                                                                                     h5py.SoftLink("/gone"))),
                               "s.h5: 'images' is a link to '/gone', which points nowhere"),
    "h5-images-never-written": (lambda tmp: _h5(tmp / "w.h5", lambda h: h.create_dataset("images", (7, 48, 48), "u1")),
                                "w.h5: 'images' declares 7x48x48 uint8 but no data was ever written to it"),
    "h5-truncated": (lambda tmp: _truncated(tmp), "truncated.h5: not a readable HDF5 file"),
    "data-is-a-dangling-link": (lambda tmp: _dangling(tmp / "data.h5"), "data.h5' is a link to "),
}


def _images_and_group(path: Path, group: str) -> Path:
    return _h5(path, lambda h: (h.create_dataset("images", data=sample_images(7)), h.create_group(group)))


def _truncated(tmp: Path) -> Path:
    path = _h5(tmp / "truncated.h5", lambda h: h.create_dataset("images", data=sample_images(7)))
    path.write_bytes(path.read_bytes()[:1000])
    return path


def _dangling(path: Path) -> Path:
    path.symlink_to(path.parent / "moved-away.h5")
    return path


@pytest.mark.parametrize("case", list(DAMAGED), ids=list(DAMAGED))
def test_damaged_files_are_named_as_the_users(case, good, tmp_path):
    build, message = DAMAGED[case]
    assert_refused(["evaluate", good / "model.keras", "--data", build(tmp_path)], message)


def test_a_dangling_link_as_model_is_named(tmp_path):
    assert_refused(["info", _dangling(tmp_path / "model.keras")], "model.keras' is a link to ")


def _raise_memory_error(*args, **kwargs):
    raise MemoryError


@pytest.mark.parametrize("where, source, message", [
    ("h5py.Dataset.__getitem__", "h5", "not enough memory to read 'images'"),
    ("numpy.lib.npyio.NpzFile.__getitem__", "npz", "not enough memory to read 'images'"),
    ("xai_fer_plugins.image_folder._eight_bit", "folder", "angry/00000.png: not enough memory to decode it"),
    ("xai_fer.data.csv_pixels.parse_pixels", "csv", "not enough memory to read"),
], ids=["h5", "npz", "image", "csv"])
def test_running_out_of_memory_while_reading_names_the_file(where, source, message, good, tmp_path, monkeypatch):
    data = {"h5": lambda: good / "data.h5", "npz": lambda: write_npz(tmp_path / "d.npz", sample_images(7), LABELS),
            "folder": lambda: write_image_folder(tmp_path / "f", sample_images(7), LABELS),
            "csv": lambda: write_fer_csv(tmp_path / "d.csv", sample_images(7), LABELS)}[source]()
    monkeypatch.setattr(where, _raise_memory_error)
    line = assert_refused(["evaluate", good / "model.keras", "--data", data], message)
    assert str(data) in line


# ---------------------------------------------------------------------------------------------------------------
# Runaways: inputs that never end, and linear time
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["evaluate", "{model}", "--data", "/dev/zero"], "data source '/dev/zero' is a character device"),
    (["evaluate", "{model}", "--data", "/dev/zero", "--format", "fer-csv"], "is a character device"),
    (["evaluate", "{model}", "--data", "{fifo}"], "is a FIFO (named pipe), not a regular file"),
    (["evaluate", "{model}", "--data", "{fifo}", "--format", "hdf5"], "is a FIFO (named pipe)"),
    (["evaluate", "{model}", "--data", "{fifo}", "--format", "fer-csv"], "XAI_FER_ALLOW_SPECIAL_FILES=1"),
    (["info", "/dev/zero"], "model '/dev/zero' is a character device, not a regular file"),
    (["info", "{fifo}"], "model '{fifo}' is a FIFO (named pipe)"),
    (["evaluate", "{fifo}", "--data", "{data}"], "is a FIFO (named pipe)"),
    (["evaluate", "{model}", "--data", "{npz}", "--labels", "{fifo}"], "--labels '{fifo}' is a FIFO"),
    (["evaluate", "{model}", "--data", "{fifo_folder}"], "happy/00003.png' is a FIFO (named pipe)"),
    (["train", "dnn", "--data", "{data}", "--out", "{out}", "--init-from", "{fifo}"], "is a FIFO"),
], ids=["data-dev-zero", "data-dev-zero-as-csv", "data-fifo", "data-fifo-as-h5", "data-fifo-as-csv", "model-dev-zero",
        "model-fifo", "model-fifo-evaluate", "labels-fifo", "image-fifo", "init-from-fifo"])
def test_special_files_are_refused_instead_of_hanging(args, message, good, tmp_path):
    fifo = tmp_path / "pipe.keras"
    os.mkfifo(fifo)
    names = {"model": good / "model.keras", "data": good / "data.h5", "fifo": fifo, "out": tmp_path / "run",
             "npz": write_npz(tmp_path / "u.npz", sample_images(7)),
             "fifo_folder": _folder_with(tmp_path, "folder", None, "fifo")}
    started = time.monotonic()
    assert_refused([a.format(**names) for a in args], message.format(**names))
    assert time.monotonic() - started < 60
    assert not (tmp_path / "run").exists()


def test_a_stream_is_read_when_the_user_allows_it(good, tmp_path):
    """XAI_FER_ALLOW_SPECIAL_FILES=1 and --format: a FIFO fed by another writer is read to its end (a working
    run), and the data limit still counts its bytes."""
    csv = write_fer_csv(tmp_path / "d.csv", sample_images(7), LABELS).read_bytes()
    fifo = tmp_path / "stream.csv"
    for env, expected in [({"XAI_FER_ALLOW_SPECIAL_FILES": "1"}, "accuracy"),
                          ({"XAI_FER_ALLOW_SPECIAL_FILES": "1", "XAI_FER_MAX_DATA_BYTES": "10K"}, "(read so far)")]:
        os.mkfifo(fifo)
        writer = threading.Thread(target=_feed, args=(fifo, csv), daemon=True)
        writer.start()
        args = ["evaluate", good / "model.keras", "--data", fifo, "--format", "fer-csv", "--preprocess", "unit"]
        if expected == "accuracy":
            assert expected in works(args, env=env)
        else:
            assert_refused(args, expected, env=env)
        writer.join(timeout=30)
        fifo.unlink()


def _feed(fifo: Path, data: bytes):
    try:
        with open(fifo, "wb") as handle:
            handle.write(data)
    except BrokenPipeError:  # the reader refused the stream half way
        pass


def test_a_sparse_csv_is_refused_by_its_size_at_once(good, tmp_path):
    sparse = tmp_path / "sparse.csv"
    with open(sparse, "wb") as handle:
        handle.write(b"emotion,pixels\n0,")
        handle.truncate(2 * 10**9)  # 2 GB of NUL bytes that take no disk
    started = time.monotonic()
    assert_refused(["evaluate", good / "model.keras", "--data", sparse, "--format", "fer-csv"],
                   "sparse.csv is 1.86 GiB, over xai-fer's data limit of 1 GiB")
    assert time.monotonic() - started < 30


def test_a_csv_line_without_end_is_refused_after_the_longest_row_an_image_can_take(good, tmp_path):
    sparse = tmp_path / "endless.csv"
    with open(sparse, "wb") as handle:
        handle.write(b"emotion,pixels\n0,")
        handle.truncate(20 * 2**20)  # a sparse line of NULs, under the data limit
    line = assert_refused(["evaluate", good / "model.keras", "--data", sparse, "--format", "fer-csv"],
                          "endless.csv, line 2: longer than 3.82 MiB without a line break",
                   env={"XAI_FER_MAX_IMAGE_PIXELS": "1M"})
    assert "XAI_FER_MAX_IMAGE_PIXELS" in line
    header = tmp_path / "header.csv"
    header.write_bytes(b"emotion" + b" " * (5 * 2**20))
    assert_refused(["evaluate", good / "model.keras", "--data", header, "--format", "fer-csv"],
                   "header.csv, line 1: longer", env={"XAI_FER_MAX_IMAGE_PIXELS": "1M"})


def test_one_huge_line_takes_linear_time(monkeypatch, tmp_path):
    """A line far longer than a block: gathering it block by block must not copy it again for every block. With
    64-byte blocks and a 4 MB line, the old way copied about 130 GB (minutes); linear takes well under a second
    or two."""
    from xai_fer.data import csv_pixels

    monkeypatch.setattr(csv_pixels, "BLOCK_BYTES", 64)
    side = 1024
    pixels = np.full((1, side, side), 7, np.uint8)
    path = write_fer_csv(tmp_path / "one.csv", pixels, [3])  # one line of 2 MiB
    started = time.monotonic()
    table = csv_pixels.read_pixel_csv(path, "pixels", ("emotion",))
    assert time.monotonic() - started < 20
    assert table.pixels.shape == (1, side, side) and table.pixels.max() == 7


def test_counting_a_row_of_millions_of_values_makes_no_python_object_per_value(tmp_path):
    """A line of 10^7 values that is no square image is refused from a count made in numpy, not from a list
    of ten million tokens."""
    path = tmp_path / "wide.csv"
    path.write_bytes(b"emotion,pixels\n0," + b"1 " * (10**7 - 1) + b"1\n")
    started = time.monotonic()
    from xai_fer.data import load_dataset
    from xai_fer.errors import UserError

    with pytest.raises(UserError, match="10000000 pixel values do not make a square image"):
        load_dataset(path)
    assert time.monotonic() - started < 20


# ---------------------------------------------------------------------------------------------------------------
# Silent wrong results: refused instead
# ---------------------------------------------------------------------------------------------------------------

def _other_file(tmp: Path) -> Path:
    return _h5(tmp / "other.h5", lambda h: h.create_dataset("images", data=sample_images(7)))


def _virtual(tmp: Path, keep_source: bool) -> Path:
    other = _other_file(tmp)

    def fill(handle):
        layout = h5py.VirtualLayout(shape=(7, 48, 48), dtype="u1")
        layout[:] = h5py.VirtualSource(str(other), "images", shape=(7, 48, 48))
        handle.create_virtual_dataset("images", layout, fillvalue=0)
        handle["labels"] = LABELS.astype(np.uint8)

    path = _h5(tmp / "virtual.h5", fill)
    if not keep_source:
        other.unlink()
    return path


def _external_link(tmp: Path, name: str) -> Path:
    def fill(handle):
        handle["images"] = sample_images(7)
        handle["labels"] = LABELS.astype(np.uint8)
        del handle[name]
        handle[name] = h5py.ExternalLink(str(_other_file(tmp)), "/images")

    return _h5(tmp / "linked.h5", fill)


def _external_storage(tmp: Path) -> Path:
    raw = tmp / "pixels.raw"
    raw.write_bytes(sample_images(7).tobytes())

    def fill(handle):
        handle.create_dataset("images", shape=(7, 48, 48), dtype="u1", external=[(str(raw), 0, 7 * 48 * 48)])
        handle["labels"] = LABELS.astype(np.uint8)

    return _h5(tmp / "external.h5", fill)


SILENT = {
    "h5-virtual-dataset-source-missing": (lambda tmp: _virtual(tmp, keep_source=False),
                                          "'images' is a virtual dataset reading"),
    "h5-virtual-dataset-source-present": (lambda tmp: _virtual(tmp, keep_source=True), "cannot be read safely"),
    "h5-images-external-link": (lambda tmp: _external_link(tmp, "images"),
                                "'images' is an external link to "),
    "h5-labels-external-link": (lambda tmp: _external_link(tmp, "labels"), "'labels' is an external link"),
    "h5-external-storage": (lambda tmp: _external_storage(tmp),
                            "'images' keeps its data in the external file(s)"),
}


@pytest.mark.parametrize("case", list(SILENT), ids=list(SILENT))
def test_hdf5_data_that_reads_other_files_is_refused(case, good, tmp_path):
    build, message = SILENT[case]
    line = assert_refused(["evaluate", good / "model.keras", "--data", build(tmp_path)], message)
    assert "cannot be read safely" in line


@pytest.mark.parametrize("kind", ["h5-external-link", "h5-virtual", "keras-external-link", "keras-virtual"])
def test_models_whose_weights_read_other_files_are_refused(kind, good, tmp_path):
    other = _other_file(tmp_path)

    def change(handle):
        if kind.endswith("external-link"):
            handle["extra"] = h5py.ExternalLink(str(other), "/images")
        else:
            layout = h5py.VirtualLayout(shape=(7, 48, 48), dtype="u1")
            layout[:] = h5py.VirtualSource(str(other), "images", shape=(7, 48, 48))
            handle.create_virtual_dataset("extra", layout)

    if kind.startswith("h5"):
        path = _h5_model_with(good, tmp_path, "linked.h5", change)
    else:
        path = _weights_with(good, tmp_path, "linked.keras", change)
    assert_refused(["info", path], "cannot be read safely")


def _broken_model(path: Path, weight: int, value: float, functional: bool = False) -> Path:
    """A tiny model whose last Dense layer has its first ``weight`` (0 kernel, 1 bias) entry set to ``value``.
    (A NaN further back may not reach the output: a ReLU or max-pooling can drop it, depending on the kernel.)"""
    model = tiny_models.functional_separate_softmax() if functional else tiny_models.sequential_fused_softmax()
    layer = model.get_layer("logits" if functional else "out")
    weights = layer.get_weights()
    weights[weight].reshape(-1)[0] = value
    layer.set_weights(weights)
    model.save(path)
    return path


@pytest.mark.parametrize("weight, value, functional", [(0, np.nan, False), (0, np.inf, True), (1, np.nan, True)],
                         ids=["nan-kernel-fused-softmax", "inf-kernel-separate-softmax", "nan-bias-separate-softmax"])
def test_a_model_that_outputs_nan_is_refused_by_evaluate_and_explain(weight, value, functional, good, tmp_path):
    model = _broken_model(tmp_path / "broken.keras", weight, value, functional)
    message = "the model outputs NaN or infinite values for 7 of 7 images"
    assert_refused(["evaluate", model, "--data", good / "data.h5"], message)
    assert_refused(["evaluate", model, "--data", good / "data.h5", "--tta-flip", "--preprocess", "unit"], message)
    assert_refused(["explain", model, "--data", good / "data.h5", "--out", tmp_path / "report", "-e", "saliency"],
                   message)
    assert not (tmp_path / "report").exists()


# ---------------------------------------------------------------------------------------------------------------
# Promises made in the docs
# ---------------------------------------------------------------------------------------------------------------

def scale_pixels(x):
    return x / 255.0


@pytest.fixture
def named_lambda_models(tmp_path):
    x = keras.Input((48, 48, 1))
    y = keras.layers.Lambda(scale_pixels, name="scale")(x)
    y = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(2, 3)(y))
    model = keras.Model(x, keras.layers.Dense(7, activation="softmax")(y))
    model.save(tmp_path / "named.keras")
    model.save(tmp_path / "named.h5")
    return tmp_path / "named.keras", tmp_path / "named.h5"


def test_a_lambdas_unregistered_function_says_how_to_register_it(named_lambda_models, good):
    for path in named_lambda_models:
        for unsafe in ([], ["--unsafe"]):
            line = assert_refused(["info", path, *unsafe], "it calls the function 'scale_pixels'")
            assert "--unsafe cannot help" in line and "register_keras_serializable" in line
            assert "rerun with --unsafe" not in line
    keras.saving.register_keras_serializable(package="hostile_inputs_test")(scale_pixels)
    try:  # registered, as a plugin would: both load, in safe mode
        for path in named_lambda_models:
            works(["evaluate", path, "--data", good / "data.h5", "--preprocess", "raw"])
    finally:
        keras.saving.get_custom_objects().pop("hostile_inputs_test>scale_pixels", None)


def test_the_seed_and_resume_guarantees_are_stated_where_they_are_promised():
    """The docs and the help promise what resume does: weights and optimizer state restored, random streams
    restarting from the seed, so a resumed run repeats itself but not an uninterrupted run."""
    output = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "300"}).output
    help_text = " ".join(output.replace("│", " ").split())
    for phrase in ("weights and optimizer state are restored", "restart from the seed",
                   "a resumed run differs from an uninterrupted one"):
        assert phrase in help_text, phrase
    tutorial = " ".join((Path(__file__).parents[1] / "docs" / "tutorial.md").read_text().split())
    assert "the same command interrupted after the same epochs and resumed" in tutorial
    assert "an interrupted run and an uninterrupted one do not match" in tutorial


@pytest.mark.slow
def test_a_run_resumed_after_the_same_epoch_repeats_itself(tmp_path):
    """What the docs promise, checked: interrupted after epoch 1 and resumed, twice, the same weights."""
    import dataclasses

    from xai_fer.data import load_dataset
    from xai_fer.training.config import PRESETS
    from xai_fer.training.trainer import train

    class StopAfterFirstEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise KeyboardInterrupt

    data = load_dataset(_tiny_training_h5(tmp_path / "tiny.h5"))
    config = dataclasses.replace(PRESETS["study"], epochs=2, batch_size=16, seed=3)
    weights = []
    for name in ("a", "b"):
        with pytest.raises(KeyboardInterrupt):
            train("dnn", data, tmp_path / name, config, deterministic=True, progress=False,
                  callbacks=[StopAfterFirstEpoch()])
        train("dnn", data, tmp_path / name, config, deterministic=True, progress=False, resume=True)
        weights.append(keras.saving.load_model(tmp_path / name / "model.keras").get_weights())
    for first, second in zip(*weights, strict=True):
        np.testing.assert_array_equal(first, second)


def test_the_limits_parse_sizes_and_say_what_to_set(monkeypatch):
    from xai_fer.errors import UserError
    from xai_fer.limits import DATA_BYTES, IMAGE_PIXELS

    for text, value in [("1G", 2**30), ("512m", 2**29), ("1.5K", 1536), ("2GiB", 2**31), ("123", 123), ("0", 0)]:
        monkeypatch.setenv("XAI_FER_MAX_DATA_BYTES", text)
        assert DATA_BYTES.value() == value, text
    monkeypatch.setenv("XAI_FER_MAX_IMAGE_PIXELS", "20M")
    assert IMAGE_PIXELS.value() == 20_000_000  # pixels count in thousands, bytes in 1024s
    monkeypatch.delenv("XAI_FER_MAX_DATA_BYTES")
    with pytest.raises(UserError, match=r"XAI_FER_MAX_DATA_BYTES=3G"):
        DATA_BYTES.check(2 * 2**30 + 1, "x")
    DATA_BYTES.check(2**30, "x")  # at the limit is within it

