"""The faithfulness explainer's figures: the mean deletion and insertion curves, the randomisation check, and
every map side by side with its mask."""

from __future__ import annotations

import functools

from xai_fer.display import figure_name
from xai_fer.explain.attribution import AttributionOptions, display_maps, show_image
from xai_fer.explain.faithfulness_scoring import RANDOM, SOBEL, random_maps, sobel_maps
from xai_fer.explain.gradients import threshold_masks
from xai_fer.lazy import np


def curves_figure(scored: dict, entries: dict, fractions):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 4.2), layout="constrained")
    axes = figure.subplots(1, 2)
    for ax, curve, arrow in ((axes[0], "deletion", "lower"), (axes[1], "insertion", "higher")):
        for name, scores in scored.items():
            style = {RANDOM: dict(color="gray", linestyle="--"), SOBEL: dict(color="saddlebrown", linestyle=":")}
            auc = entries[name][f"{curve}_auc"]
            ax.plot(fractions, getattr(scores, curve).mean(axis=0), label=f"{figure_name(name)} ({auc:.3f})",
                    **style.get(name, {}))
        ax.set_xlabel(f"fraction of pixels {'removed (mid-grey)' if curve == 'deletion' else 'put back (from blur)'}")
        ax.set_ylabel("probability of the explained class (mean)")
        ax.set_title(f"{curve} (AUC in brackets; {arrow} is better)", fontsize=10)
        ax.set_xlim(0, 1)
        ax.legend(fontsize=7)
    return figure


def randomization_figure(check: dict):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.5, 4), layout="constrained")
    ax = figure.add_subplot()
    x = list(range(len(check["stages"]) + 1))  # evenly spaced stages: "top 1" is not squeezed against "trained"
    for name, entry in check["methods"].items():
        if entry["error"]:
            continue
        means = [1.0, *(np.nan if m is None else m for m in entry["rho"])]
        errors = [0.0, *(0.0 if s is None else s for s in entry["rho_se"])]
        ax.errorbar(x, means, yerr=errors, marker="o", capsize=3, label=figure_name(name))
    threshold = next(iter(check["methods"].values()))["threshold"]
    ax.axhline(threshold, color="red", linestyle="--", linewidth=1, label=f"flag at rho >= {threshold:g}")
    ax.axhline(0, color="gray", linewidth=0.5)
    ax.set_xticks(x, ["trained", *(f"top {k}" if k < check["layers"] else f"all {k}" for k in check["stages"])])
    ax.set_xlim(-0.2, x[-1] + 0.2)
    ax.set_xlabel("layers re-initialised (from the output down)")
    ax.set_ylabel("Spearman rho of |map| with the trained model's")
    ax.set_ylim(-0.2, 1.05)
    ax.set_title("model-parameter randomisation (cascading)", fontsize=10)
    ax.legend(fontsize=7)
    return figure


def side_by_side_figure(context, rows, columns: list[tuple[str, np.ndarray, bool, float]], auc: dict):
    """Per image two rows: the original and every map (``columns``: name, maps for ``rows``, signed, mask
    percentile), then below each map its mask applied to the image; each map titled with the image's AUCs."""
    from matplotlib.figure import Figure

    width = len(columns) + 1
    figure = Figure(figsize=(1.7 * width, 3.6 * len(rows) + 0.3), layout="constrained")
    axes = np.asarray(figure.subplots(2 * len(rows), width, squeeze=False))
    for k, row in enumerate(rows):
        image = context.images([row])[0]
        top, bottom = axes[2 * k], axes[2 * k + 1]
        show_image(top[0], image)
        top[0].set_title(f"row {row}", fontsize=8)
        bottom[0].axis("off")
        for j, (name, maps, signed, percentile) in enumerate(columns, start=1):
            shown = display_maps(maps[k:k + 1], signed)
            mask, _ = threshold_masks(shown, percentile)
            top[j].imshow(shown[0], cmap="hot", vmin=0, vmax=1)
            deletion, insertion = auc[name][k]
            top[j].set_title(f"{figure_name(name)}\ndel {deletion:.2f} ins {insertion:.2f}", fontsize=7)
            show_image(bottom[j], image * mask[0][..., None])
            bottom[j].set_title(f"mask > p{percentile:g}", fontsize=7)
        for ax in (*top, *bottom):
            ax.set_xticks([])
            ax.set_yticks([])
    figure.suptitle("every map side by side: map (per-image AUCs: deletion lower, insertion higher is better) and "
                    "its mask below", fontsize=9)
    return figure


def side_by_side(context, results: dict, scored, count: int):
    """The side-by-side figure for the first ``count`` images every method explained, made when written; None
    when there is none."""
    if not count:
        return None
    first = next(iter(results.values()))
    everywhere = set.intersection(*(set(result.rows.tolist()) for result in results.values()))
    chosen = [k for k, row in enumerate(first.rows.tolist()) if row in everywhere][:count]
    if not chosen:
        return None
    rows = first.rows[chosen]
    columns, auc = [], {}
    for name, result in results.items():
        index = [int(np.flatnonzero(result.rows == row)[0]) for row in rows]
        columns.append((name, result.maps[index], result.signed, result.options.threshold_percentile))
        auc[name] = list(zip(scored.methods[name].deletion_auc[index], scored.methods[name].insertion_auc[index],
                             strict=True))
    height, width = context.dataset.images.shape[1:3]
    percentile = AttributionOptions().threshold_percentile
    columns.append((SOBEL, sobel_maps(context.images(rows)), False, percentile))
    columns.append((RANDOM, random_maps(rows, height, width, context.seed), False, percentile))
    index = [scored.pairs[(int(first.rows[k]), int(first.targets[k]))] for k in chosen]
    for name in (SOBEL, RANDOM):
        baseline = scored.baselines[name]
        auc[name] = list(zip(baseline.deletion_auc[index], baseline.insertion_auc[index], strict=True))
    return functools.partial(side_by_side_figure, context, rows.tolist(), columns, auc)

