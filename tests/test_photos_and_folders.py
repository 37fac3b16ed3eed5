"""Inputs people have: one photo, several, a glob, a flat folder (unlabelled), folders of mixed image sizes,
labels from a file, faces cut out of larger photos, image names that travel into the results, and a train/ +
test/ folder that must not be read as one."""

import json
import sys

import numpy as np
import pytest
import tiny_models
from fixtures import sample_images, write_fer_csv, write_homework_csv, write_image_folder
from matplotlib.text import Text as _Text
from PIL import Image
from typer.testing import CliRunner

from xai_fer.cli import app
from xai_fer.data import load_dataset
from xai_fer.errors import UserError
from xai_fer.reference import SAMPLE


def _save(path, pixels):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(pixels, dtype=np.uint8).squeeze()).save(path)
    return path


@pytest.fixture
def photos(tmp_path):
    """Three 48x48 gray photos in a flat folder."""
    folder = tmp_path / "photos"
    for index, image in enumerate(sample_images(3)):
        _save(folder / f"face_{index}.png", image)
    return folder


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    tiny_models.sequential_fused_softmax().save(path)
    return path


def _fer_face(index: int = 1) -> np.ndarray:
    with np.load(SAMPLE) as sample:
        return sample["images"][index]


# --- photos: one file, several, a glob, a flat folder --------------------------------------------------------


def test_one_photo_several_a_glob_and_a_flat_folder(photos):
    one = load_dataset(photos / "face_1.png")
    assert one.format == "photos" and len(one) == 1 and one.labels is None
    assert one.names.tolist() == ["face_1.png"]
    np.testing.assert_array_equal(one.images[0, ..., 0], sample_images(3)[1])

    several = load_dataset([photos / "face_2.png", photos / "face_0.png"])
    assert several.names.tolist() == ["face_2.png", "face_0.png"]  # in the order given
    globbed = load_dataset(str(photos / "face_*.png"))
    assert globbed.names.tolist() == ["face_0.png", "face_1.png", "face_2.png"]
    assert globbed.source == str(photos / "face_*.png")

    folder = load_dataset(photos)
    assert folder.format == "photos" and folder.labels is None and folder.names.tolist() == globbed.names.tolist()
    assert folder.row_label(2) == {"name": "face_2.png", "source_row": 2}


def test_photo_sources_that_cannot_be_read_are_one_line(tmp_path, photos):
    with pytest.raises(UserError, match="matches no file"):
        load_dataset(str(tmp_path / "nothing_*.jpg"))
    with pytest.raises(UserError, match="does not exist"):
        load_dataset([photos / "face_0.png", tmp_path / "missing.png"])
    (photos / "notes.txt").write_text("hello")
    with pytest.raises(UserError, match="not a .jpg, .jpeg or .png image"):
        load_dataset(photos)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="no images and no class folders"):
        load_dataset(empty)


def test_images_of_different_sizes_are_resized_to_the_common_one_and_recorded(tmp_path):
    images = sample_images(4)
    root = write_image_folder(tmp_path / "faces", images, [0, 1, 2, 3])
    _save(root / "happy" / "big.png", sample_images(1, size=96)[0])
    _save(root / "sad" / "wide.png", np.full((40, 80), 200, np.uint8))
    data = load_dataset(root)
    assert data.images.shape == (6, 48, 48, 1) and data.format == "image-folder"
    resized = data.preparation["resized"]
    assert resized["to"] == "48x48" and resized["images"] == 2
    assert resized["sizes_found"] == {"48x48": 4, "96x96": 1, "80x40": 1}
    assert set(resized["first_resized"]) == {"happy/big.png", "sad/wide.png"}
    wide = data.images[list(data.names).index("sad/wide.png"), ..., 0]
    assert np.all(wide == 200)  # a flat image stays flat: resized, not cropped or padded
    # A large photo alone is shrunk to fit 512 pixels, aspect ratio kept.
    big = load_dataset(_save(tmp_path / "big.png", np.zeros((1200, 900), np.uint8)))
    assert big.images.shape == (1, 512, 384, 1) and big.preparation["resized"]["to"] == "384x512"


# --- unlabelled photos through explain -------------------------------------------------------------------------


def test_explaining_one_photo_targets_the_prediction_and_names_the_file(tmp_path, model_path):
    photo = _save(tmp_path / "in" / "my face.png", _fer_face())
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["explain", str(model_path), "--data", str(photo), "-e", "confusion",
                                      "-e", "saliency", "--out", str(out)])
    assert result.exit_code == 2 and "confusion" in result.stderr and "labels" in result.stderr
    result = CliRunner().invoke(app, ["explain", str(model_path), "--data", str(photo), "--out", str(out)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert "confusion" in manifest["skipped"] and "label" in manifest["skipped"]["confusion"]
    assert manifest["data"]["format"] == "photos" and manifest["data"]["labelled"] is False
    summary = json.loads((out / "saliency" / "summary.json").read_text())
    (image,) = summary["images"]
    assert image["name"] == "my face.png" and image["true"] is None
    assert image["target"] == image["predicted"] and summary["target"] == "predicted"
    assert "my face.png" in (out / "index.html").read_text()
    # Figures name the image by its file too (the API builds the same figures).
    from xai_fer import explain_model

    figures = explain_model(model_path, photo, ["saliency"]).figures["saliency"]
    titles = [text.get_text() for name in figures for text in figures[name].findobj(_Text)]
    assert any(title.startswith("my face.png: pred ") for title in titles), titles


# --- labels from a file -----------------------------------------------------------------------------------------


def test_labels_for_the_homework_test_csv_from_npy_and_csv(tmp_path, model_path):
    images = sample_images(5)
    test_csv = write_homework_csv(tmp_path / "test.csv", images, ids=[10, 11, 12, 13, 14])
    assert load_dataset(test_csv).labels is None
    np.save(tmp_path / "labels.npy", np.array([3, 0, 6, 1, 2]))
    (tmp_path / "labels.csv").write_text("emotion\nHappy\n0\nneutral\n1\n2\n\n")
    for labels in (tmp_path / "labels.npy", tmp_path / "labels.csv"):
        data = load_dataset(test_csv, labels=labels)
        assert data.labels.tolist() == [3, 0, 6, 1, 2] and data.preparation["labels_from"] == str(labels)
    assert data.row_label(1) == {"name": "line 3", "source_row": 1, "id": 11}
    result = CliRunner().invoke(app, ["evaluate", str(model_path), "--data", str(test_csv), "--labels",
                                      str(tmp_path / "labels.npy"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["n"] == 5


@pytest.mark.parametrize("content, message", [
    ("0\n1\n", "2 labels for 5 images"),
    ("0,1\n1,1\n", "more than one column"),
    ("label\n0\n1\n2\n3\nmaybe\n", "line 6: 'maybe' is not a class index or name"),
    ("0\n1\n2\n3\n9\n", "values outside 0..6"),
])
def test_bad_label_files_are_one_line(tmp_path, content, message):
    test_csv = write_homework_csv(tmp_path / "test.csv", sample_images(5))
    (tmp_path / "labels.csv").write_text(content)
    with pytest.raises(UserError, match=message):
        load_dataset(test_csv, labels=tmp_path / "labels.csv")


def test_labels_are_refused_for_a_source_that_has_its_own(tmp_path):
    train_csv = write_homework_csv(tmp_path / "train.csv", sample_images(2), labels=[0, 1])
    np.save(tmp_path / "labels.npy", np.array([1, 0]))
    with pytest.raises(UserError, match="has labels of its own"):
        load_dataset(train_csv, labels=tmp_path / "labels.npy")


# --- names travel ------------------------------------------------------------------------------------------------


def test_csv_images_are_named_by_their_own_line_in_the_file(tmp_path):
    usage = [0, 2, 1, 2, 0, 2]
    path = write_fer_csv(tmp_path / "fer2013.csv", sample_images(6), [0, 1, 2, 3, 4, 5], usage=usage)
    private = load_dataset(path, split="PrivateTest")
    assert [private.row_label(k)["name"] for k in range(len(private))] == ["line 3", "line 5", "line 7"]
    assert private.source_rows.tolist() == [1, 3, 5]


# --- train/ and test/ together ---------------------------------------------------------------------------------


def test_a_folder_with_train_and_test_needs_a_choice(tmp_path, model_path):
    images = sample_images(4)
    root = write_image_folder(tmp_path / "kaggle", images, [0, 1, 2, 3], usage=[0, 0, 1, 2],
                              split_folders={"Training": "train", "PublicTest": "test", "PrivateTest": "test"})
    assert len(load_dataset(root)) == 4  # training reads both (it needs Training and the test rows)
    with pytest.raises(UserError) as caught:
        load_dataset(root, allow_mixed_splits=False)
    text = caught.value.one_line()
    assert "mix training and test" in text and "--split Training" in text and f"--data {root / 'test'}" in text
    result = CliRunner().invoke(app, ["evaluate", str(model_path), "--data", str(root)])
    assert result.exit_code == 2 and "--split Training" in result.stderr
    assert len(load_dataset(root, split="Training", allow_mixed_splits=False)) == 2
    assert len(load_dataset(root / "test", allow_mixed_splits=False)) == 2


# --- faces -------------------------------------------------------------------------------------------------------


def _photo_with_face(path, face: np.ndarray, at=(200, 90), side=192):
    """A FER2013 face scaled up and pasted on a larger plain background: a photo a face detector must search."""
    canvas = Image.new("L", (480, 360), 150)
    canvas.paste(Image.fromarray(face).resize((side, side), Image.Resampling.BICUBIC), at)
    canvas.convert("RGB").save(path)
    return path


def test_faces_are_found_cut_out_and_recorded(tmp_path, model_path):
    pytest.importorskip("cv2", reason="face detection needs the faces extra (opencv-python-headless)")
    face = _fer_face(1)
    photo = _photo_with_face(tmp_path / "photo.jpg", face)
    data = load_dataset(photo, faces=True)
    (record,) = data.preparation["face_crop"]["images"]
    assert record["name"] == "photo.jpg" and record["photo_size"] == "480x360" and record["faces_found"] == 1
    x, y, w, h = record["box"]
    assert abs(x - 200) <= 12 and abs(y - 90) <= 12 and abs(w - 192) <= 24 and w == h  # where it was pasted
    assert data.images.shape[1:] == (h, w, 3)
    back = np.asarray(Image.fromarray(data.images[0]).convert("L").resize((48, 48), Image.Resampling.BILINEAR))
    assert np.corrcoef(back.ravel(), face.ravel())[0, 1] > 0.9  # it is the face that was cut out

    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["explain", str(model_path), "--data", str(photo), "--faces", "-e", "saliency",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["data"]["preparation"]["face_crop"]["images"][0]["box"] == [x, y, w, h]
    assert f"photo.jpg (480x360): x={x} y={y} {w}x{h}" in (out / "index.html").read_text()
    # ... and drawn: the photo, shrunk to at most 192 pixels a side, with the box in green where the face was.
    (preview,) = data.previews
    scale = 192 / 480
    assert preview.image.shape[:2] == (144, 192) and preview.box == tuple(round(v * scale) for v in (x, y, w, h))
    assert manifest["run_files"] == ["face_crops.png"] and 'src="face_crops.png"' in (out / "index.html").read_text()
    drawn = np.asarray(Image.open(out / "face_crops.png").convert("RGB")).astype(int)
    green = (drawn[..., 1] > 180) & (drawn[..., 0] < 100) & (drawn[..., 2] < 100)
    assert green.sum() > 200, "the box is drawn"


def test_a_photo_without_a_face_is_a_one_line_refusal(tmp_path, model_path):
    pytest.importorskip("cv2", reason="face detection needs the faces extra (opencv-python-headless)")
    blank = _save(tmp_path / "wall.png", np.random.default_rng(0).integers(100, 140, (300, 400)))
    result = CliRunner().invoke(app, ["explain", str(model_path), "--data", str(blank), "--faces", "--out",
                                      str(tmp_path / "out")])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "wall.png: no face found" in result.stderr


def test_faces_without_opencv_say_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 now fails, as where the extra is not installed
    photo = _photo_with_face(tmp_path / "photo.jpg", _fer_face(1))
    with pytest.raises(UserError, match=r"xai-fer\[faces\]"):
        load_dataset(photo, faces=True)


def test_faces_are_refused_for_sources_that_are_not_images(tmp_path):
    path = write_fer_csv(tmp_path / "fer2013.csv", sample_images(2), [0, 1])
    with pytest.raises(UserError, match="cannot cut out faces"):
        load_dataset(path, faces=True)
