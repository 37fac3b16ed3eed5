"""scripts/build_gallery.py: with --keep-whole-split the rest of the gallery is rebuilt while the published
whole-split report, its snippet and its record are carried over unchanged (a gallery without one stops the build in
one line); what another script made (the image browser's screenshot) is carried over by every build."""

import json
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def gallery_script(load_script):
    return load_script("build_gallery")


def _published_gallery(folder: Path, script) -> dict:
    record = {"run": script.WHOLE_SPLIT_RUN, "images": 3589, "whole_split": {"chunks": 4}}
    (folder / script.WHOLE_SPLIT_RUN / "browser").mkdir(parents=True)
    (folder / script.WHOLE_SPLIT_RUN / "index.html").write_text("<html>report</html>")
    (folder / script.WHOLE_SPLIT_RUN / "browser" / "faces.jpg").write_bytes(b"\xff\xd8jpeg")
    (folder / script.WHOLE_SPLIT_SNIPPET).write_text("the whole split\n")
    (folder / "gallery.json").write_text(json.dumps({"created": "then", "whole_split": record}))
    return record


def test_the_published_whole_split_report_is_carried_over_unchanged(gallery_script, tmp_path):
    gallery, staging = tmp_path / "gallery", tmp_path / "staging"
    staging.mkdir()
    record = _published_gallery(gallery, gallery_script)

    kept = gallery_script.kept_whole_split(gallery, staging)

    assert kept == record
    run = gallery_script.WHOLE_SPLIT_RUN
    for relative in (f"{run}/index.html", f"{run}/browser/faces.jpg", gallery_script.WHOLE_SPLIT_SNIPPET):
        assert (staging / relative).read_bytes() == (gallery / relative).read_bytes()


@pytest.mark.parametrize("missing", ["gallery.json", "report", "snippet"])
def test_a_gallery_without_a_whole_split_report_stops_in_one_line(gallery_script, tmp_path, missing):
    gallery, staging = tmp_path / "gallery", tmp_path / "staging"
    staging.mkdir()
    _published_gallery(gallery, gallery_script)
    if missing == "gallery.json":
        (gallery / "gallery.json").write_text(json.dumps({"created": "then"}))
    elif missing == "report":
        shutil.rmtree(gallery / gallery_script.WHOLE_SPLIT_RUN)
    else:
        (gallery / gallery_script.WHOLE_SPLIT_SNIPPET).unlink()

    with pytest.raises(SystemExit) as stopped:
        gallery_script.kept_whole_split(gallery, staging)

    assert "no whole-split report to keep" in str(stopped.value) and "\n" not in str(stopped.value)
    assert not any(staging.iterdir())


def test_the_browser_screenshot_made_by_another_script_survives_a_rebuild(gallery_script, tmp_path):
    gallery, staging = tmp_path / "gallery", tmp_path / "staging"
    staging.mkdir()
    (gallery / "browser").mkdir(parents=True)
    (gallery / "browser" / "privatetest.png").write_bytes(b"\x89PNG screenshot")
    (gallery / "cnn").mkdir()  # made by the build itself: not carried over

    gallery_script.carry_over_made_elsewhere(gallery, staging)

    assert (staging / "browser" / "privatetest.png").read_bytes() == b"\x89PNG screenshot"
    assert not (staging / "cnn").exists()
    gallery_script.carry_over_made_elsewhere(tmp_path / "no-gallery-yet", tmp_path / "other")  # nothing to carry
