"""scripts/build_reference.py: the teachers of a distilled reference model and the runs it was chosen from are
listed from what training recorded, and a --cnn that is not the best candidate on validation is refused."""

import hashlib
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def build(load_script):
    return load_script("build_reference")


def _run(folder: Path, public_flip: float, private_flip: float, model: bytes = b"weights", **extra) -> Path:
    folder.mkdir(parents=True)
    (folder / "model.keras").write_bytes(model)
    splits = {"PublicTest": {"plain": {"accuracy": public_flip - 0.01}, "tta_flip": {"accuracy": public_flip}},
              "PrivateTest": {"plain": {"accuracy": private_flip - 0.01}, "tta_flip": {"accuracy": private_flip}}}
    metrics = {"splits": splits, "command": f"xai-fer train cnn --out {folder.name}", "epochs": 10,
               "batch_norm_recalibration": {"validation_loss_before": 1.2, "validation_loss_after": 1.1,
                                            "kept": True}, **extra}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return folder


def test_candidates_are_listed_and_only_the_best_on_validation_is_accepted(build, tmp_path):
    from xai_fer.reference import selection

    best = _run(tmp_path / "kd05", public_flip=0.695, private_flip=0.70)
    other = _run(tmp_path / "kd08", public_flip=0.688, private_flip=0.75)  # better on PrivateTest: not a reason
    chosen_among = build.choose(best, [other])
    assert json.loads(json.dumps(chosen_among)) == chosen_among  # recorded as cnn_selection.json
    table = "\n".join(selection.markdown(chosen_among))
    assert "| `kd05` (chosen) | 1.1000 | 68.50% | 69.50% | 69.00% | 70.00% |" in table
    assert "| `kd08` | 1.1000 | 67.80% | 68.80% | 74.00% | 75.00% |" in table
    assert "among 2 runs by the best validation (PublicTest) accuracy" in table and "no PrivateTest number" in table
    with pytest.raises(SystemExit, match="kd05 is"):
        build.choose(other, [best])
    assert build.choose(best, []) is None
    # The same run spelt twice is one candidate; a run without the mirrored view cannot be compared.
    assert [r["name"] for r in build.choose(best, [best.resolve(), other])["runs"]] == ["kd05", "kd08"]
    plain_only = _run(tmp_path / "plain", public_flip=0.70, private_flip=0.70)
    metrics = json.loads((plain_only / "metrics.json").read_text())
    del metrics["splits"]["PublicTest"]["tta_flip"]
    (plain_only / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(SystemExit, match="plain has no PublicTest accuracy with the mirrored view"):
        build.choose(best, [plain_only])


def test_the_shipped_validation_loss_follows_what_was_kept(build):
    averaged = {"weight_averaging": {"validation_loss_average": 1.0, "validation_loss_best": 1.05, "kept": False}}
    assert build.shipped_validation_loss(averaged) == 1.05
    assert build.shipped_validation_loss({"weight_averaging": {**averaged["weight_averaging"], "kept": True}}) == 1.0
    assert build.shipped_validation_loss({"batch_norm_recalibration": {
        "validation_loss_before": 1.2, "validation_loss_after": 1.3, "kept": False}}) == 1.2
    assert build.shipped_validation_loss({}) is None


def test_teachers_are_named_by_sha256_with_the_commands_that_made_them(build, tmp_path):
    teacher = _run(tmp_path / "cnn60", 0.68, 0.69, model=b"teacher weights")
    decoy = _run(tmp_path / "swa16", 0.68, 0.69, model=b"other weights")
    sha = hashlib.sha256(b"teacher weights").hexdigest()
    distillation = {"teachers": [{"path": "/elsewhere/xai_fer/reference/cnn.keras", "sha256": sha}],
                    "teacher_weight": 0.5, "train_accuracy_each": [0.8], "train_accuracy_together": 0.8}
    lines = build.teacher_lines("cnn", {"distillation": distillation}, [decoy, teacher])
    text = "\n".join(lines)
    assert (f"`cnn60` (`/elsewhere/xai_fer/reference/cnn.keras` when cnn was trained, sha256 {sha[:12]}…, "
            "80.00% of the training images right)") in text
    assert "  - cnn60: `xai-fer train cnn --out cnn60`" in text and "swa16" not in text
    with pytest.raises(SystemExit, match="none of the --teachers runs"):
        build.teacher_lines("cnn", {"distillation": distillation}, [decoy])
    assert build.teacher_lines("cnn", {}, []) == []


def test_the_shipped_selection_describes_the_shipped_cnn():
    """cnn_selection.json is rewritten with the CNN: its chosen run's numbers are the shipped metrics'."""
    from xai_fer.reference import HERE, selection

    chosen_among = selection.read()
    if chosen_among is None:
        pytest.skip("the shipped CNN was not chosen among candidates (no cnn_selection.json)")
    metrics = json.loads((HERE / "cnn_metrics.json").read_text())
    (chosen,) = [run for run in chosen_among["runs"] if run["chosen"]]
    assert chosen["accuracy"]["PublicTest tta_flip"] == max(r["accuracy"]["PublicTest tta_flip"]
                                                           for r in chosen_among["runs"])
    for split, view in selection.COLUMNS:
        assert chosen["accuracy"][f"{split} {view}"] == metrics["splits"][split][view]["accuracy"], (split, view)
    assert f"--out runs/{chosen['name']} " in metrics["command"]


def test_a_missing_teacher_stops_before_any_reference_file_is_replaced(build, tmp_path, monkeypatch):
    sha = hashlib.sha256(b"a teacher nobody passed").hexdigest()
    distillation = {"teachers": [{"path": "/t.keras", "sha256": sha}], "teacher_weight": 0.5,
                    "train_accuracy_each": [0.8], "train_accuracy_together": 0.8}
    cnn = _run(tmp_path / "kd05", 0.69, 0.70, distillation=distillation)
    dnn = _run(tmp_path / "dnn2", 0.48, 0.47)
    copied = []
    monkeypatch.setattr(build, "copy_run", lambda *args: copied.append(args))
    monkeypatch.setattr(sys, "argv", ["build_reference.py", "--cnn", str(cnn), "--dnn", str(dnn),
                                      "--h5", str(tmp_path / "fer2013.h5")])
    with pytest.raises(SystemExit, match="none of the --teachers runs"):
        build.main()
    assert copied == []
