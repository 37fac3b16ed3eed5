"""The report's picture of ``--faces``: the first photos, each with the box cut out of it (the manifest keeps the
boxes of every photo). Written with the run's own files, shown in the report's run section."""

from __future__ import annotations

from pathlib import Path

from xai_fer.lazy import np

FIGURE = "face_crops.png"


def write_face_crops(staging: Path, dataset) -> list[str]:
    """``face_crops.png`` in ``staging`` when the dataset's faces were cut out of photos; the files written."""
    previews = getattr(dataset, "previews", None)
    if not previews:
        return []
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    from ..display import figure_name, save_figure

    columns = min(4, len(previews))
    rows = -(-len(previews) // columns)
    figure = Figure(figsize=(2.6 * columns, 2.9 * rows), layout="constrained")
    axes = np.atleast_1d(figure.subplots(rows, columns, squeeze=False)).ravel()
    for ax, preview in zip(axes, previews, strict=False):
        image = preview.image
        ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=255)
        x, y, width, height = preview.box
        ax.add_patch(Rectangle((x - 0.5, y - 0.5), width, height, fill=False, edgecolor="lime", linewidth=2))
        ax.set_title(figure_name(preview.name), fontsize=8)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes[len(previews):]:
        ax.set_visible(False)
    total = len(dataset.preparation.get("face_crop", {}).get("images", previews))
    more = f" (the first {len(previews)} of {total})" if total > len(previews) else ""
    figure.suptitle(f"faces cut out of the photos{more}", fontsize=10)
    save_figure(figure, staging / FIGURE, dpi=110)
    return [FIGURE]

