"""The Python API as a notebook user meets it: one call that takes paths or loaded objects, and a result that
shows itself in Jupyter (the report's run section and each explainer's numbers and figures), nothing written.

    result = xai_fer.explain_model("model.keras", "photos/*.jpg", ["saliency"], faces=True)
    result                                   # the report section, inline
    result.figures["saliency"]["image_0"]    # a matplotlib Figure
"""

from __future__ import annotations

import base64
import dataclasses
import html
import io
import json
import shutil
import tempfile
import weakref
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
    _closer: object = field(default=None, repr=False, compare=False)  # releases a whole split's maps.h5

    @property
    def maps(self):
        """A whole split's ``maps.h5`` (``all_images=True``), open read-only (h5py): ``maps/<method>`` (N, H, W),
        ``targets/<method>``, ``rows``, ``names``, ``true``, ``predicted``, ``confidence``, ``probabilities``;
        None in an ordinary run or once closed."""
        state = self.context.whole_split
        return state.maps_file if state is not None and state.maps_file.id.valid else None

    def close(self) -> None:
        """Close a whole split's ``maps.h5``: a temporary maps folder goes, a ``maps_dir`` keeps its maps (the same
        call again reads them). Done when the result is garbage-collected too; nothing to do in an ordinary run."""
        if self._closer is not None:
            self._closer()

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


def explain_model(model=None, data=None, explainers=None, options=None, *, maps_dir=None, **settings) -> Explanation:
    """Run explainers in memory and return an :class:`Explanation` that displays itself in Jupyter.

    ``model``: a loaded Keras model or a path (default: the bundled reference CNN). ``data``: a ``Dataset``,
    a path, several image files or a glob (default: the bundled sample). ``options``: explainer -> {key: value},
    Python values or the command line's strings (``{"saliency": {"indices": [0, 1, 2]}}``). ``settings``, by name:

    * ``split``, ``labels``, ``faces``, ``data_format`` as for :func:`xai_fer.data.load_dataset`; ``unsafe`` as
      for :func:`xai_fer.models.loading.load_model`;
    * ``preprocess``: the scaling the model expects, or ``auto`` to measure it
      (:mod:`xai_fer.models.scaling_choice`); ``preset``: named options for what ``options`` leaves out
      (:mod:`xai_fer.explain.presets`, e.g. ``"quick"``); ``seed``;
    * ``progress``: True shows progress bars while the explainers run (silent by default), or see
      :func:`xai_fer.explain.progress.as_progress`;
    * ``all_images=True``: every attribution method explains every image (the whole split), streamed in chunks of
      ``chunk_size`` images into a ``maps.h5`` (``maps_dtype``), computed by ``engine`` ("local", or "ray" with
      ``workers`` and ``worker_cpus``; Ray needs the model and data as paths). The maps are written in
      ``maps_dir`` (kept: an interrupted call resumes from its finished chunks, and the same call again reads
      the maps it holds), or by default in a temporary folder that goes with the result
      (:meth:`Explanation.close`). ``result.maps`` is the open ``maps.h5``."""
    from .pipeline import explain_loaded
    from .request import ExplainRequest

    request = ExplainRequest.from_settings({"model": model, "data": data, "explainers": explainers,
                                            "options": options, **settings}, caller="explain_model",
                                           refused=("out_dir", "overwrite", "max_figures", "command"))
    # The whole split's settings are checked before anything loads; its maps go to a temporary folder by default.
    whole_split = request.whole_split.working_in(Path(maps_dir or tempfile.gettempdir()))
    loaded, dataset = request.read.load()
    temporary = None
    if whole_split is not None and maps_dir is None:
        temporary = Path(tempfile.mkdtemp(prefix="xai-fer-maps-"))
        whole_split = dataclasses.replace(whole_split, work=temporary)
    try:
        explained = explain_loaded(loaded, dataset, request.run, request.write.progress, whole_split=whole_split,
                                   source=_source(request.read))
    except BaseException:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)
        raise
    result = Explanation(explained.artifacts, explained.context, explained.timings)
    if explained.context.whole_split is not None:
        result._closer = weakref.finalize(result, _release, explained.context, temporary)
    return result


def _source(read) -> dict:
    """Where the model and data come from, for an engine whose workers load them (Ray): only for paths."""
    from ..data import Dataset

    if isinstance(read.model, (str, Path, type(None))) and not isinstance(read.data, Dataset):
        return read.source(read.model_path(), read.data_source())
    return {}


def _release(context, temporary: Path | None) -> None:
    """Close the whole split's maps.h5; a temporary maps folder goes with it."""
    from .pipeline import close_whole_split

    close_whole_split(context, finished=temporary is not None)
