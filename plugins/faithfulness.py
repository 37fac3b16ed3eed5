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
"""

from __future__ import annotations

import contextlib
import functools
import math
from dataclasses import dataclass
from typing import Literal

from xai_fer.errors import UserError, reason
from xai_fer.explain.artifact import Artifact
from xai_fer.explain.attribution import Attribution, AttributionOptions, display_maps, show_image
from xai_fer.explain.gradients import threshold_masks
from xai_fer.hookspecs import hookimpl
from xai_fer.lazy import np
from xai_fer.options import option

RANDOM, SOBEL = "random map", "Sobel edge map"  # baselines: names no attribution method can have (a space)
_ARRAY_PREFIX = {RANDOM: "baseline.random", SOBEL: "baseline.sobel"}
# Seeds of the random generators, with the run's seed: the same run draws the same random maps, tie orders and
# re-initialised weights.
_SALT_RANDOM_MAP, _SALT_TIES, _SALT_WEIGHTS = 0xFA17, 0xFA18, 0xFA19
_PERTURBED_BYTES = 48 * 2**20  # perturbed copies made at once (deletion and insertion): memory stays bounded


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


# ---------------------------------------------------------------------------------------------------------
# Maps: the baselines, and the order in which a map changes the pixels.


def random_maps(rows, height: int, width: int, seed: int) -> np.ndarray:
    """One uniform random map per dataset row, seeded by the run's seed and the row: every method that explains
    a row is compared with the same random map."""
    return np.stack([np.random.default_rng([seed, _SALT_RANDOM_MAP, int(row)]).random((height, width))
                     for row in rows]).astype(np.float32) if len(rows) else np.zeros((0, height, width), np.float32)


def sobel_maps(images) -> np.ndarray:
    """Edge strength of each image (Sobel gradient magnitude of the channel mean): where the image changes, with
    no knowledge of the model."""
    from scipy.ndimage import sobel

    gray = np.asarray(images, dtype=np.float32).mean(axis=-1)
    return np.hypot(sobel(gray, axis=1, mode="reflect"), sobel(gray, axis=2, mode="reflect")).astype(np.float32)


def pixel_order(maps, signed: bool, ranking: str, rows, seed: int) -> np.ndarray:
    """(N, H*W) pixel indices per image, most important first: by the map's value (signed maps by magnitude, or
    by value with ``ranking="positive"``). Equal values come in a random order (seeded by row), so a map that is
    flat somewhere (zero gradients, upsampled cells) does not delete its flat part from the top-left corner."""
    values = np.nan_to_num(np.asarray(maps, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    values = values.reshape(len(values), -1)
    if signed and ranking == "magnitude":
        values = np.abs(values)
    order = np.empty(values.shape, np.int64)
    for k, row in enumerate(rows):
        shuffle = np.random.default_rng([seed, _SALT_TIES, int(row)]).permutation(values.shape[1])
        order[k] = shuffle[np.argsort(-values[k, shuffle], kind="stable")]
    return order


# ---------------------------------------------------------------------------------------------------------
# Deletion and insertion.


def step_counts(pixels: int, steps: int) -> np.ndarray:
    """Pixels changed at each of the ``steps + 1`` points: fractions 0, 1/steps, ..., 1 of ``pixels``."""
    return np.round(np.linspace(0, pixels, steps + 1)).astype(np.int64)


def perturbation_curves(engine, images, targets, orders, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Deletion and insertion curves, each (N, steps + 1): the softmax probability of each image's target class
    with the first ``fraction`` of its ranked pixels replaced by mid-grey (deletion), or put back into a blurred
    copy (insertion). Forward passes only, through the engine; the perturbed copies are made a block of
    (image, step) pairs at a time, so memory stays bounded whatever the number of images, steps or pixels."""
    from xai_fer.explain.images import gaussian_blur

    images = np.asarray(images, dtype=np.float32)
    n, height, width, channels = images.shape
    counts = step_counts(height * width, steps)
    deletion = np.zeros(n * (steps + 1), np.float32)  # pair (image k, step j) at k * (steps + 1) + j
    insertion = np.zeros(n * (steps + 1), np.float32)
    block = max(1, _PERTURBED_BYTES // (2 * images[0].nbytes))
    for start in range(0, len(deletion), block):
        pairs = np.arange(start, min(start + block, len(deletion)))
        shown, which = np.unique(pairs // (steps + 1), return_inverse=True)
        rank = np.empty_like(orders[shown])  # rank[i, pixel] = the pixel's place in image i's order
        np.put_along_axis(rank, orders[shown], np.arange(height * width)[None], axis=1)
        changed = (rank[which] < counts[pairs % (steps + 1), None]).reshape(-1, height, width, 1)
        original = images[shown][which]
        deleted = np.where(changed, np.float32(engine.mid_grey), original)
        inserted = np.where(changed, original, gaussian_blur(images[shown])[which])
        classes = np.asarray(targets)[shown][which]
        scores = engine.scores(np.concatenate([deleted, inserted]), np.tile(classes, 2), probabilities=True)
        deletion[pairs], insertion[pairs] = scores[:len(pairs)], scores[len(pairs):]
    return deletion.reshape(n, steps + 1), insertion.reshape(n, steps + 1)


def trapezoid_auc(curves) -> np.ndarray:
    """Area under each curve sampled at equal steps over [0, 1] (trapezoid rule)."""
    curves = np.asarray(curves, dtype=np.float64)
    return ((curves[:, 1:] + curves[:, :-1]).sum(axis=1) / (2 * (curves.shape[1] - 1))).astype(np.float64)


# ---------------------------------------------------------------------------------------------------------
# Statistics and the sentences they become.


def mean_se(values) -> tuple[float | None, float | None]:
    """Mean and standard error of the mean (None with no values; SE None with one)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if not len(values):
        return None, None
    se = float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else None
    return float(values.mean()), se


def comparison(difference: float | None, se: float | None, lower_is_better: bool) -> str:
    """``better``, ``worse`` or ``not distinguishable`` for a paired mean difference (this map minus the other):
    within two standard errors it cannot be told apart; ``too few images`` without a standard error."""
    if difference is None or se is None:
        return "too few images"
    if difference == 0 or abs(difference) < 2 * se:
        return "not distinguishable"
    return "better" if (difference < 0) == lower_is_better else "worse"


def verdict(difference: float | None, se: float | None, lower_is_better: bool, other: str = "random") -> str:
    """The comparison as a phrase: ``better than random``, ``not distinguishable from random``..."""
    word = comparison(difference, se, lower_is_better)
    if word == "too few images":
        return f"too few images to compare with {other}"
    return f"{word} {'from' if word == 'not distinguishable' else 'than'} {other}"


@dataclass
class Scores:
    """One map's deletion and insertion curves on its images."""

    rows: np.ndarray
    targets: np.ndarray
    deletion: np.ndarray  # (N, steps + 1)
    insertion: np.ndarray

    @property
    def deletion_auc(self) -> np.ndarray:
        return trapezoid_auc(self.deletion)

    @property
    def insertion_auc(self) -> np.ndarray:
        return trapezoid_auc(self.insertion)

    def subset(self, index) -> Scores:
        return Scores(self.rows[index], self.targets[index], self.deletion[index], self.insertion[index])


def _round(value):
    return None if value is None else round(float(value), 6)


def ranking_entry(name: str, kind: str, scores: Scores, random: Scores, sobel: Scores, rho) -> dict:
    """One row of the ranking table: the map's AUCs (mean, SE), the ratio of its mean to the random map's on the
    same images, the paired differences to the random and Sobel maps with their SEs, and the verdicts."""
    entry = {"map": name, "kind": kind, "images": int(len(scores.rows))}
    for curve, lower in (("deletion", True), ("insertion", False)):
        auc = getattr(scores, f"{curve}_auc")
        mean, se = mean_se(auc)
        random_mean, _ = mean_se(getattr(random, f"{curve}_auc"))
        entry[f"{curve}_auc"], entry[f"{curve}_se"] = _round(mean), _round(se)
        entry[f"{curve}_ratio"] = _round(mean / random_mean) if mean is not None and random_mean else None
        for other, label in ((random, "random"), (sobel, "sobel")):
            difference, difference_se = mean_se(auc - getattr(other, f"{curve}_auc"))
            entry[f"{curve}_vs_{label}"] = _round(difference)
            entry[f"{curve}_vs_{label}_se"] = _round(difference_se)
            entry[f"{curve}_vs_{label}_verdict"] = comparison(difference, difference_se, lower)
    entry["score"] = _round(entry["insertion_auc"] - entry["deletion_auc"]) if entry["deletion_auc"] is not None \
        else None
    entry["randomization_rho"] = _round(rho)
    return entry


def _with_se(value: float, se: float | None, sign: str = "") -> str:
    return f"{value:{sign}.3f}" + (f" ± {se:.3f}" if se is not None else "")


def curve_phrase(entry: dict, curve: str) -> str:
    """``deletion AUC 0.249 ± 0.010 (lower is better): not distinguishable from random (random 0.254,
    difference -0.005 ± 0.006)``."""
    lower = curve == "deletion"
    difference, se = entry[f"{curve}_vs_random"], entry[f"{curve}_vs_random_se"]
    auc = entry[f"{curve}_auc"]
    return (f"{curve} AUC {_with_se(auc, entry[f'{curve}_se'])} ({'lower' if lower else 'higher'} is better): "
            f"{verdict(difference, se, lower)} (random {auc - difference:.3f}, difference "
            f"{_with_se(difference, se, '+')})")


def method_sentence(entry: dict, randomization: dict | None) -> str:
    """One plain sentence: how the map does against the random map and the Sobel map, and under randomisation."""
    sobel = [comparison(entry[f"{curve}_vs_sobel"], entry[f"{curve}_vs_sobel_se"], curve == "deletion")
             for curve in ("deletion", "insertion")]
    sobel_text = f"{sobel[0]} on both" if sobel[0] == sobel[1] else f"{sobel[0]} on deletion, {sobel[1]} on insertion"
    sentence = (f"{entry['map']} ({entry['images']} images): {curve_phrase(entry, 'deletion')}; "
                f"{curve_phrase(entry, 'insertion')}; against the Sobel edge map: {sobel_text}")
    if randomization:
        sentence += f"; {randomization_phrase(randomization)}"
    return sentence + "."


def randomization_phrase(check: dict) -> str:
    if check.get("error"):
        return f"the randomisation check could not re-run it ({check['error']})"
    rho, layers = check["rho_all_layers"], check["layers"]
    if rho is None:
        return f"its maps with all {layers} layers randomised cannot be compared (constant maps)"
    if check["survives"]:
        return (f"FLAGGED: its maps survive the randomisation of all {layers} layers (Spearman rho {rho:.2f} >= "
                f"{check['threshold']:g}): they follow the image more than the model")
    return f"its maps change when the model's {layers} layers are randomised (Spearman rho {rho:.2f})"


# ---------------------------------------------------------------------------------------------------------
# Model-parameter randomisation.


def spearman(first, second) -> np.ndarray:
    """Per image, Spearman's rank correlation of two maps (ties get their average rank). A map that is constant
    while the other is not has lost every ranking: 0; both constant: undefined (NaN)."""
    from scipy.stats import rankdata

    a = rankdata(np.asarray(first, np.float64).reshape(len(first), -1), axis=1)
    b = rankdata(np.asarray(second, np.float64).reshape(len(second), -1), axis=1)
    a -= a.mean(axis=1, keepdims=True)
    b -= b.mean(axis=1, keepdims=True)
    norm_a, norm_b = np.sqrt((a * a).sum(axis=1)), np.sqrt((b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = (a * b).sum(axis=1) / (norm_a * norm_b)
    rho[(norm_a == 0) != (norm_b == 0)] = 0.0
    return np.clip(rho, -1, 1)


def weighted_layers(model) -> list:
    """The layers that hold weights, inside nested models too, from the output side down (reverse of the
    model's topological order)."""
    found = []

    def walk(layer):
        inner = getattr(layer, "layers", None)
        if inner is not None and layer is not model and not layer.weights:
            return
        if inner is not None:
            for sub in inner:
                walk(sub)
        elif layer.weights:
            found.append(layer)

    walk(model)
    return found[::-1]


def stage_counts(layers: int) -> list[int]:
    """How many layers are randomised at each stage: the top one, half of them, all (fewer when they coincide)."""
    return sorted({1, math.ceil(layers / 2), layers})


class Cascade:
    """Copies of ``model`` whose top ``k`` weighted layers hold freshly initialised weights (seeded; each layer's
    own initialisers, drawn once, so every stage extends the previous one) and the rest the trained weights."""

    def __init__(self, model, seed: int):
        import keras

        keras.utils.set_random_seed(seed % 2**32)  # initialisers draw from Keras' global seed (reset per explainer)
        fresh = keras.models.clone_model(model)
        self.model = model
        self.clone = None
        self.trained = model.get_weights()
        self.names = [layer.name for layer in weighted_layers(model)]
        self.fresh = [layer.get_weights() for layer in weighted_layers(fresh)]
        if [[w.shape for w in ws] for ws in self.fresh] != [[w.shape for w in layer.get_weights()]
                                                            for layer in weighted_layers(model)]:
            raise ValueError("its clone does not have the same layers")

    def copy(self, randomised: int):
        """The model with its top ``randomised`` weighted layers re-initialised. One clone serves every stage,
        its weights set anew each time: compiled functions read the weights when called, so each method is
        traced once for the whole check rather than once per stage. A softmax fused into the top layer has a
        pre-softmax twin that copied that layer's weights when it was built (``logits_model``): every stage
        re-initialises the top layer with the same drawn weights, so the copy stays right for all of them."""
        import keras

        if self.clone is None:
            self.clone = keras.models.clone_model(self.model)
        self.clone.set_weights(self.trained)
        for layer, weights in zip(weighted_layers(self.clone)[:randomised], self.fresh[:randomised], strict=True):
            layer.set_weights(weights)
        return self.clone


@contextlib.contextmanager
def _retracing_expected():
    """The randomised copy is a new model whose compiled functions are traced anew: TensorFlow's warning about
    frequent retracing is expected here, and no advice for the user."""
    import logging

    logger = logging.getLogger("tensorflow")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _forget(context, model) -> None:
    """Drop what the context built around the randomised copy (its data and score models), so it does not stay
    in memory after the check."""
    for key in [k for k in context.cache if isinstance(k, tuple) and any(part is model for part in k)]:
        del context.cache[key]


def randomization_check(context, results: dict, options: FaithfulnessOptions) -> dict:
    """Spearman rho of |map| between the trained model and cascading randomised copies, per method and stage."""
    if not options.randomization:
        return {"status": "off", "reason": "randomization=false"}
    seed = (context.seed + _SALT_WEIGHTS) % 2**32
    try:
        cascade = Cascade(context.model, seed)
    except Exception as exc:  # noqa: BLE001 - clone_model fails in many ways (subclassed models, custom layers)
        return {"status": "skipped", "reason": f"the model cannot be cloned ({type(exc).__name__}: {reason(exc)})"}
    layers = len(cascade.names)
    if not layers:
        return {"status": "skipped", "reason": "the model has no weights to randomise"}
    stages = stage_counts(layers)
    rho = stage_correlations(context, results, cascade, stages, options.randomization_images)
    per_method = {name: _method_check(values, layers, options.survival_rho, error)
                  for name, (values, error) in rho.items()}
    return {"status": "done", "layers": layers, "stages": stages,
            "stage_layers": [cascade.names[:count] for count in stages], "seed": seed, "methods": per_method,
            "rho_per_image": {name: values for name, (values, _) in rho.items()}}


def stage_correlations(context, results: dict, cascade: Cascade, stages: list[int], images: int) -> dict:
    """Per method, (stages, images) Spearman rho of |map| on its first ``images`` images between the trained
    model and each stage's copy (both computed here, the same way, so seeded noise or masks are paired), and
    the reason it could not be re-run (None when it ran)."""
    chosen = slice(0, images)
    errors: dict[str, str] = {}
    rho = {name: np.full((len(stages), len(result.rows[chosen])), np.nan) for name, result in results.items()}
    trained = {name: _recompute(result, context, chosen, None, errors, name) for name, result in results.items()}
    with _retracing_expected():
        try:
            for s, count in enumerate(stages):
                copy = cascade.copy(count)
                for name, result in results.items():
                    if name not in errors:
                        maps = _recompute(result, context, chosen, copy, errors, name)
                        if maps is not None:
                            rho[name][s] = spearman(np.abs(trained[name]), np.abs(maps))
        finally:
            if cascade.clone is not None:
                _forget(context, cascade.clone)
    return {name: (rho[name], errors.get(name)) for name in results}


def _method_check(rho, layers: int, threshold: float, error: str | None) -> dict:
    means = [mean_se(values) for values in rho]
    last = means[-1][0]
    return {"images": int(rho.shape[1]), "layers": layers, "rho": [_round(m) for m, _ in means],
            "rho_se": [_round(se) for _, se in means], "rho_all_layers": _round(last), "threshold": threshold,
            "survives": bool(last is not None and last >= threshold), "undefined": int(np.isnan(rho).sum()),
            "error": error}


def _recompute(result, context, index, model, errors: dict, name: str):
    """The method's maps for its chosen rows on ``model`` (None: the trained one), exactly as it made them, or
    None with the reason kept in ``errors`` when it cannot run there."""
    try:
        out = result.method.compute(context, result.rows[index], result.targets[index], result.options, model=model)
    except Exception as exc:  # noqa: BLE001 - a third-party method may fail on a copy; the rest of the check stands
        errors[name] = f"{type(exc).__name__}: {reason(exc)}"
        return None
    return np.nan_to_num(np.asarray(out.values, dtype=np.float64))


# ---------------------------------------------------------------------------------------------------------
# Figures.


def curves_figure(scored: dict, entries: dict, fractions):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 4.2), layout="constrained")
    axes = figure.subplots(1, 2)
    for ax, curve, arrow in ((axes[0], "deletion", "lower"), (axes[1], "insertion", "higher")):
        for name, scores in scored.items():
            style = {RANDOM: dict(color="gray", linestyle="--"), SOBEL: dict(color="saddlebrown", linestyle=":")}
            auc = entries[name][f"{curve}_auc"]
            ax.plot(fractions, getattr(scores, curve).mean(axis=0), label=f"{name} ({auc:.3f})",
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
        ax.errorbar(x, means, yerr=errors, marker="o", capsize=3, label=name)
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
            top[j].set_title(f"{name}\ndel {deletion:.2f} ins {insertion:.2f}", fontsize=7)
            show_image(bottom[j], image * mask[0][..., None])
            bottom[j].set_title(f"mask > p{percentile:g}", fontsize=7)
        for ax in (*top, *bottom):
            ax.set_xticks([])
            ax.set_yticks([])
    figure.suptitle("every map side by side: map (per-image AUCs: deletion lower, insertion higher is better) and "
                    "its mask below", fontsize=9)
    return figure


# ---------------------------------------------------------------------------------------------------------
# The explainer.


def _planned_attributions(context) -> list[str]:
    """Attribution methods of this run that have run, or will run before this explainer (the plan is in order,
    and those the default "all" run skipped are named in ``context.skipped``)."""
    planned = [item.name for item in context.plan if isinstance(item.explainer, Attribution)
               and item.name not in context.skipped]
    return list(dict.fromkeys([*context.attributions, *planned]))


def _refusal() -> UserError:
    return UserError("faithfulness: no attribution method runs before it in this run, so there is no map to score",
                     "add one, e.g. -e saliency -e faithfulness")


@dataclass
class _Scored:
    """Deletion and insertion of every method's maps, of the baselines on every image any method explained,
    and, per method, the baselines on its own images (for the paired comparison)."""

    methods: dict  # name -> Scores
    baselines: dict  # RANDOM / SOBEL -> Scores over ``pairs``
    paired: dict  # name -> {RANDOM: Scores, SOBEL: Scores} on that method's (row, target) pairs
    pairs: dict  # (row, target) -> index into the baselines' rows


def score_maps(context, results: dict, options: FaithfulnessOptions) -> _Scored:
    engine = context.attribution_engine("probability")
    height, width = context.dataset.images.shape[1:3]

    def score(rows, targets, maps, signed):
        orders = pixel_order(maps, signed, options.signed_ranking, rows, context.seed)
        return Scores(rows, targets, *perturbation_curves(engine, context.images(rows), targets, orders,
                                                          options.steps))

    pairs = {}
    for result in results.values():
        for row, target in zip(result.rows.tolist(), result.targets.tolist(), strict=True):
            pairs.setdefault((row, target), len(pairs))
    rows = np.array([row for row, _ in pairs], np.int64)
    targets = np.array([target for _, target in pairs], np.int64)
    baselines = {RANDOM: score(rows, targets, random_maps(rows, height, width, context.seed), False),
                 SOBEL: score(rows, targets, sobel_maps(context.images(rows)), False)}
    methods, paired = {}, {}
    for name, result in results.items():
        methods[name] = score(result.rows, result.targets, result.maps, result.signed)
        index = np.array([pairs[pair] for pair in zip(result.rows.tolist(), result.targets.tolist(), strict=True)],
                         np.int64)
        paired[name] = {key: scores.subset(index) for key, scores in baselines.items()}
    return _Scored(methods, baselines, paired, pairs)


def rank_maps(scored: _Scored, check: dict) -> tuple[dict, list[dict]]:
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


def result_arrays(scored: _Scored, rho_per_image: dict, fractions) -> dict:
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


def side_by_side(context, results: dict, scored: _Scored, count: int):
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
        scored = score_maps(context, results, options)
        check = randomization_check(context, results, options)
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
