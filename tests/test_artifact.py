"""What an explainer hands back (``Artifact``): names that become files are checked where they are made, and
every array name round-trips through ``arrays.npz``."""

import numpy as np
import pytest
from matplotlib.figure import Figure

from xai_fer.explain.artifact import Artifact


@pytest.mark.parametrize("name", ["", "a/b", "..", ".hidden", "back\\slash"])
def test_a_name_that_cannot_be_a_file_fails_where_the_artifact_is_made(name):
    with pytest.raises(ValueError, match="non-empty name without"):
        Artifact(figures={name: Figure()})
    with pytest.raises(ValueError, match="array name"):
        Artifact(arrays={name: np.zeros(2)})
    late = Artifact()
    late.arrays[name] = np.zeros(2)  # added after construction: the pipeline checks again on hand-over
    with pytest.raises(ValueError):
        late.check_contents()


def test_object_arrays_fail_where_the_artifact_is_made():
    with pytest.raises(ValueError, match="holds Python objects"):
        Artifact(arrays={"names": np.array(["a", None])})


def test_any_array_name_round_trips_even_numpys_own_keywords(tmp_path):
    arrays = {"file": np.arange(3), "allow_pickle": np.eye(2), "maps": np.ones((2, 4, 4), np.float32),
              "odd name #1?": np.array([7])}
    Artifact(arrays=arrays, summary={"ok": True}).write(tmp_path)
    with np.load(tmp_path / "arrays.npz", allow_pickle=False) as saved:
        assert sorted(saved.files) == sorted(arrays)
        for name, value in arrays.items():
            np.testing.assert_array_equal(saved[name], value)
            assert saved[name].dtype == value.dtype


def test_the_report_page_shows_numpy_values_in_summaries():
    # summary.json accepts numpy scalars and arrays; the page built after every explainer ran must too.
    from xai_fer.explain.html import render_index

    manifest = {"model": {"path": "m.keras", "name": "m", "sha256": "0" * 64, "parameters": 10},
                "data": {"source": "d", "format": "npz", "split": None, "n": 3},
                "preprocessing": {}, "seed": 0, "explainers": {}, "versions": {}, "created": "today"}
    summary = {"count": np.int64(3), "share": np.float32(0.5), "flags": np.array([True, False])}
    page = render_index(manifest, [("demo", ["a #1.png"], summary)])
    assert "&quot;count&quot;: 3" in page and "a%20%231.png" in page
