"""The explainer interface: one class per method, one uniform call ``explain(context, options)``.

Attribution methods (maps per image) subclass :class:`xai_fer.explain.attribution.Attribution` instead, which
implements this protocol for them and asks only for ``attribute(engine, images, targets, options)``.
"""

from __future__ import annotations

from typing import Protocol

from ..models.introspect import ModelInfo
from .artifact import Artifact
from .context import ExplainContext


class Explainer(Protocol):
    """What an explainer plugin registers.

    ``Options`` is a dataclass of typed fields (see :func:`xai_fer.options.option`); its ``__post_init__``
    raises ``ValueError`` for invalid values. ``explain`` returns an :class:`Artifact`. The two checks are
    optional (the pipeline calls them when they exist) and raise ``UserError`` so that a bad value fails in one
    line before any explainer runs.

    An explainer that reads the maps of the run's attribution methods (``context.attributions``, as
    faithfulness does) sets the class attribute ``reads_attributions = True``: the planner then runs it after
    every attribution method of the run.

    Where its results appear in ``index.html``: the class attribute ``report_group``, one of "accuracy",
    "attributions", "faithfulness", "dataset" (views of a whole dataset) or "filters" (see
    :func:`xai_fer.explain.plan.report_order`). Attribution methods and explainers that read attributions need
    not set it; an explainer with none comes after every known group, by name.
    """

    name: str
    description: str
    Options: type

    def explain(self, context: ExplainContext, options) -> Artifact: ...

    def validate(self, info: ModelInfo, options) -> None:
        """Optional: check the options against the loaded model (layer names, class indices), before the
        data is read."""

    def check(self, context: ExplainContext, options) -> None:
        """Optional: check the options against the model and the data (rows, labels) once the shared context
        exists; predictions are computed once per run, so asking for them here costs nothing."""
