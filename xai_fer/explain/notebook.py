"""The Python API as a notebook user meets it: one call that takes paths or loaded objects, and a result that
shows itself in Jupyter (the report's run section and each explainer's numbers and figures), nothing written.

    result = xai_fer.explain_model("model.keras", "photos/*.jpg", ["saliency"], faces=True)
    result                                   # the report section, inline
    result.figures["saliency"]["image_0"]    # a matplotlib Figure
"""

from __future__ import annotations

import base64
import html
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..atomic import json_default
from ..data.photos import describe_preparation
from .artifact import Artifact

_SHOWN_PER_EXPLAINER = 4  # figures drawn inline per explainer; the rest are a click (an index) away


@dataclass
class Explanation:
    """What :func:`explain_model` returns: ``artifacts`` by explainer (figures, arrays, summary), the shared
    ``context`` (model, data, predictions, how the scaling was chosen) and each explainer's ``timings``."""

    artifacts: dict[str, Artifact]
    context: object
    timings: dict = field(default_factory=dict)

    @property
    def figures(self) -> dict:
        """Explainer -> its figures; every entry is a matplotlib Figure (per-image ones built on access)."""
        return {name: artifact.figures for name, artifact in self.artifacts.items()}

    @property
    def summaries(self) -> dict:
        return {name: artifact.summary for name, artifact in self.artifacts.items()}

    @property
    def scaling_choice(self) -> dict:
        """How the input scaling was decided: chosen scaling, how, every candidate's score."""
        return self.context.scaling_choice.describe()

    def __getitem__(self, name: str) -> Artifact:
        return self.artifacts[name]

    def __repr__(self) -> str:
        return (f"Explanation({', '.join(self.artifacts)} on {len(self.context.dataset)} images; scaling "
                f"{self.context.scaling_choice.summary()})")

    def run_rows(self) -> dict:
        """The run section: model, data, preprocessing and how its scaling was chosen, explainers not run."""
        context, dataset = self.context, self.context.dataset
        info = context.info
        rows = {
            "model": f"{info.name} ({info.parameters:,} parameters, input {info.input_shape}, "
                     f"{info.num_classes} classes)",
            "data": f"{dataset.source} ({dataset.format or 'in memory'}, split {dataset.split or 'all'}, "
                    f"{len(dataset)} images, {'labelled' if dataset.labels is not None else 'unlabelled'})",
            "preprocessing": ", ".join(f"{k}: {v}" for k, v in {"pixel_scaling": dataset.pixel_scaling,
                                                               **context.adapter.describe()}.items() if v),
            "scaling chosen": context.scaling_choice.summary() if context.scaling_choice else None,
        }
        rows["images prepared"] = describe_preparation(dataset.preparation)
        for name, why in context.skipped.items():
            rows[f"not run: {name}"] = why
        return {k: v for k, v in rows.items() if v is not None}

    def _repr_html_(self) -> str:
        parts = ["<div class='xai-fer'><h3>xai-fer run</h3>", _table(self.run_rows())]
        for name, artifact in self.artifacts.items():
            parts.append(f"<h4>{html.escape(name)} ({self.timings.get(name, 0):.1f} s)</h4>")
            scalars = {k: v for k, v in artifact.summary.items()
                       if isinstance(v, (int, float, str, bool)) or v is None}
            if scalars:
                parts.append(_table(scalars))
            names = list(artifact.figures)
            # Figures already made first (grids, matrices): per-image ones are built only when asked for.
            shown = sorted(names, key=lambda n: not artifact.figures.is_made(n))[:_SHOWN_PER_EXPLAINER]
            for figure_name in shown:
                parts.append(f"<figure><img alt='{html.escape(figure_name)}' style='max-width:100%' "
                             f"src='data:image/png;base64,{_png(artifact.figures[figure_name])}'>"
                             f"<figcaption>{html.escape(figure_name)}</figcaption></figure>")
            if len(names) > len(shown):
                rest = ", ".join(n for n in names if n not in shown)
                parts.append(f"<p>{len(names) - len(shown)} more figures: <code>.figures[{name!r}][NAME]</code> "
                             f"for NAME in {html.escape(rest[:300])}{'...' if len(rest) > 300 else ''}</p>")
        parts.append("</div>")
        return "\n".join(parts)


def _table(rows: dict) -> str:
    def shown(value) -> str:
        if isinstance(value, float):
            return f"{value:.4g}"
        return json.dumps(value, default=json_default) if isinstance(value, (dict, list)) else str(value)

    cells = "".join(f"<tr><th style='text-align:left'>{html.escape(str(k))}</th>"
                    f"<td style='text-align:left'>{html.escape(shown(v))}</td></tr>" for k, v in rows.items())
    return f"<table>{cells}</table>"


def _png(figure) -> str:
    from ..display import save_figure

    buffer = io.BytesIO()
    save_figure(figure, buffer, format="png", dpi=80, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def explain_model(model=None, data=None, explainers=None, options=None, preprocess: str = "auto",
                  split: str | None = None, labels=None, faces: bool = False, seed: int = 0,
                  data_format: str | None = None, unsafe: bool = False, preset: str | None = None,
                  progress=False) -> Explanation:
    """Run explainers in memory and return an :class:`Explanation` that displays itself in Jupyter.

    ``model``: a loaded Keras model or a path (default: the bundled reference CNN). ``data``: a ``Dataset``,
    a path, several image files or a glob (default: the bundled sample); ``split``, ``labels``, ``faces`` and
    ``data_format`` as for :func:`xai_fer.data.load_dataset`. ``options``: explainer -> {key: value}, Python
    values or the command line's strings (``{"saliency": {"indices": [0, 1, 2]}}``). ``preprocess``: the
    scaling the model expects, or ``auto`` to measure it (:mod:`xai_fer.models.scaling_choice`). ``preset``: named
    options for what ``options`` leaves out (:mod:`xai_fer.explain.presets`, e.g. ``"quick"``). ``progress``:
    True shows progress bars while the explainers run (silent by default), or see :func:`run_explainers`."""
    from .. import reference
    from ..data import Dataset, load_dataset
    from ..data.labels import attach_labels
    from ..models.loading import load_model
    from .pipeline import run_explainers

    if model is None or isinstance(model, (str, Path)):
        model = load_model(Path(model) if model is not None else reference.model_path("cnn"), unsafe=unsafe)
    if not isinstance(data, Dataset):
        data = load_dataset(data if data is not None else reference.sample_path(), split=split, format=data_format,
                            labels=labels, faces=faces, allow_mixed_splits=False)
    else:  # a Dataset made or loaded in Python: the same split and labels apply
        if labels is not None:
            data = attach_labels(data, labels)
        data = data.select_split(split)
    artifacts, _, context, timings = run_explainers(model, data, explainers, options, preprocess, seed, progress,
                                                    preset=preset)
    return Explanation(artifacts, context, timings)
