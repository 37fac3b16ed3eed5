"""The Python API as a notebook user meets it: options as Python values, a Figure behind every figure name,
no TensorFlow start-up log, a result that shows itself in Jupyter, and docs whose first example says how the
pixels are scaled."""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

import xai_fer
from xai_fer.explain.artifact import Artifact
from xai_fer.reference import MODELS, SAMPLE

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model():
    return xai_fer.load_model(MODELS["cnn"])


@pytest.fixture(scope="module")
def data():
    return xai_fer.load_dataset(SAMPLE).subset(slice(0, 14))


def test_options_take_python_values_as_well_as_strings(model, data):
    artifacts, planned, *_ = xai_fer.run_explainers(
        model, data, ["saliency"], {"saliency": {"indices": [0, 3, 5], "image_figures": False, "target": 3,
                                                 "threshold_percentile": 80}})
    options = planned[0].options
    assert options.indices == (0, 3, 5) and options.image_figures is False and options.target == "3"
    summary = artifacts["saliency"].summary
    assert summary["selection"]["indices"] == [0, 3, 5] and summary["threshold_percentile"] == 80.0
    assert {image["target_index"] for image in summary["images"]} == {3}
    assert list(artifacts["saliency"].figures) == ["grid"]
    same, *_ = xai_fer.run_explainers(model, data, ["saliency"], {"saliency": {"indices": "0,3,5",
                                                                              "image_figures": "false"}})
    assert same["saliency"].summary["selection"] == summary["selection"]
    with pytest.raises(xai_fer.UserError, match="saliency.indices: expected a list, got int 3"):
        xai_fer.run_explainers(model, data, ["saliency"], {"saliency": {"indices": 3}})
    with pytest.raises(xai_fer.UserError, match="saliency.per_class: expected a whole number, got 1.5"):
        xai_fer.run_explainers(model, data, ["saliency"], {"saliency": {"per_class": 1.5}})


def test_every_figure_reached_through_the_api_is_a_figure_and_writing_stays_lazy(tmp_path):
    made = []

    def per_image():
        figure = Figure()
        figure.subplots().set_title("built")
        made.append(figure)
        return figure

    grid = Figure()
    artifact = Artifact(figures={"grid": grid, "image_0": per_image})
    assert artifact.figures.lazy("image_0") is per_image and made == []  # nothing built yet
    assert artifact.write(tmp_path / "a") == ["grid.png", "image_0.png"]
    assert len(made) == 1 and artifact.figures.lazy("image_0") is per_image  # written, not kept
    first = artifact.figures["image_0"]
    assert isinstance(first, Figure) and first is artifact.figures["image_0"] and len(made) == 2  # built once
    assert all(isinstance(figure, Figure) for figure in artifact.figures.values())
    assert dict(artifact.figures.items()) == {"grid": grid, "image_0": first}
    artifact.write(tmp_path / "b")
    assert len(made) == 3  # writing builds its own copy and drops it, as before
    artifact.close()


def test_the_api_silences_tensorflows_start_up_log():
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    chatter = re.compile(r"oneDNN|cuda|absl::InitializeLog|cpu_feature_guard")
    plain = subprocess.run([sys.executable, "-c", "import tensorflow"], env=env, capture_output=True, text=True,
                           timeout=300)
    if not chatter.search(plain.stderr):
        pytest.skip("TensorFlow prints no start-up log on this machine: nothing to silence")
    quiet = subprocess.run([sys.executable, "-c", f"import xai_fer; xai_fer.load_model({str(MODELS['cnn'])!r})"],
                           env=env, capture_output=True, text=True, timeout=300)
    assert quiet.returncode == 0, quiet.stderr
    assert not chatter.search(quiet.stderr), quiet.stderr


def test_explain_model_shows_itself_in_jupyter(model, data):
    result = xai_fer.explain_model(model, data, ["confusion", "saliency"], {"saliency": {"indices": [1, 2]}})
    assert isinstance(result, xai_fer.Explanation)
    page = result._repr_html_()
    assert "xai-fer run" in page and "scaling chosen" in page and "the model scales its own input" in page
    assert page.count("data:image/png;base64,") >= 3  # the confusion matrices and the saliency grid
    assert "<h4>confusion" in page and "<h4>saliency" in page
    assert all(isinstance(f, Figure) for figures in result.figures.values() for f in figures.values())
    assert result.scaling_choice["how"] == "model scales its input"
    assert [image["row"] for image in result["saliency"].summary["images"]] == [1, 2]
    for artifact in result.artifacts.values():
        artifact.close()


def test_explain_model_takes_paths_and_reads_photos(tmp_path):
    from PIL import Image

    with np.load(SAMPLE) as sample:
        faces = sample["images"][:2]
    for index, face in enumerate(faces):
        Image.fromarray(face).save(tmp_path / f"face_{index}.png")
    result = xai_fer.explain_model(MODELS["cnn"], str(tmp_path / "face_*.png"), ["saliency"], preprocess="raw")
    assert [image["name"] for image in result["saliency"].summary["images"]] == ["face_0.png", "face_1.png"]
    assert "given with --preprocess" in result._repr_html_()
    assert "skipped" not in repr(result) and "saliency on 2 images" in repr(result)


def test_the_first_api_examples_show_preprocess():
    first_block = re.search(r"```python\n(.+?)```", (ROOT / "docs" / "api.md").read_text(), re.S).group(1)
    assert "preprocess=" in first_block and "explain_model(" in first_block
    assert "preprocess=" in xai_fer.__doc__


def test_explain_model_explains_every_image(tmp_path, monkeypatch):
    """The whole split through the Python API (issue 18): the maps the report of ``run_explain`` holds, in
    ``maps_dir``'s maps.h5, read by the dataset views; kept after ``close``, and read again (not recomputed) by
    the same call; without ``maps_dir``, in a temporary folder that goes with the result."""
    import h5py
    import tiny_models
    from fixtures import sample_images, write_npz

    from xai_fer.explain import wholesplit

    model_path = tmp_path / "tiny.keras"
    tiny_models.sequential_fused_softmax().save(model_path)
    data = write_npz(tmp_path / "data.npz", sample_images(40, seed=4), labels=np.arange(40) % 7)
    names = ["saliency", "grad-cam", "class-maps", "method-disagreement"]
    options = {"saliency": {"grid_rows": 2, "batch_size": 16}, "grad-cam": {"grid_rows": 2, "batch_size": 16},
               "method-disagreement": {"count": 2}}
    settings = {"preprocess": "unit", "all_images": True, "chunk_size": 16, "maps_dtype": "float16"}
    result = xai_fer.explain_model(model_path, data, names, options, maps_dir=tmp_path / "maps", **settings)
    maps = result.maps
    assert maps["maps/saliency"].shape == (40, 48, 48) and maps["maps/saliency"].dtype == np.float16
    assert list(maps["true"][:]) == list(np.arange(40) % 7)
    assert result.context.whole_split.describe()["chunks"] == 3
    assert result["saliency"].summary["selection"] == {"mode": "all", "num_images": 40}
    assert result["method-disagreement"].summary["images"] == 40
    assert "class_maps" in result.figures["class-maps"] and "agreement" in result.figures["method-disagreement"]
    computed = {name: maps[f"maps/{name}"][:] for name in names[:2]}
    report = xai_fer.run_explain(model_path, data, tmp_path / "report", names, options, **settings)
    with h5py.File(report.out_dir / "maps.h5", "r") as written:
        for name, values in computed.items():
            np.testing.assert_array_equal(values, written[f"maps/{name}"][:])
    result.close()
    assert result.maps is None and (tmp_path / "maps" / "maps.h5").is_file()

    def no_chunk(*args, **kwargs):
        raise AssertionError("the maps were computed again")

    monkeypatch.setattr(wholesplit, "chunk_maps", no_chunk)
    again = xai_fer.explain_model(model_path, data, names, options, maps_dir=tmp_path / "maps", **settings)
    np.testing.assert_array_equal(again.maps["maps/saliency"][:], computed["saliency"])
    again.close()
    monkeypatch.undo()

    temporary = xai_fer.explain_model(model_path, data, ["saliency"], {"saliency": {"grid_rows": 2}}, **settings)
    folder = Path(temporary.maps.filename).parent
    assert folder.is_dir() and folder != tmp_path / "maps"
    temporary.close()
    assert not folder.exists()


def test_explain_model_refuses_unknown_and_report_settings():
    with pytest.raises(TypeError, match="unexpected keyword argument 'all_image'; did you mean 'all_images'"):
        xai_fer.explain_model(all_image=True)
    with pytest.raises(TypeError, match="unexpected keyword argument 'out_dir'"):
        xai_fer.explain_model(out_dir="report")  # nothing is written: run_explain writes a report
    with pytest.raises(TypeError, match=r"run_explain\(\) got an unexpected keyword argument 'chunksize'; did you "
                                        "mean 'chunk_size'"):
        xai_fer.run_explain(chunksize=64)
    request = xai_fer.ExplainRequest.from_settings({"seed": 3, "all_images": True, "out_dir": "r", "labels": "l.npy"})
    assert (request.run.seed, request.whole_split.all_images, request.write.out_dir, request.read.labels) == (
        3, True, "r", "l.npy")
    assert request.write.max_figures == xai_fer.ExplainRequest().write.max_figures  # the defaults kept
