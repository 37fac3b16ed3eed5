"""Deletion and insertion (Petsiuk et al. 2018) of attribution maps, next to two baselines that know nothing of
the model: a seeded random map and a Sobel edge map of the image.

Pixels are ranked by the map (signed maps by magnitude, unless ``ranking="positive"``; ties in a random order,
seeded) and changed in ``steps`` equal steps of the pixel fraction, from none to all. Deletion replaces them by
the mid-grey of the model's input scale; insertion starts from a Gaussian-blurred copy (sigma 5 px at 48x48,
scaled with size) and puts the original pixels back. The curve is the softmax probability of the class the
method explained; its area by the trapezoid rule over [0, 1]. A map that finds what the model uses makes
deletion fall fast (low AUC) and insertion rise fast (high AUC).
"""

from __future__ import annotations

from dataclasses import dataclass

from xai_fer.lazy import np

from .progress import NoProgress

RANDOM, SOBEL = "random map", "Sobel edge map"  # baselines: names no attribution method can have (a space)
# Seeds of the random generators, with the run's seed: the same run draws the same random maps and tie orders.
_SALT_RANDOM_MAP, _SALT_TIES = 0xFA17, 0xFA18
_PERTURBED_BYTES = 48 * 2**20  # perturbed copies made at once (deletion and insertion): memory stays bounded


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


def step_counts(pixels: int, steps: int) -> np.ndarray:
    """Pixels changed at each of the ``steps + 1`` points: fractions 0, 1/steps, ..., 1 of ``pixels``."""
    return np.round(np.linspace(0, pixels, steps + 1)).astype(np.int64)


def curve_ends(engine, images, targets) -> np.ndarray:
    """(N, 3) probabilities of each image's target class at the curves' ends, which no map changes: the image
    itself (deletion at 0, insertion at 1), all mid-grey (deletion at 1) and blurred (insertion at 0)."""
    from xai_fer.explain.images import gaussian_blur

    images = np.asarray(images, dtype=np.float32)
    if not len(images):
        return np.zeros((0, 3), np.float32)
    grey = np.full_like(images, np.float32(engine.mid_grey))
    scores = engine.scores(np.concatenate([images, grey, gaussian_blur(images)]), np.tile(np.asarray(targets), 3),
                           probabilities=True)
    return scores.reshape(3, len(images)).T


def perturbation_curves(engine, images, targets, orders, steps: int, ends=None) -> tuple[np.ndarray, np.ndarray]:
    """Deletion and insertion curves, each (N, steps + 1): the softmax probability of each image's target class
    with the first ``fraction`` of its ranked pixels replaced by mid-grey (deletion), or put back into a blurred
    copy (insertion). Forward passes only, through the engine; the perturbed copies are made a block of
    (image, step) pairs at a time, so memory stays bounded whatever the number of images, steps or pixels.
    ``ends``: the images' :func:`curve_ends`, when already known (every map of an image shares them), so only
    the steps in between are computed."""
    from xai_fer.explain.images import gaussian_blur

    images = np.asarray(images, dtype=np.float32)
    n, height, width, channels = images.shape
    counts = step_counts(height * width, steps)
    deletion = np.zeros((n, steps + 1), np.float32)
    insertion = np.zeros((n, steps + 1), np.float32)
    points = np.arange(steps + 1)
    if ends is not None:
        points = points[1:-1]
        ends = np.asarray(ends, np.float32)
        deletion[:, 0], deletion[:, -1], insertion[:, 0], insertion[:, -1] = ends[:, 0], ends[:, 1], ends[:, 2], \
            ends[:, 0]
    total = n * len(points)  # pair p: image p // len(points) at step points[p % len(points)]
    block = max(1, _PERTURBED_BYTES // (2 * images[0].nbytes)) if n else 1
    for start in range(0, total, block):
        pairs = np.arange(start, min(start + block, total))
        image, step = pairs // len(points), points[pairs % len(points)]
        shown, which = np.unique(image, return_inverse=True)
        rank = np.empty_like(orders[shown])  # rank[i, pixel] = the pixel's place in image i's order
        np.put_along_axis(rank, orders[shown], np.arange(height * width)[None], axis=1)
        changed = (rank[which] < counts[step, None]).reshape(-1, height, width, 1)
        original = images[shown][which]
        deleted = np.where(changed, np.float32(engine.mid_grey), original)
        inserted = np.where(changed, original, gaussian_blur(images[shown])[which])
        classes = np.asarray(targets)[shown][which]
        scores = engine.scores(np.concatenate([deleted, inserted]), np.tile(classes, 2), probabilities=True)
        deletion[image, step], insertion[image, step] = scores[:len(pairs)], scores[len(pairs):]
    return deletion, insertion


def trapezoid_auc(curves) -> np.ndarray:
    """Area under each curve sampled at equal steps over [0, 1] (trapezoid rule)."""
    curves = np.asarray(curves, dtype=np.float64)
    return ((curves[:, 1:] + curves[:, :-1]).sum(axis=1) / (2 * (curves.shape[1] - 1))).astype(np.float64)


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


@dataclass
class ScoredMaps:
    """Deletion and insertion of every method's maps, of the baselines on every image any method explained,
    and, per method, the baselines on its own images (for the paired comparison)."""

    methods: dict  # name -> Scores
    baselines: dict  # RANDOM / SOBEL -> Scores over ``pairs``
    paired: dict  # name -> {RANDOM: Scores, SOBEL: Scores} on that method's (row, target) pairs
    pairs: dict  # (row, target) -> index into the baselines' rows


def score_maps(context, results: dict, steps: int, ranking: str = "magnitude") -> ScoredMaps:
    """Deletion and insertion of every attribution result's maps (``results``: name -> ``AttributionResult``)
    and of the baselines on every image any of them explained, in ``steps`` steps; signed maps rank pixels by
    ``ranking``. Reports each map's images to ``context.progress``."""
    engine = context.attribution_engine("probability")
    height, width = context.dataset.images.shape[1:3]
    pairs = {}
    for result in results.values():
        for row, target in zip(result.rows.tolist(), result.targets.tolist(), strict=True):
            pairs.setdefault((row, target), len(pairs))
    rows = np.array([row for row, _ in pairs], np.int64)
    targets = np.array([target for _, target in pairs], np.int64)
    total = 2 * len(rows) + sum(len(result.rows) for result in results.values())
    with (context.progress or NoProgress()).task("faithfulness: deletion and insertion (images)", total) as task:
        # Every map of an image ends at the same points (nothing or everything changed): scored once here.
        ends = curve_ends(engine, context.images(rows), targets)

        def score(rows, targets, maps, signed):
            orders = pixel_order(maps, signed, ranking, rows, context.seed)
            index = [pairs[pair] for pair in zip(rows.tolist(), targets.tolist(), strict=True)]
            curves = perturbation_curves(engine, context.images(rows), targets, orders, steps, ends[index])
            task.advance(len(rows))
            return Scores(rows, targets, *curves)

        baselines = {RANDOM: score(rows, targets, random_maps(rows, height, width, context.seed), False),
                     SOBEL: score(rows, targets, sobel_maps(context.images(rows)), False)}
        methods, paired = {}, {}
        for name, result in results.items():
            methods[name] = score(result.rows, result.targets, result.maps, result.signed)
            index = np.array([pairs[pair] for pair in zip(result.rows.tolist(), result.targets.tolist(),
                                                          strict=True)], np.int64)
            paired[name] = {key: scores.subset(index) for key, scores in baselines.items()}
    return ScoredMaps(methods, baselines, paired, pairs)
