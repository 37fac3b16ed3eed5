"""Method disagreement: the images on which the run's attribution methods tell different stories.

For every image every method explained, and every pair of methods: the Spearman rank correlation of their maps'
pixels (signed maps by magnitude); an image's agreement is the mean over the pairs. The images of lowest
agreement are shown with every method's map, beside a histogram of the agreement over all images and a table of
the mean correlation per pair. Needs two methods or more. Reads ``context.attributions`` a block of rows at a
time, so it works on a whole split (``--all-images``) as on an ordinary run.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from xai_fer.explain.artifact import Artifact
from xai_fer.explain.views import (
    DatasetView,
    ViewOptions,
    chosen_results,
    common_positions,
    images_with_maps,
    rounded,
    shown_at,
)
from xai_fer.hookspecs import hookimpl
from xai_fer.lazy import np
from xai_fer.options import option

RANK_BLOCK = 256  # images ranked at once: per method 256 x H x W float64 ranks (4.7 MB at 48x48)


@dataclass
class MethodDisagreementOptions(ViewOptions):
    count: int = option(6, "images of lowest agreement shown")

    def __post_init__(self):
        if not 1 <= self.count <= 100:
            raise ValueError("count must be in 1..100")


def centred_ranks(maps) -> np.ndarray:
    """Per row of an (N, ...) array: the ranks of its values (ties share their mean rank), minus their mean."""
    from scipy.stats import rankdata

    ranks = rankdata(np.reshape(maps, (len(maps), -1)), axis=1)
    return ranks - ranks.mean(axis=1, keepdims=True)


def ranked_correlation(a, b) -> np.ndarray:
    """Pearson correlation per row of two :func:`centred_ranks` arrays (Spearman rho); NaN where a row is
    constant."""
    norms = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norms > 0, (a * b).sum(axis=1) / np.where(norms > 0, norms, 1), np.nan)


def row_spearman(first, second) -> np.ndarray:
    """Spearman rank correlation per row of two (N, ...) arrays (ties share their mean rank); NaN where a row
    is constant."""
    return ranked_correlation(centred_ranks(first), centred_ranks(second))


def pair_correlations(results: dict, positions: dict, count: int) -> dict[tuple[str, str], np.ndarray]:
    """(method, method) -> per-image Spearman rho over the ``count`` common images, read a block at a time; each
    method's ranks are computed once per block, in float64, so the block is kept smaller than a view's reading
    block: the memory a run needs stays small whatever the number of images."""
    pairs = list(itertools.combinations(results, 2))
    rho = {pair: np.empty(count, np.float64) for pair in pairs}
    for start in range(0, count, RANK_BLOCK):
        stop = min(start + RANK_BLOCK, count)
        ranks = {name: centred_ranks(shown_at(result, positions[name][start:stop]))
                 for name, result in results.items()}
        for first, second in pairs:
            rho[(first, second)][start:stop] = ranked_correlation(ranks[first], ranks[second])
    return rho


def lowest(agreement, count: int) -> np.ndarray:
    """Positions of the ``count`` lowest finite agreements, lowest first (ties by position)."""
    finite = np.flatnonzero(np.isfinite(agreement))
    return finite[np.lexsort((finite, agreement[finite]))][:count]


def disagreement_figure(context, rows, chosen, agreement, results: dict, positions: dict):
    names = context.class_names
    titles = [f"row {rows[p]}: agreement {agreement[p]:.2f}" for p in chosen]
    labels = [f"pred {names[context.predictions[rows[p]]]}" for p in chosen]
    return images_with_maps(context, rows, chosen, results, positions, titles, labels,
                            "the images the methods disagree on most (lowest mean Spearman rho between methods)")


def histogram_figure(agreement, rho: dict):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 3.5), layout="constrained")
    ax = figure.add_subplot()
    finite = agreement[np.isfinite(agreement)]
    ax.hist(finite, bins=40, range=(-1, 1), color="gray", label="mean over pairs")
    for (first, second), values in rho.items():
        ax.axvline(np.nanmean(values) if np.isfinite(values).any() else 0, linestyle="--", linewidth=1,
                   label=f"{first} vs {second}: mean", color=None)
    ax.set_xlabel("Spearman rho between methods' maps, per image")
    ax.set_ylabel("images")
    ax.legend(fontsize=7)
    return figure


class MethodDisagreement(DatasetView):
    name = "method-disagreement"
    description = "images whose maps the attribution methods disagree on most (lowest mean rank correlation)"
    Options = MethodDisagreementOptions
    minimum_methods = 2  # disagreement needs two methods to compare

    def explain(self, context, options) -> Artifact:
        results = chosen_results(context, options)
        rows, positions = common_positions(results)
        rho = pair_correlations(results, positions, len(rows))
        with np.errstate(invalid="ignore"):
            stacked = np.stack(list(rho.values()))
            counted = np.isfinite(stacked).sum(axis=0)
            agreement = np.where(counted > 0, np.nansum(stacked, axis=0) / np.maximum(counted, 1), np.nan)
        chosen = lowest(agreement, options.count)
        pairs = []
        for (first, second), values in rho.items():
            finite = values[np.isfinite(values)]
            se = finite.std(ddof=1) / math.sqrt(len(finite)) if len(finite) > 1 else None
            pairs.append({"methods": [first, second], "mean_rho": rounded(finite.mean() if len(finite) else None),
                          "rho_se": rounded(se, 4), "images": int(len(finite))})
        names = context.class_names
        summary = {"methods": list(results), "images": int(len(rows)), "pairs": pairs,
                   "agreement": "per image, the mean over pairs of methods of the Spearman rho of their maps "
                                "(signed maps by magnitude); undefined where a map is constant",
                   "undefined": int((~np.isfinite(agreement)).sum()),
                   "lowest": [{"row": int(rows[p]), "agreement": rounded(agreement[p]),
                               "predicted": names[context.predictions[rows[p]]],
                               **context.dataset.row_label(int(rows[p]))} for p in chosen]}
        figures = {"agreement": histogram_figure(agreement, rho)}
        if len(chosen):
            figures["lowest"] = disagreement_figure(context, rows, chosen, agreement, results, positions)
        arrays = {"rows": rows, "agreement": agreement.astype(np.float32),
                  **{f"rho.{a}.{b}": values.astype(np.float32) for (a, b), values in rho.items()}}
        return Artifact(figures=figures, arrays=arrays, summary=summary)


@hookimpl
def register_explainers(register):
    register(MethodDisagreement())
