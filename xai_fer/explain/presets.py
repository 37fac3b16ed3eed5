"""Named sets of explainer options: ``xai-fer explain --preset quick``.

A preset only fills in options the user did not give (``-o NAME.KEY=VALUE`` always wins) and never makes an
explainer run that would not run anyway; the manifest records it. ``attribution`` options apply to every
attribution method of the run (built-in or a plugin's: anything built on
:class:`~xai_fer.explain.attribution.Attribution`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import UserError


@dataclass(frozen=True)
class Preset:
    description: str
    attribution: dict[str, str] = field(default_factory=dict)
    explainers: dict[str, dict[str, str]] = field(default_factory=dict)


PRESETS = {
    # The README's first run: every explainer, on one image per class, in under a minute on two CPU cores. The
    # grids show every image, so the per-image figures (most of a default run's drawing time) are left out. The
    # dataset views that group images by class skip themselves here, saying why (a class of one image has no
    # mean or extremes to show: xai_fer.explain.views.DatasetView.per_class_view).
    "quick": Preset(
        "one image per class, no per-image figures, RISE with 200 masks, deletion/insertion curves of 16 steps, a "
        "lighter randomisation check and 8 filters: every explainer in about a minute on a laptop CPU",
        attribution={"per_class": "1", "image_figures": "false"},
        # Forward passes are most of the time: RISE's masks count twice (its maps, then their re-runs on the
        # randomised models), so 200 instead of 500 saves about a third of the run.
        explainers={"rise": {"masks": "200"},
                    "faithfulness": {"randomization_images": "2", "steps": "16", "figure_images": "2"},
                    "activation-max": {"first": "8"}},
    ),
}


def preset_options(name: str | None, explainers: dict[str, object]) -> dict[str, dict[str, str]]:
    """The options preset ``name`` gives each of ``explainers`` ({name: explainer}); {} without a preset."""
    if name is None:
        return {}
    preset = PRESETS.get(name)
    if preset is None:
        raise UserError(f"there is no preset {name!r}", "presets: " + ", ".join(
            f"{known} ({value.description})" for known, value in PRESETS.items()))
    from .attribution import Attribution

    options = {}
    for explainer_name, explainer in explainers.items():
        values = dict(preset.attribution) if isinstance(explainer, Attribution) else {}
        values.update(preset.explainers.get(explainer_name, {}))
        if values:
            options[explainer_name] = values
    return options
