"""Everything an explainer works from: the model seen from the data (its introspection, the input adapter, the
data, and predictions computed once: :class:`~xai_fer.models.seen.SeenModel`), and what the explainers of a run
share besides."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..models.seen import SeenModel
from .progress import NoProgress, Progress


@dataclass
class ExplainContext(SeenModel):
    """A :class:`~xai_fer.models.seen.SeenModel` (``model``, ``info``, ``dataset``, ``adapter``, ``seed``,
    ``batch_size``, ``cache``, ``data_model``, ``probabilities``, ``predictions``, ``class_names``, ...) with the
    state of an explaining run and the attribution engine."""

    skipped: dict = field(default_factory=dict)  # explainer name -> why it does not apply (default "all" only)
    # Attribution method name -> its AttributionResult in this run, for explainers that compare maps
    # (faithfulness). Filled by xai_fer.explain.attribution.Attribution.explain.
    attributions: dict = field(default_factory=dict, repr=False)
    # The run's planned explainers (xai_fer.explain.plan.PlannedExplainer), in order, set before any check: an
    # explainer that reads others' results (faithfulness) can tell whether they will run.
    plan: list = field(default_factory=list, repr=False)
    # Where explainers report the progress of long loops (xai_fer.explain.progress): silent unless the caller
    # installs a display (the CLI does on a terminal).
    progress: Progress = field(default_factory=NoProgress, repr=False)
    # A whole-split run (--all-images) in progress (xai_fer.explain.wholesplit.WholeSplitState): every attribution
    # method's maps are in its maps.h5 and in ``attributions``; None in an ordinary run.
    whole_split: object = field(default=None, repr=False)

    def differentiated_score(self, score: str) -> str:
        """The score an attribution on ``score`` really differentiates: "logit" where the model has pre-softmax
        scores, else "probability" (a sigmoid or a softmax hidden in a custom layer)."""
        return "logit" if score == "logit" and self.pre_softmax_available else "probability"

    def attribution_engine(self, score: str = "logit", model=None, batch_size: int | None = None):
        """The compiled, batched gradient and forward machinery for attribution methods
        (:class:`~xai_fer.explain.engine.AttributionEngine`), on ``score`` ("logit": pre-softmax class scores
        where the model has them, else its probabilities; "probability"). ``model``: another model of the
        same architecture (see :meth:`data_model`)."""
        from ..models.introspect import get_layer_path
        from .engine import AttributionEngine

        logits = self.differentiated_score(score) == "logit"
        root = self.model if model is None else model
        scores = self.data_model(logits=logits, model=model)
        return AttributionEngine(
            model=scores, probability_model=self.data_model(logits=False, model=model),
            score="logit" if logits else "probability", batch_size=batch_size or self.batch_size, seed=self.seed,
            find_layer=lambda path: get_layer_path(root, path), root_model=root, info=self.info,
            progress=self.progress)
