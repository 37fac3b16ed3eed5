"""Dataset plugins: fer2013.csv, homework CSVs, image folders and .npz, through auto-detection."""

from pathlib import Path

import h5py
import numpy as np
import pytest
from fixtures import (
    pixel_field,
    sample_images,
    split_names,
    write_fer_csv,
    write_homework_csv,
    write_image_folder,
    write_npz,
)
from PIL import Image

from xai_fer import registry
from xai_fer.data import FER2013_CLASSES, MIXED_TEST, SPLITS, csv_pixels, load_dataset
from xai_fer.errors import UserError

LABELS = np.array([0, 1, 2, 3, 4, 5, 6, 3, 0, 6])
USAGE = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 0])


@pytest.fixture
def images():
    return sample_images(len(LABELS))


def folder_order(labels, usage=None) -> np.ndarray:
    """Where write_image_folder's images come back from the loader: by split, class folder name, file name."""
    splits = usage if usage is not None else np.zeros(len(labels), int)
    return np.array(sorted(range(len(labels)), key=lambda i: (splits[i], FER2013_CLASSES[labels[i]].lower(), i)))


def detected(path: Path) -> list[str]:
    return [name for name, fmt in registry.datasets().items() if fmt.detect(path)]


def assert_error(call, path: Path, line: int | None, *fragments: str):
    """``call`` raises a UserError naming ``path`` (and ``line``) whose one-line text holds every fragment."""
    with pytest.raises(UserError) as caught:
        call()
    text = caught.value.one_line()
    assert str(path) in text
    if line is not None:
        assert f"line {line}:" in text
    for fragment in fragments:
        assert fragment in text, text


# --- fer2013.csv ---------------------------------------------------------------------------------------------


def test_fer_csv_round_trip_and_splits(tmp_path, images):
    path = write_fer_csv(tmp_path / "fer2013.csv", images, LABELS, USAGE)
    assert detected(path) == ["fer-csv"]
    data = load_dataset(path)
    assert data.format == "fer-csv"
    assert data.images.shape == (10, 48, 48, 1) and data.images.dtype == np.uint8
    np.testing.assert_array_equal(data.images[..., 0], images)
    np.testing.assert_array_equal(data.labels, LABELS)
    assert data.class_names == FER2013_CLASSES
    for code, split in enumerate(SPLITS):
        chosen = load_dataset(path, split=split.lower())
        assert chosen.split == split
        np.testing.assert_array_equal(chosen.images[..., 0], images[USAGE == code])
        np.testing.assert_array_equal(chosen.labels, LABELS[USAGE == code])


def test_well_formed_rows_take_the_fast_path(tmp_path, images, monkeypatch):
    """After the first block (which sets the image size), blocks are split and parsed without line-by-line work."""
    monkeypatch.setattr(csv_pixels, "BLOCK_BYTES", 20000)  # about two rows per block
    calls = []
    row_parser, line_splitter = csv_pixels.parse_pixel_field, csv_pixels._Reader.split
    monkeypatch.setattr(csv_pixels, "parse_pixel_field", lambda *args: calls.append("row") or row_parser(*args))
    monkeypatch.setattr(csv_pixels._Reader, "split", lambda *args: calls.append("lines") or line_splitter(*args))
    data = load_dataset(write_fer_csv(tmp_path / "fer.csv", images, LABELS, USAGE, newline="\r\n"))
    np.testing.assert_array_equal(data.images[..., 0], images)
    assert sorted(calls) == ["lines", "row"]  # the first block's


def test_fer_csv_without_usage_column(tmp_path, images):
    data = load_dataset(write_fer_csv(tmp_path / "fer.csv", images, LABELS))
    assert data.usage is None and len(data) == 10


def test_fer_csv_windows_quoted_and_trailing_blank_lines(tmp_path, images):
    """CRLF line ends, R's quoting, a byte-order mark and blank lines at the end read the same as the plain file."""
    rows = zip(images, LABELS, USAGE, strict=True)
    lines = ['"emotion","pixels","Usage"'] + [f'{label},"{pixel_field(im)}","{SPLITS[use]}"' for im, label, use in rows]
    path = tmp_path / "fer_r.csv"
    path.write_bytes(("\r\n".join(lines) + "\r\n\r\n\n").encode("utf-8-sig"))  # with Excel's byte-order mark
    data = load_dataset(path)
    np.testing.assert_array_equal(data.images[..., 0], images)
    np.testing.assert_array_equal(data.usage, USAGE)


def test_fer_csv_irregular_spacing_takes_the_slow_path(tmp_path, images):
    path = write_fer_csv(tmp_path / "fer.csv", images, LABELS, USAGE)
    lines = path.read_text().split("\n")
    lines[3] = lines[3].replace(" ", "  ", 5).replace(",", ", ", 1)  # doubled spaces, a space after the comma
    path.write_text("\n".join(lines))  # and no final newline
    np.testing.assert_array_equal(load_dataset(path).images[..., 0], images)


def test_fer_csv_lines_across_blocks(tmp_path, images, monkeypatch):
    """Blocks smaller than a line: rows are stitched together and errors still name the right line."""
    monkeypatch.setattr(csv_pixels, "BLOCK_BYTES", 3000)
    path = write_fer_csv(tmp_path / "fer.csv", images, LABELS, USAGE)
    np.testing.assert_array_equal(load_dataset(path).images[..., 0], images)
    lines = path.read_text().split("\n")
    lines[9] = lines[9].replace(",", ",x", 1)
    path.write_text("\n".join(lines))
    assert_error(lambda: load_dataset(path), path, 10, "pixel 1 is 'x")


def test_other_square_sizes(tmp_path):
    small = sample_images(4, size=8)
    data = load_dataset(write_fer_csv(tmp_path / "small.csv", small, [1, 2, 3, 4]))
    assert data.images.shape == (4, 8, 8, 1)
    np.testing.assert_array_equal(data.images[..., 0], small)


def _corrupt(line: str) -> dict:
    """One malformed variant of a fer2013.csv data line per case: name -> (new line, expected message)."""
    label, pixels, usage = line.split(",")
    values = pixels.split(" ")
    return {
        "too few pixels": (f"{label},{' '.join(values[:-1])},{usage}", "2303 pixel values, expected 2304"),
        "too many pixels": (f"{label},{pixels} 7,{usage}", "2305 pixel values, expected 2304"),
        "non-numeric pixel": (f"{label},{' '.join(values[:9] + ['1a'] + values[10:])},{usage}",
                              "pixel 10 is '1a', not an integer"),
        "negative pixel": (f"{label},-1 {' '.join(values[1:])},{usage}", "pixel 1 is '-1', not an integer"),
        "pixel above 255": (f"{label},{' '.join(values[:4] + ['256'] + values[5:])},{usage}",
                            "pixel 5 is 256, outside 0..255"),
        "four-digit pixel": (f"{label},{' '.join(values[:4] + ['1000'] + values[5:])},{usage}",
                             "pixel 5 is 1000, outside 0..255"),
        "empty pixels": (f"{label},,{usage}", "0 pixel values, expected 2304"),
        "label out of range": (f"7,{pixels},{usage}", "emotion '7': not an integer in 0..6"),
        "label not a number": (f"happy,{pixels},{usage}", "emotion 'happy': not an integer in 0..6"),
        "unknown usage": (f"{label},{pixels},Validation2", "usage 'Validation2': not one of"),
        "missing field": (f"{label},{pixels}", "2 comma-separated fields, but the header names 3"),
        "extra field": (f"{label},{pixels},{usage},x", "4 comma-separated fields"),
        "blank line": ("", "empty line"),
    }


@pytest.mark.parametrize("case", list(_corrupt("0,1 2,Training")))
@pytest.mark.parametrize("row", [0, 6])
@pytest.mark.parametrize("block_bytes", [csv_pixels.BLOCK_BYTES, 20000])
def test_fer_csv_malformed_rows_name_file_and_line(tmp_path, images, case, row, block_bytes, monkeypatch):
    monkeypatch.setattr(csv_pixels, "BLOCK_BYTES", block_bytes)  # 20000: the bad line is in a later block
    path = write_fer_csv(tmp_path / "bad.csv", images, LABELS, USAGE)
    lines = path.read_text().split("\n")
    lines[row + 1], message = _corrupt(lines[row + 1])[case]
    if row == 0 and "pixel values, expected" in message:  # the first row sets the image size
        message = "pixel values do not make a square image"
    path.write_text("\n".join(lines))
    assert_error(lambda: load_dataset(path), path, row + 2, message)


def test_fer_csv_non_utf8_byte(tmp_path, images):
    path = write_fer_csv(tmp_path / "latin1.csv", images, LABELS, USAGE)
    data = path.read_bytes().split(b"\n")
    data[4] = data[4].replace(b"Training", b"Entra\xeenement")
    path.write_bytes(b"\n".join(data))
    assert_error(lambda: load_dataset(path), path, 5, "not UTF-8 text (byte 0xee")


def test_fer_csv_header_problems(tmp_path, images):
    path = tmp_path / "fer.csv"
    path.write_text("emotion,pixel,Usage\n0,1 2 3 4,Training\n")
    assert_error(lambda: load_dataset(path, format="fer-csv"), path, 1, "no 'pixels' column")
    path.write_bytes(b"")
    assert_error(lambda: load_dataset(path, format="fer-csv"), path, None, "empty file")
    path.write_text("emotion,pixels,Usage\n\n")
    assert_error(lambda: load_dataset(path), path, None, "no data rows")


def test_fast_parser_agrees_with_row_parser():
    images = sample_images(40, size=16, seed=3)
    fields = [pixel_field(image).encode() for image in images]
    np.testing.assert_array_equal(csv_pixels.parse_pixels(fields, 256), images.reshape(40, -1))
    np.testing.assert_array_equal(csv_pixels.parse_pixel_field(b" 7\t0  255 ", None), [7, 0, 255])
    declined = [
        fields[:1] + [fields[1] + b" 1"] + [fields[2].rsplit(b" ", 1)[0]],  # right total, wrong rows
        [b" " + fields[0]],
        [fields[0] + b" "],
        [fields[0].replace(b" ", b"  ", 1)],
        [fields[0].replace(b" ", b",", 1)],
        [b"0256" + fields[0][fields[0].index(b" "):]],  # four digits
        [b"a" + fields[0][fields[0].index(b" "):]],  # a letter alone, or in the units, tens or hundreds place
        [b"1a" + fields[0][fields[0].index(b" "):]],
        [b"a1" + fields[0][fields[0].index(b" "):]],
        [b"a11" + fields[0][fields[0].index(b" "):]],
        [b"\xff" + fields[0][fields[0].index(b" "):]],
    ]
    for rows in declined:
        assert csv_pixels.parse_pixels(rows, 256) is None


# --- homework CSVs -----------------------------------------------------------------------------------------


def test_homework_train_and_test(tmp_path, images):
    train = write_homework_csv(tmp_path / "train.csv", images, labels=LABELS)
    test = write_homework_csv(tmp_path / "test.csv", images[:4], ids=[10, 11, 12, 13])
    assert detected(train) == ["homework-csv"] and detected(test) == ["homework-csv"]
    data = load_dataset(train)
    assert data.format == "homework-csv" and data.usage is None and data.ids is None
    np.testing.assert_array_equal(data.images[..., 0], images)
    np.testing.assert_array_equal(data.labels, LABELS)
    unlabelled = load_dataset(test)
    assert unlabelled.labels is None and unlabelled.class_names == FER2013_CLASSES
    np.testing.assert_array_equal(unlabelled.ids, [10, 11, 12, 13])
    np.testing.assert_array_equal(unlabelled.images[..., 0], images[:4])


def test_homework_malformed(tmp_path, images):
    path = write_homework_csv(tmp_path / "train.csv", images, labels=LABELS)
    good = path.read_text().split("\n")
    path.write_text("\n".join(good[:3] + ["9" + good[3][1:]] + good[4:]))
    assert_error(lambda: load_dataset(path), path, 4, "label '9': not an integer in 0..6")
    path.write_text("\n".join(good[:3] + [good[3].rsplit(" ", 1)[0] + " 300"] + good[4:]))
    assert_error(lambda: load_dataset(path), path, 4, "pixel 2304 is 300, outside 0..255")
    test = write_homework_csv(tmp_path / "test.csv", images[:3], ids=[1, 2, 3])
    test.write_text(test.read_text().replace("\n2,", "\nb,"))
    assert_error(lambda: load_dataset(test), test, 3, "id 'b': not an integer >= 0")
    other = tmp_path / "other.csv"
    other.write_text("name,feature\nx,1 2 3 4\n")
    assert_error(lambda: load_dataset(other, format="homework-csv"), other, 1, "neither a 'label' nor an 'id'")


# --- image folders -----------------------------------------------------------------------------------------


def test_image_folder_classes_in_fer_order(tmp_path, images):
    root = write_image_folder(tmp_path / "faces", images, LABELS)
    assert detected(root) == ["image-folder"]
    data = load_dataset(root)
    assert data.format == "image-folder" and data.class_names == FER2013_CLASSES and data.usage is None
    assert data.images.shape == (10, 48, 48, 1)
    order = folder_order(LABELS)
    np.testing.assert_array_equal(data.labels, LABELS[order])
    np.testing.assert_array_equal(data.images[..., 0], images[order])


def test_image_folder_with_splits(tmp_path, images):
    root = write_image_folder(tmp_path / "faces", images, LABELS, usage=USAGE)
    for code, split in enumerate(SPLITS):
        chosen = load_dataset(root, split=split)
        assert sorted(chosen.labels.tolist()) == sorted(LABELS[USAGE == code].tolist())
    kaggle = write_image_folder(tmp_path / "kaggle", images, LABELS, usage=USAGE, suffix=".jpg",
                                split_folders={"Training": "train", "PublicTest": "test", "PrivateTest": "test"})
    data = load_dataset(kaggle)
    assert data.images.shape == (10, 48, 48, 1)  # JPEG: lossy pixels, but still grayscale
    # Kaggle's test/ holds PublicTest and PrivateTest together: loaded, never picked as either, never trained on.
    assert set(data.usage.tolist()) == {0, MIXED_TEST} and (data.usage == MIXED_TEST).sum() == (USAGE > 0).sum()
    for split in ("PublicTest", "PrivateTest"):
        assert_error(lambda split=split: load_dataset(kaggle, split=split), kaggle, None,
                     "its test folder holds PublicTest and PrivateTest together")
    assert len(load_dataset(kaggle, split="Training")) == (USAGE == 0).sum()
    assert len(load_dataset(kaggle / "test")) == (USAGE > 0).sum()  # the way to use all of it
    folders = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}  # train/val/test: test is private
    tvt = write_image_folder(tmp_path / "tvt", images, LABELS, usage=USAGE, split_folders=folders)
    np.testing.assert_array_equal(load_dataset(tvt).usage, np.sort(USAGE))
    folders = {"Training": "Training", "PublicTest": "test", "PrivateTest": "PrivateTest"}
    three = write_image_folder(tmp_path / "three", images, LABELS, usage=USAGE, split_folders=folders)
    np.testing.assert_array_equal(load_dataset(three).usage, np.sort(USAGE))  # test/ beside privatetest/: PublicTest


def test_image_folder_folds_the_case_of_class_names(tmp_path, images):
    root = tmp_path / "faces"
    for split, name, image in (("train", "Happy", 0), ("train", "Contempt", 1), ("test", "happy", 2),
                               ("test", "contempt", 3)):
        (root / split / name).mkdir(parents=True)
        Image.fromarray(images[image]).save(root / split / name / f"{image}.png")
    data = load_dataset(root)
    assert data.class_names == ("Contempt", "Happy")
    assert data.labels.tolist() == [0, 1, 0, 1]  # train/Contempt, train/Happy, then test/ in the same order


def test_image_folder_scales_16_bit_grayscale(tmp_path, images):
    root = tmp_path / "deep" / "happy"
    root.mkdir(parents=True)
    Image.fromarray(images[0].astype(np.uint16) * 257).save(root / "face.png")  # 0-255 spread over 0-65535
    Image.fromarray(images[1].astype(np.uint16)).save(root / "plain.png")  # 8-bit values stored in 16 bits
    assert Image.open(root / "face.png").mode.startswith("I")
    loaded = load_dataset(root.parent).images[..., 0]
    np.testing.assert_array_equal(loaded[0], images[0])
    np.testing.assert_array_equal(loaded[1], images[1])


def test_image_folder_other_names_rgb(tmp_path, images):
    rgb = np.stack([images, images[::-1], images], axis=-1)
    root = write_image_folder(tmp_path / "pets", rgb[:4], [0, 1, 1, 0], class_names=("Dog", "Cat"))
    data = load_dataset(root)
    assert data.class_names == ("cat", "dog") and data.images.shape == (4, 48, 48, 3)
    np.testing.assert_array_equal(data.labels, [0, 0, 1, 1])
    np.testing.assert_array_equal(data.images[0], rgb[1])


def test_image_folder_errors(tmp_path, images):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_error(lambda: load_dataset(empty), empty, None, "no class folders")
    root = write_image_folder(tmp_path / "faces", images[:3], [0, 1, 2])
    (root / "fear" / "notes.txt").write_text("hello")
    assert_error(lambda: load_dataset(root), root / "fear" / "notes.txt", None, "not a .jpg, .jpeg or .png image")
    (root / "fear" / "notes.txt").unlink()
    (root / "fear" / "broken.png").write_bytes(b"not a png")
    assert_error(lambda: load_dataset(root), root / "fear" / "broken.png", None, "not a readable image")
    (root / "fear" / "broken.png").unlink()
    Image.fromarray(sample_images(1, size=32)[0]).save(root / "disgust" / "big.png")
    # Images of another size are resized to the common one, and that is recorded (tests/test_photos_and_folders.py).
    assert load_dataset(root).preparation["resized"]["first_resized"] == ["disgust/big.png"]
    split_root = write_image_folder(tmp_path / "split", images[:2], [0, 1], usage=[0, 1])
    (split_root / "extra").mkdir()
    assert_error(lambda: load_dataset(split_root), split_root / "extra", None, "unknown folder")
    (split_root / "extra").rmdir()
    (split_root / "privatetest").mkdir()
    assert_error(lambda: load_dataset(split_root), split_root / "privatetest", None, "no class folders")


# --- .npz --------------------------------------------------------------------------------------------------


def test_npz_round_trip(tmp_path, images):
    path = write_npz(tmp_path / "faces.npz", images, LABELS, USAGE)
    assert detected(path) == ["npz"]
    data = load_dataset(path, split="PrivateTest")
    assert data.format == "npz" and data.class_names == FER2013_CLASSES
    np.testing.assert_array_equal(data.images[..., 0], images[USAGE == 2])
    rgb = write_npz(tmp_path / "rgb.npz", np.zeros((3, 8, 8, 3), np.float32), class_names=["a", "b"])
    data = load_dataset(rgb)
    assert data.images.shape == (3, 8, 8, 3) and data.labels is None and data.class_names == ("a", "b")


def test_hdf5_usage_as_split_names_and_without_usage(tmp_path, images):
    path = tmp_path / "names.h5"
    with h5py.File(path, "w") as handle:
        handle["images"] = images
        handle["labels"] = LABELS.astype(np.uint8)
        handle.create_dataset("usage", data=split_names(USAGE), dtype=h5py.string_dtype())  # variable-length str
    data = load_dataset(path, split="PrivateTest")
    np.testing.assert_array_equal(data.images[..., 0], images[USAGE == 2])
    np.testing.assert_array_equal(data.labels, LABELS[USAGE == 2])
    with h5py.File(path, "a") as handle:
        del handle["usage"]
    assert len(load_dataset(path)) == len(images)
    assert_error(lambda: load_dataset(path, split="PrivateTest"), path, None, "has no Usage column")


def test_npz_errors(tmp_path, images):
    path = tmp_path / "bad.npz"
    np.savez(path, pixels=images)
    assert_error(lambda: load_dataset(path), path, None, "no 'images' array", "pixels")
    write_npz(path, images, labels=LABELS + 1)
    assert_error(lambda: load_dataset(path), path, None, "'labels' values outside 0..6")
    np.savez(path, images=images, class_names=np.array(["a", 1], dtype=object))
    assert_error(lambda: load_dataset(path), path, None, "cannot read 'class_names' without pickle")
    path.write_bytes(b"PK\x03\x04 truncated")
    assert_error(lambda: load_dataset(path), path, None, "not a readable .npz file")
    np.savez(path, images=images, class_names=np.array("Angry"))  # one string, not a list of them
    assert_error(lambda: load_dataset(path), path, None, "class names must be a list of strings")
    np.savez(path, images=images, class_names=np.array([n.encode() for n in FER2013_CLASSES]))  # bytes
    assert load_dataset(path).class_names == FER2013_CLASSES
    np.savez(path, images=np.arange(len(images) * 48 * 48, dtype=np.int64).reshape(-1, 48, 48))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # a broken download: the member's CRC no longer matches
    path.write_bytes(bytes(data))
    assert_error(lambda: load_dataset(path), path, None, "'images' is damaged")
    group = tmp_path / "group.h5"
    with h5py.File(group, "w") as handle:
        handle.create_group("images")
    assert_error(lambda: load_dataset(group), group, None, "'images' is a group, not an array of pixels")
    lone = tmp_path / "lone.npy"
    np.save(lone, images)
    assert_error(lambda: load_dataset(lone, format="npz"), lone, None, "not an .npz archive")


# --- real FER2013 ------------------------------------------------------------------------------------------


@pytest.mark.real_data
def test_real_fer2013_in_every_format(tmp_path, fer2013_h5):
    with h5py.File(fer2013_h5, "r") as handle:
        pick = np.sort(np.concatenate([np.flatnonzero(handle["usage"][()] == code)[:4] for code in range(3)]))
        images, labels, usage = (handle[key][pick] for key in ("images", "labels", "usage"))
    sources = {
        "fer-csv": write_fer_csv(tmp_path / "fer2013.csv", images, labels, usage),
        "homework-csv": write_homework_csv(tmp_path / "train.csv", images, labels),
        "npz": write_npz(tmp_path / "fer2013.npz", images, labels, usage),
        "image-folder": write_image_folder(tmp_path / "folder", images, labels, usage=usage),
    }
    for name, source in sources.items():
        data = load_dataset(source)
        assert data.format == name and data.class_names == FER2013_CLASSES
        order = folder_order(labels, usage) if name == "image-folder" else np.arange(len(pick))
        np.testing.assert_array_equal(data.images[..., 0], images[order], err_msg=name)
        np.testing.assert_array_equal(data.labels, labels[order], err_msg=name)
    np.testing.assert_array_equal(load_dataset(sources["fer-csv"], split="PublicTest").labels, labels[usage == 1])
