"""``--preprocess auto``: which pixel scaling a model expects, decided from evidence.

A model trained on pixels scaled one way and fed them scaled another still answers, just worse (a mini-Xception
trained on [-1, 1] loses 12 points of accuracy on [0, 1]), so nothing fails to warn the user. ``auto`` therefore
tries every candidate scaling on a small seeded sample and keeps the one the model does best with:

* labelled data: accuracy on a class-stratified sample (each class equally represented, so a frequent class
  cannot decide alone);
* unlabelled data: a guess, from the model's confidence where it stays spread over the classes: the mutual
  information between image and prediction, H(mean prediction) - mean H(prediction). Plain mean confidence is
  no use here: fed pixels 255 times too large, a network saturates and answers one or two classes at 99.9%
  confidence (measured on the reference CNN wrapped to expect [0, 1], [-1, 1] and standardised pixels: mean
  confidence picked ``raw`` for all three, the mutual information picked the right scaling for all four).

The best candidate is taken; when another is within two standard errors of it (of their paired per-image
difference) the choice says it was a close call, and the command line warns and names ``--preprocess``.
A model that scales its own input (a Rescaling or Normalization layer for 0-255 pixels) takes them raw,
without the search.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from xai_fer.lazy import np

from .adapt import InputAdapter, resolve_scaling

CANDIDATES = ("unit", "symmetric", "raw", "standardize")  # of equal scores, the first is taken
SAMPLE_SIZE = 400
# How far apart two candidates must be, in standard errors of their paired difference, to count as different.
SEPARATION = 2.0


class ScalingWarning(UserWarning):
    """``--preprocess auto`` could not tell the best scaling from another: the choice may be wrong."""


@dataclass
class ScalingChoice:
    """How the input scaling was decided: ``how`` is ``given`` (an explicit ``--preprocess``), ``model scales
    its input``, ``accuracy`` (labelled sample) or ``confidence`` (unlabelled sample: a guess). ``scores``:
    each candidate's accuracy or mutual information (nats) on the sample."""

    scaling: str
    requested: str
    how: str
    sample_size: int = 0
    scores: dict = field(default_factory=dict)
    tied_with: list = field(default_factory=list)  # candidates the evidence could not tell from the chosen one
    note: str = ""

    @property
    def close_call(self) -> bool:
        return bool(self.tied_with)

    @property
    def warning(self) -> str | None:
        """One line for stderr when the choice was a close call (None otherwise)."""
        if not self.close_call:
            return None
        others = ", ".join(self.tied_with)
        return (f"--preprocess auto chose {self.scaling}, but {others} did about as well on {self.sample_size} "
                f"images ({self.scores_text()}); if you know how the model was trained, pass --preprocess")

    def scores_text(self) -> str:
        if self.how == "accuracy":
            return ", ".join(f"{name} {value:.1%}" for name, value in self.scores.items())
        return ", ".join(f"{name} {value:.3f}" for name, value in self.scores.items())

    def summary(self) -> str:
        """One line: what was chosen and why."""
        if self.how == "given":
            return f"{self.scaling} (given with --preprocess)"
        if self.how == "model scales its input":
            return f"{self.scaling}: the model scales its own input (a Rescaling or Normalization layer inside)"
        if self.how == "accuracy":
            why = f"best accuracy on a class-stratified sample of {self.sample_size} labelled images"
        else:
            why = (f"a guess: no labels, so the model's confidence on {self.sample_size} images (mutual information "
                   "between image and prediction, in nats) decided; pass --labels or --preprocess to be sure")
        tie = f"; a close call with {', '.join(self.tied_with)}" if self.tied_with else ""
        return f"{self.scaling}: {why} ({self.scores_text()}){tie}{'; ' + self.note if self.note else ''}"

    def describe(self) -> dict:
        """What manifest.json, evaluate's JSON and the report record."""
        return {"chosen": self.scaling, "requested": self.requested, "how": self.how,
                "sample_size": self.sample_size or None,
                "metric": {"accuracy": "accuracy", "confidence": "mutual information (nats)"}.get(self.how),
                "scores": dict(self.scores) or None, "close_call": self.close_call,
                "tied_with": list(self.tied_with), "summary": self.summary(), "warning": self.warning}


def choose_scaling(model, info, dataset, requested: str = "auto", seed: int = 0, sample_size: int = SAMPLE_SIZE,
                   batch_size: int = 128, always_search: bool = False) -> tuple[ScalingChoice, np.ndarray | None]:
    """The scaling for ``model`` on ``dataset`` and how it was chosen; with it, the chosen scaling's
    probabilities on the whole dataset when the sample was all of it (so they need not be computed again),
    else None. ``always_search``: search even for a model that scales its own input (the benchmark)."""
    if requested != "auto":
        return ScalingChoice(resolve_scaling(requested, info.scales_its_input), requested, "given"), None
    if info.scales_its_input and not always_search:
        return ScalingChoice("raw", requested, "model scales its input"), None
    if not len(dataset):
        return ScalingChoice(resolve_scaling("auto", info.scales_its_input), requested, "nothing to decide on",
                             note="no images"), None
    labels, note = _usable_labels(dataset, info)
    rows = sample_rows(len(dataset), labels, sample_size, seed)
    sample = dataset.subset(rows)
    probabilities = {name: _probabilities(model, info, sample, name, batch_size) for name in CANDIDATES}
    if labels is not None:
        per_image = {name: (p.argmax(axis=1) == labels[rows]).astype(np.float64) for name, p in probabilities.items()}
        how = "accuracy"
    else:
        per_image = {name: _information_terms(p) for name, p in probabilities.items()}
        how = "confidence"
    scores = {name: float(values.mean()) for name, values in per_image.items()}
    chosen, tied = _decide(per_image)
    choice = ScalingChoice(chosen, requested, how, len(rows), scores, tied, note)
    whole = probabilities[chosen] if len(rows) == len(dataset) and np.array_equal(rows, np.arange(len(dataset))) \
        else None
    return choice, whole


def _usable_labels(dataset, info) -> tuple[np.ndarray | None, str]:
    labels = dataset.labels
    if labels is None:
        return None, ""
    labels = np.asarray(labels)
    if len(labels) and (labels.min() < 0 or labels.max() >= info.num_classes):
        return None, "the labels go beyond the model's classes, so they could not be used"
    return labels, ""


def sample_rows(n: int, labels, size: int, seed: int) -> np.ndarray:
    """At most ``size`` rows, seeded and sorted: with labels, every class equally (a class with fewer images
    gives all it has, the rest is filled from the others); without, uniformly. All rows when ``n <= size``."""
    if n <= size:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    if labels is None:
        return np.sort(rng.choice(n, size, replace=False))
    by_class = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    taken = [0] * len(by_class)
    while sum(taken) < size:  # round robin over the classes that still have images
        for k, rows in enumerate(by_class):
            if taken[k] < len(rows) and sum(taken) < size:
                taken[k] += 1
    return np.sort(np.concatenate([rows[:count] for rows, count in zip(by_class, taken, strict=True)]))


def _probabilities(model, info, sample, scaling: str, batch_size: int) -> np.ndarray:
    """The model's class probabilities on ``sample`` fed with ``scaling``, as a run would compute them (logits
    get their softmax, a one-output model two classes)."""
    from .seen import SeenModel

    adapter = InputAdapter.for_model(scaling, tuple(sample.images.shape[1:]), info.input_shape)
    return SeenModel(model=model, info=info, dataset=sample, adapter=adapter, batch_size=batch_size).probabilities


def _information_terms(probabilities: np.ndarray) -> np.ndarray:
    """Per image, KL(p_i || mean p): their mean is the mutual information between image and prediction, high
    when each prediction is confident and the predictions differ between images."""
    p = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-12, 1.0)
    mean = p.mean(axis=0, keepdims=True)
    return (p * (np.log(p) - np.log(mean))).sum(axis=1)


def _decide(per_image: dict) -> tuple[str, list[str]]:
    """The best candidate (of equal scores, the first in ``CANDIDATES`` order), and the others within
    ``SEPARATION`` standard errors of it."""
    best = max(CANDIDATES, key=lambda name: per_image[name].mean())  # max keeps the first of equals
    tied = [name for name in CANDIDATES if name != best and _indistinct(per_image[best], per_image[name])]
    return best, tied


def _indistinct(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether the paired per-image scores ``a`` and ``b`` differ by no more than ``SEPARATION`` standard errors
    of their mean difference (for accuracies this is McNemar's test, near enough)."""
    difference = a - b
    error = difference.std(ddof=1) / np.sqrt(len(difference)) if len(difference) > 1 else 0.0
    return abs(difference.mean()) <= SEPARATION * error
