"""Model-parameter randomisation (Adebayo et al. 2018): the model's weights are re-initialised layer by layer from
the output down (cascading, seeded, with each layer's own Keras initialisers), and each attribution method is
re-run on the randomised copy (``Attribution.compute(..., model=copy)``). Spearman rank correlation of |map| with
the trained model's, after the top layer, half of the layers and all of them: a map that stays the same when the
model it explains has been destroyed shows the image, not the model, and is flagged.
"""

from __future__ import annotations

import contextlib
import math

from xai_fer.errors import reason
from xai_fer.lazy import np

from .faithfulness_verdicts import _round, mean_se
from .progress import NoProgress

_SALT_WEIGHTS = 0xFA19  # with the run's seed: the same run draws the same re-initialised weights


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
    """The model with its top ``k`` weighted layers holding freshly initialised weights (seeded; each layer's own
    initialisers, drawn once, so every stage extends the previous one) and the rest the trained weights.

    ``in_place``: the run's model itself takes the weights of each stage (and its own back in :meth:`restore`),
    so every method runs through the functions already compiled for it (no model is cloned, traced or wrapped
    again); right only where the run's data models compute with the model's own variables (no twin holding a
    copy of a layer's weights, see :func:`shares_variables`). Otherwise a clone takes them."""

    def __init__(self, model, seed: int, in_place: bool = False):
        import keras

        keras.utils.set_random_seed(seed % 2**32)  # initialisers draw from Keras' global seed (reset per explainer)
        fresh = keras.models.clone_model(model)
        self.model = model
        self.in_place = in_place
        self.clone = fresh  # its drawn weights are kept below; every stage then sets all of its weights
        self.trained = model.get_weights()
        self.names = [layer.name for layer in weighted_layers(model)]
        self.fresh = [layer.get_weights() for layer in weighted_layers(fresh)]
        if [[w.shape for w in ws] for ws in self.fresh] != [[w.shape for w in layer.get_weights()]
                                                            for layer in weighted_layers(model)]:
            raise ValueError("its clone does not have the same layers")

    def copy(self, randomised: int):
        """The model with its top ``randomised`` weighted layers re-initialised: the run's model (``in_place``)
        or the clone that drew the fresh weights (cloning a model takes seconds). One model serves every stage,
        its weights set anew each time: compiled functions read the weights when called, so each method is
        traced at most once for the whole check. A softmax fused into the top layer has a pre-softmax twin that
        copied that layer's weights when it was built (``logits_model``; the reason such a model is never
        randomised in place): on the clone, every stage re-initialises the top layer with the same drawn
        weights, so the twin built at the first stage stays right for all of them."""
        model = self.model if self.in_place else self.clone
        model.set_weights(self.trained)
        for layer, weights in zip(weighted_layers(model)[:randomised], self.fresh[:randomised], strict=True):
            layer.set_weights(weights)
        return model

    def restore(self) -> None:
        """The run's model with its trained weights again (after an in-place check, whatever stopped it)."""
        if self.in_place:
            self.model.set_weights(self.trained)


def shares_variables(context) -> bool:
    """Whether the run's data models (pre-softmax and probabilities) compute with the model's own variables
    only: then setting the model's weights sets theirs, and the check can randomise the model in place."""
    own = {id(variable) for variable in context.model.weights}
    return all({id(variable) for variable in context.data_model(logits=logits).weights} <= own
               for logits in (True, False))


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


def randomization_check(context, results: dict, images: int, threshold: float) -> dict:
    """Spearman rho of |map| between the trained model and cascading randomised copies, per method and stage,
    on each method's first ``images`` images; a method whose maps keep a mean rho of at least ``threshold``
    with every layer randomised ``survives`` (is flagged)."""
    seed = (context.seed + _SALT_WEIGHTS) % 2**32
    try:
        cascade = Cascade(context.model, seed, in_place=shares_variables(context))
    except Exception as exc:  # noqa: BLE001 - clone_model fails in many ways (subclassed models, custom layers)
        return {"status": "skipped", "reason": f"the model cannot be cloned ({type(exc).__name__}: {reason(exc)})"}
    layers = len(cascade.names)
    if not layers:
        return {"status": "skipped", "reason": "the model has no weights to randomise"}
    stages = stage_counts(layers)
    rho = stage_correlations(context, results, cascade, stages, images)
    per_method = {name: _method_check(values, layers, threshold, error)
                  for name, (values, error) in rho.items()}
    return {"status": "done", "layers": layers, "stages": stages,
            "stage_layers": [cascade.names[:count] for count in stages], "seed": seed, "methods": per_method,
            "rho_per_image": {name: values for name, (values, _) in rho.items()}}


def stage_correlations(context, results: dict, cascade: Cascade, stages: list[int], images: int) -> dict:
    """Per method, (stages, images) Spearman rho of |map| on its first ``images`` images between the trained
    model and each stage's copy (computed the same way, so seeded noise or masks are paired), and the reason it
    could not be re-run (None when it ran). The trained model's maps are the run's own for a method whose maps
    do not depend on the chunk they were made in (``batch_independent``), else computed here on those images."""
    chosen = slice(0, images)
    errors: dict[str, str] = {}
    rho = {name: np.full((len(stages), len(result.rows[chosen])), np.nan) for name, result in results.items()}
    reused = {name for name, result in results.items() if _reusable(result)}
    runs = len(results) * len(stages) + len(results) - len(reused)
    with (context.progress or NoProgress()).task("faithfulness: randomisation check (method runs)", runs) as task:

        def recompute(name, model):
            maps = _recompute(results[name], context, chosen, model, errors, name)
            task.advance(1)
            return maps

        trained = {name: _as_compared(results[name].maps[chosen]) if name in reused else recompute(name, None)
                   for name in results}
        with _retracing_expected():
            try:
                for s, count in enumerate(stages):
                    copy = cascade.copy(count)
                    for name in results:
                        maps = recompute(name, copy) if name not in errors else None
                        if maps is not None:
                            rho[name][s] = spearman(np.abs(trained[name]), np.abs(maps))
            finally:
                cascade.restore()
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
    return _as_compared(out.values)


def _as_compared(maps) -> np.ndarray:
    return np.nan_to_num(np.asarray(maps, dtype=np.float64))


def _reusable(result) -> bool:
    """Whether the run's maps stand for the trained model's in the check: the method's maps do not depend on
    their chunk, and they are held as computed (float32 in memory; a whole-split run may keep float16 maps in
    its maps file, whose rounding would tie ranks the copies' maps do not tie)."""
    maps = result.maps
    return bool(getattr(result.method, "batch_independent", False)) and isinstance(maps, np.ndarray) \
        and maps.dtype == np.float32

