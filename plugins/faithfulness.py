"""Faithfulness: which attribution map to believe.

Runs after the attribution methods of the same ``explain`` (the planner puts every explainer with
``reads_attributions = True`` after them) and scores every map they made (``context.attributions``), next to
two baselines made here on the same images: a seeded random map, and a Sobel edge map of the image, which knows
nothing of the model.

* Deletion and insertion (Petsiuk et al. 2018). Pixels are ranked by the map (signed maps by magnitude, unless
  ``signed_ranking=positive``; ties in a random order, seeded) and changed in ``steps`` equal steps of the pixel
  fraction, from none to all. Deletion replaces them by the mid-grey of the model's input scale; insertion starts
  from a Gaussian-blurred copy (sigma 5 px at 48x48, scaled with size) and puts the original pixels back. The
  curve is the softmax probability of the class the method explained; its area by the trapezoid rule over [0, 1].
  A map that finds what the model uses makes deletion fall fast (low AUC) and insertion rise fast (high AUC).
  Every map is compared with the random map on the same images (paired difference and its standard error):
  within two standard errors it is "not distinguishable from random".
* Model-parameter randomisation (Adebayo et al. 2018). The model's weights are re-initialised layer by layer from
  the output down (cascading, seeded, with each layer's own Keras initialisers), and each method is re-run on the
  randomised copy (``Attribution.compute(..., model=copy)``). Spearman rank correlation of |map| with the trained
  model's, after the top layer, half of the layers and all of them: a map that stays the same when the model it
  explains has been destroyed shows the image, not the model, and is flagged.

This module holds the options and puts the result together. The scoring is
:mod:`xai_fer.explain.faithfulness_scoring` (curves, AUCs, baselines) and :mod:`xai_fer.explain.faithfulness_verdicts`
(statistics, ranking, sentences), the check :mod:`xai_fer.explain.randomisation`, the figures
:mod:`xai_fer_plugins.faithfulness_figures`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal

from xai_fer_plugins.faithfulness_figures import curves_figure, randomization_figure, side_by_side

from xai_fer.errors import UserError
from xai_fer.explain.artifact import Artifact
from xai_fer.explain.attribution import Attribution
from xai_fer.explain.faithfulness_scoring import RANDOM, SOBEL, ScoredMaps, score_maps
from xai_fer.explain.faithfulness_verdicts import method_sentence, ranking_entry
from xai_fer.explain.randomisation import randomization_check
from xai_fer.hookspecs import hookimpl
from xai_fer.lazy import np
from xai_fer.options import option

_ARRAY_PREFIX = {RANDOM: "baseline.random", SOBEL: "baseline.sobel"}


@dataclass
class FaithfulnessOptions:
    steps: int = option(32, "equal steps of the pixel fraction (0 to 1) in the deletion and insertion curves")
    signed_ranking: Literal["magnitude", "positive"] = option(
        "magnitude", "how signed maps rank pixels: by magnitude, or positive evidence first (most negative last)")
    max_images: int = option(0, "score at most each method's first N images (0 = all it explained)")
    randomization: bool = option(True, "run the model-parameter randomisation check (re-runs every method)")
    randomization_images: int = option(
        4, "images (each method's first) re-explained on the trained model and on each randomised copy (up to 4 "
           "runs of every method on them)")
    survival_rho: float = option(
        0.5, "flag a method whose maps keep at least this mean Spearman rho with every layer randomised")
    figure_images: int = option(4, "images in the side-by-side figure (0 = none)")

    def __post_init__(self):
        if not 2 <= self.steps <= 1024:
            raise ValueError("steps must be in 2..1024")
        if not 0 <= self.max_images <= 100_000:
            raise ValueError("max_images must be in 0..100000 (0 = all)")
        if not 1 <= self.randomization_images <= 1024:
            raise ValueError("randomization_images must be in 1..1024 (randomization=false turns the check off)")
        if not 0 < self.survival_rho <= 1:
            raise ValueError("survival_rho must be in (0, 1]")
        if not 0 <= self.figure_images <= 32:
            raise ValueError("figure_images must be in 0..32")


def _planned_attributions(context) -> list[str]:
    """Attribution methods of this run that have run, or will run before this explainer (the plan is in order,
    and those the default "all" run skipped are named in ``context.skipped``)."""
    planned = [item.name for item in context.plan if isinstance(item.explainer, Attribution)
               and item.name not in context.skipped]
    return list(dict.fromkeys([*context.attributions, *planned]))


def _refusal() -> UserError:
    return UserError("faithfulness: no attribution method runs before it in this run, so there is no map to score",
                     "add one, e.g. -e saliency -e faithfulness")


def rank_maps(scored: ScoredMaps, check: dict) -> tuple[dict, list[dict]]:
    """Every map's ranking entry by name, and the entries ranked (best first, ``rank`` set)."""
    done = check["status"] == "done"
    entries = {}
    for name, scores in scored.methods.items():
        rho = check["methods"][name]["rho_all_layers"] if done else None
        entries[name] = ranking_entry(name, "method", scores, scored.paired[name][RANDOM],
                                      scored.paired[name][SOBEL], rho)
        if done:
            entries[name]["survives_randomization"] = check["methods"][name]["survives"]
    for name, scores in scored.baselines.items():
        entries[name] = ranking_entry(name, "baseline", scores, scored.baselines[RANDOM], scored.baselines[SOBEL],
                                      None)
    ranking = sorted(entries.values(), key=lambda e: -np.inf if e["score"] is None else -e["score"])
    for rank, entry in enumerate(ranking, start=1):
        entry["rank"] = rank
    return entries, ranking


def sentences(entries: dict, methods, check: dict) -> list[dict]:
    done = check["status"] == "done"
    said = [{"method": name, "sentence": method_sentence(entries[name], check["methods"][name] if done else None)}
            for name in methods]
    if not done:
        said.append({"method": "randomisation check",
                     "sentence": f"The model-parameter randomisation check did not run: {check['reason']}."})
    return said


def result_arrays(scored: ScoredMaps, rho_per_image: dict, fractions) -> dict:
    arrays = {"fractions": fractions.astype(np.float32)}
    for name, scores in {**scored.methods, **scored.baselines}.items():
        prefix = _ARRAY_PREFIX.get(name, name)
        arrays.update({f"{prefix}.rows": scores.rows, f"{prefix}.targets": scores.targets,
                       f"{prefix}.deletion_curves": scores.deletion, f"{prefix}.insertion_curves": scores.insertion,
                       f"{prefix}.deletion_auc": scores.deletion_auc.astype(np.float32),
                       f"{prefix}.insertion_auc": scores.insertion_auc.astype(np.float32)})
    for name, values in rho_per_image.items():
        arrays[f"{name}.randomization_rho"] = values.astype(np.float32)
    return arrays


def protocol(context, options: FaithfulnessOptions) -> dict:
    from xai_fer.explain.images import blur_sigma

    height, width = context.dataset.images.shape[1:3]
    grey = context.attribution_engine("probability").mid_grey
    return {
        "deletion": f"ranked pixels replaced by mid-grey ({grey:g} on the 0-255 data scale)",
        "insertion": f"ranked pixels put back into a Gaussian-blurred copy (sigma {blur_sigma(height, width):g} px)",
        "fractions": f"0, 1/{options.steps}, ..., 1 of the pixels (all channels of a pixel together)",
        "ranking": f"signed maps by {options.signed_ranking}, unsigned by value; ties in a seeded random order",
        "auc": "trapezoid rule over [0, 1]; mean and standard error over images",
        "versus_random": "paired difference to the random map on the same images; within 2 standard errors = not "
                         "distinguishable",
        "baselines": {RANDOM: "uniform noise, seeded by the run's seed and the row",
                      SOBEL: "Sobel gradient magnitude of the image (channel mean)"},
        "randomization": "cascading re-initialisation from the output down with each layer's initialisers (seeded); "
                         "Spearman rho of |map|; a constant map against a non-constant one counts 0",
    }


class Faithfulness:
    name = "faithfulness"
    description = ("which attribution map to trust: deletion/insertion AUC against a random and a Sobel map, and "
                   "the model-parameter randomisation check")
    Options = FaithfulnessOptions
    reads_attributions = True  # the planner runs it after every attribution method of the run

    def check(self, context, options) -> None:
        if not _planned_attributions(context):
            raise _refusal()

    def explain(self, context, options: FaithfulnessOptions) -> Artifact:
        if not context.attributions:
            raise _refusal()
        results = {name: _limited(result, options.max_images) for name, result in context.attributions.items()}
        scored = score_maps(context, results, options.steps, options.signed_ranking)
        check = (randomization_check(context, results, options.randomization_images, options.survival_rho)
                 if options.randomization else {"status": "off", "reason": "randomization=false"})
        rho_per_image = check.pop("rho_per_image", {})
        entries, ranking = rank_maps(scored, check)
        fractions = np.linspace(0, 1, options.steps + 1)
        figures = {"curves": functools.partial(curves_figure, {**scored.methods, **scored.baselines}, entries,
                                               fractions)}
        if check["status"] == "done":
            figures["randomization"] = functools.partial(randomization_figure, check)
        figure = side_by_side(context, results, scored, options.figure_images)
        if figure is not None:
            figures["side_by_side"] = figure
        summary = {
            "ranked_by": "insertion AUC - deletion AUC (higher is better)",
            "best": next((e["map"] for e in ranking if e["kind"] == "method"), None),
            "curve_score": "softmax probability of the class each method explained",
            "steps": options.steps,
            "randomization": check["status"],
            "ranking": [_table_row(entry) for entry in ranking],
            "sentences": sentences(entries, results, check),
            "protocol": protocol(context, options),
            "randomization_check": check,
            "details": {name: {**entry, **({"rows": results[name].rows.tolist(), "signed": bool(results[name].signed)}
                                           if name in results else {})} for name, entry in entries.items()},
        }
        return Artifact(figures=figures, arrays=result_arrays(scored, rho_per_image, fractions), summary=summary)


_TABLE_KEYS = ("rank", "map", "kind", "images", "deletion_auc", "deletion_se", "deletion_ratio", "insertion_auc",
               "insertion_se", "insertion_ratio", "score", "randomization_rho", "survives_randomization")


def _table_row(entry: dict) -> dict:
    """The ranking table's columns (the paired differences and verdicts are in ``details``)."""
    return {key: entry.get(key) for key in _TABLE_KEYS}


def _limited(result, count: int):
    """The result with only its first ``count`` images (0: all)."""
    if not count or count >= len(result.rows):
        return result
    import dataclasses

    return dataclasses.replace(result, rows=result.rows[:count], targets=result.targets[:count],
                               maps=result.maps[:count])


@hookimpl
def register_explainers(register):
    register(Faithfulness())

