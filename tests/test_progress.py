"""Progress: every explainer is one task of the run's progress object and reports its long loops (attribution
chunks, occlusion and RISE batches, faithfulness steps) through it; the default prints nothing; the CLI's
choice of display (bars on a terminal, nothing in a pipe, lines for logs)."""

import io
import re
import time

import pytest
import tiny_models

from xai_fer.explain.context import ExplainContext
from xai_fer.explain.pipeline import run_explainers
from xai_fer.explain.progress import (
    LineProgress,
    NoProgress,
    RecordingProgress,
    RichProgress,
    as_progress,
    progress_for,
)
from xai_fer.models.adapt import InputAdapter
from xai_fer.models.introspect import inspect_model


def _opened_at_top_level(progress):
    """The descriptions of the tasks opened while no other was open: the explainers, in order."""
    depth, top = 0, []
    for kind, description, _ in progress.events:
        if kind == "open":
            if depth == 0:
                top.append(description)
            depth += 1
        elif kind == "close":
            depth -= 1
    return top


def test_each_explainer_is_a_task_and_reports_its_loops(tiny_dataset):
    from xai_fer_plugins.occlusion import patch_starts

    progress = RecordingProgress()
    options = {"saliency": {"per_class": "1"}, "occlusion": {"per_class": "1", "patch": "16", "stride": "16"},
               "rise": {"indices": "0,1,2", "masks": "30"},
               "faithfulness": {"steps": "4", "randomization_images": "2", "figure_images": "0"}}
    artifacts, _, context, _ = run_explainers(tiny_models.functional_separate_softmax(), tiny_dataset,
                                              ["saliency", "occlusion", "rise", "faithfulness"], options,
                                              preprocess="unit", progress=progress)
    for artifact in artifacts.values():
        artifact.close()
    assert context.progress is progress
    assert _opened_at_top_level(progress) == ["saliency", "occlusion", "rise", "faithfulness"]
    # The explainers' own runs, then the randomisation check's re-runs of the first 2 images on each stage's
    # randomised copy (these three methods' maps do not depend on their chunk: the run's own maps stand for the
    # trained model's)
    assert progress.done("saliency: images") == [7] and progress.done("rise: images") == [3]
    stages = len(artifacts["faithfulness"].summary["randomization_check"]["stages"])
    spots = len(patch_starts(48, 16, 16)) ** 2
    assert progress.done("occlusion: occluded copies") == [7 * spots] + [2 * spots] * stages  # one chunk each
    assert progress.done("rise: masked copies") == [3 * 30] + [2 * 30] * stages
    # deletion and insertion: the random and Sobel maps on the 7 images any method explained, and each method's
    assert progress.done("faithfulness: deletion and insertion (images)") == [2 * 7 + 7 + 7 + 3]
    assert progress.done("faithfulness: randomisation check (method runs)") == [3 * stages]
    assert progress.done("saliency: images (randomised model)") == [2] * stages
    opened = sum(e[0] == "open" for e in progress.events)
    assert opened == sum(e[0] == "close" for e in progress.events), "every task is closed"


def test_a_callable_hears_each_explainers_name_and_the_default_is_silent(tiny_dataset, capsys):
    heard = []
    artifacts, *_ = run_explainers(tiny_models.sequential_fused_softmax(), tiny_dataset, ["saliency", "confusion"],
                                   {"saliency": {"indices": "0"}}, preprocess="unit", progress=heard.append)
    assert heard == ["saliency", "confusion"]
    artifacts, _, context, _ = run_explainers(tiny_models.sequential_fused_softmax(), tiny_dataset, ["saliency"],
                                              {"saliency": {"indices": "0"}}, preprocess="unit")
    assert isinstance(context.progress, NoProgress)
    captured = capsys.readouterr()
    assert "saliency" not in captured.out + captured.err
    with pytest.raises(TypeError, match="progress must be"):
        as_progress("yes")


def test_a_context_made_by_hand_reports_nowhere(tiny_dataset):
    model = tiny_models.sequential_fused_softmax()
    info = inspect_model(model)
    context = ExplainContext(model, info, tiny_dataset, InputAdapter("unit", (48, 48, 1), info.input_shape))
    with context.progress.task("anything", total=3) as task:
        task.advance(3)
    assert isinstance(context.progress, NoProgress)


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_the_cli_shows_bars_on_a_terminal_and_nothing_in_a_pipe():
    assert isinstance(progress_for("auto", io.StringIO()), NoProgress)  # a pipe or a file
    assert isinstance(progress_for("off", _Terminal()), NoProgress)
    assert isinstance(progress_for("lines", io.StringIO()), LineProgress)
    terminal = _Terminal()
    bars = progress_for("auto", terminal)
    assert isinstance(bars, RichProgress)
    with bars:
        with bars.task("activation-max"):
            with bars.task("activation-max: ascent steps (128 filters)", total=100) as steps:
                for _ in range(10):
                    time.sleep(0.15)  # a chunk of work; the display redraws ten times a second
                    steps.advance(10)
            assert [t.description for t in bars.bars.tasks] == ["activation-max"]  # the inner one is gone
        assert bars.bars.tasks[0].finished
    shown = terminal.getvalue()
    assert "activation-max: ascent steps (128 filters)" in shown
    counts = set(re.findall(r"(\d+)/100", shown))
    assert len(counts) >= 4, f"the bar did not move: {sorted(counts)}"  # a moving count, not one line


def test_lines_name_each_explainer_once():
    stream = io.StringIO()
    lines = LineProgress(stream)
    for name in ("saliency", "rise"):
        with lines.task(name):
            with lines.task(f"{name}: images", total=4) as inner:
                inner.advance(4)
    assert stream.getvalue() == "running saliency...\nrunning rise...\n"


def test_rich_descriptions_are_not_markup():
    stream = _Terminal()
    from rich.console import Console

    with RichProgress(Console(file=stream, force_terminal=True)) as bars:
        with bars.task("[bold]layer[/bold]", total=1) as task:
            task.advance(1)
    assert "[bold]layer[/bold]" in stream.getvalue()
