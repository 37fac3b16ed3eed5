"""Occlusion sensitivity: slide a grey patch over each image; the drop in the predicted class's probability
where the patch sits is the heatmap (high = the model needs that region)."""

from dataclasses import dataclass

import numpy as np

from xai_fer.explain.artifact import Artifact
from xai_fer.hookspecs import hookimpl
from xai_fer.options import option


@dataclass
class OcclusionOptions:
    patch: int = option(8, "side of the grey square, in data pixels")
    stride: int = option(4, "step between patch positions, in data pixels")
    images: int = option(4, "explain the first N images of the data")

    def __post_init__(self):
        if min(self.patch, self.stride, self.images) < 1:
            raise ValueError("patch, stride and images must be at least 1")


def _starts(size: int, patch: int, stride: int) -> list[int]:
    """Patch offsets every ``stride`` pixels, plus one flush with the far edge, so every pixel is covered."""
    last = max(size - patch, 0)
    return sorted(set(range(0, last + 1, stride)) | {last})


class Occlusion:
    name = "occlusion"
    description = "occlusion sensitivity: probability drop while a grey patch hides each region"
    Options = OcclusionOptions

    def explain(self, context, options: OcclusionOptions) -> Artifact:
        from matplotlib.figure import Figure

        model = context.data_model()  # data-space images (0-255, data size) -> class probabilities
        rows = np.arange(min(options.images, len(context.dataset)))
        images, targets = context.images(rows), context.predictions[rows]
        height, width, p = images.shape[1], images.shape[2], options.patch
        spots = [(y, x) for y in _starts(height, p, options.stride) for x in _starts(width, p, options.stride)]
        heatmaps, covered = np.zeros(images.shape[:3], np.float32), np.zeros((height, width), np.float32)
        for y, x in spots:
            covered[y:y + p, x:x + p] += 1
        figure = Figure(figsize=(4.4, 2.2 * len(rows)), layout="constrained")
        axes = figure.subplots(len(rows), 2, squeeze=False)
        for k, image in enumerate(images):
            batch = np.repeat(image[None], len(spots) + 1, axis=0)  # row 0 stays unoccluded
            for j, (y, x) in enumerate(spots, start=1):
                batch[j, y:y + p, x:x + p] = 128.0
            scores = model.predict(batch, batch_size=context.batch_size, verbose=0)[:, targets[k]]
            for (y, x), drop in zip(spots, scores[0] - scores[1:], strict=True):
                heatmaps[k, y:y + p, x:x + p] += drop
            heatmaps[k] /= np.maximum(covered, 1)
            axes[k, 0].imshow(image.mean(axis=-1), cmap="gray", vmin=0, vmax=255)
            axes[k, 1].imshow(heatmaps[k], cmap="magma")
            axes[k, 0].set_ylabel(f"row {rows[k]}: predicted {context.class_names[targets[k]]}", fontsize=8)
            for ax in axes[k]:
                ax.set(xticks=[], yticks=[])
        summary = {"patch": p, "stride": options.stride, "num_images": len(rows),
                   "images": [{"row": int(r), "predicted": context.class_names[t], "max_drop": float(h.max())}
                              for r, t, h in zip(rows, targets, heatmaps, strict=True)]}
        return Artifact(figures={"occlusion": figure}, arrays={"indices": rows, "heatmaps": heatmaps},
                        summary=summary)


@hookimpl
def register_explainers(register):
    register(Occlusion())
