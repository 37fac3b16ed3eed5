"""Resolving explainer names and ``NAME.KEY=VALUE`` options before any work starts."""

from __future__ import annotations

from dataclasses import dataclass

from .. import registry
from ..errors import UserError
from ..options import parse_options
from .presets import preset_options


@dataclass
class PlannedExplainer:
    name: str
    explainer: object
    options: object


def split_option_pairs(pairs: dict[str, str]) -> dict[str, dict[str, str]]:
    """{'saliency.per_class': '2'} -> {'saliency': {'per_class': '2'}}"""
    grouped: dict[str, dict[str, str]] = {}
    for dotted, value in pairs.items():
        name, sep, key = dotted.partition(".")
        if not sep or not key:
            raise UserError(f"option {dotted!r} does not name its explainer", "write --option EXPLAINER.KEY=VALUE")
        grouped.setdefault(name, {})[key] = value
    return grouped


def plan_explainers(names: list[str] | None, options: dict[str, dict[str, str]] | None,
                    preset: str | None = None) -> list[PlannedExplainer]:
    """Every explainer resolved (closest name suggested) and every option parsed and validated; a ``preset``
    (:mod:`xai_fer.explain.presets`) fills in the options not given."""
    options = options or {}
    available = registry.explainers()
    chosen = list(dict.fromkeys(names)) if names else list(available)
    explainers = {name: registry.lookup("explainers", name) for name in chosen}
    defaults = preset_options(preset, explainers)
    planned = []
    for name, explainer in explainers.items():
        values = {**defaults.get(name, {}), **options.get(name, {})}
        planned.append(PlannedExplainer(name, explainer, parse_options(explainer.Options, values, name)))
    for name in options:
        if name not in chosen:
            registry.lookup("explainers", name)  # an unknown name fails with a suggestion
            raise UserError(f"options given for {name!r}, which this run does not include",
                            f"add --explainer {name} or drop its options")
    return after_attributions(planned)


def after_attributions(planned: list[PlannedExplainer]) -> list[PlannedExplainer]:
    """Explainers that read the maps of the run's attribution methods (``reads_attributions = True``, e.g.
    faithfulness) move to just after the last attribution method when they come before it; the rest keeps its
    order."""
    from .attribution import Attribution

    last = max((k for k, item in enumerate(planned) if isinstance(item.explainer, Attribution)), default=-1)
    early = [item for item in planned[:max(last, 0)] if getattr(item.explainer, "reads_attributions", False)]
    if not early:
        return planned
    rest = [item for item in planned if all(item is not moved for moved in early)]
    position = next(k for k, item in enumerate(rest) if item is planned[last]) + 1
    return rest[:position] + early + rest[position:]


def validate_against_model(planned: list[PlannedExplainer], info) -> None:
    """Let explainers check their options against the loaded model (layer names, class indices...)."""
    for item in planned:
        check = getattr(item.explainer, "validate", None)
        if check is not None:
            registry.guarded("explainers", item.name, "validate", check, info, item.options)


def check_against_context(planned: list[PlannedExplainer], context) -> None:
    """Let explainers check their options against the model AND the data (filter indices, rows, labels) once
    the shared context exists, before any explainer runs: a bad value fails in one line, before any work."""
    for item in planned:
        check = getattr(item.explainer, "check", None)
        if check is not None:
            registry.guarded("explainers", item.name, "check", check, context, item.options)


# The order a report reads in (issue 17): the run itself comes first (index.html's header), then these kinds of
# explainer, then any explainer of no known kind (a third party's), by name.
REPORT_GROUPS = ("accuracy", "attributions", "faithfulness", "dataset", "filters")


def report_group(item: PlannedExplainer) -> str | None:
    """The report section an explainer belongs to: its declared ``report_group`` (one of REPORT_GROUPS), else
    its kind; None for an explainer of no known kind."""
    from .attribution import Attribution

    explainer = item.explainer
    declared = getattr(explainer, "report_group", None)
    if declared in REPORT_GROUPS:
        return declared
    if isinstance(explainer, Attribution):
        return "attributions"
    if getattr(explainer, "reads_attributions", False):
        return "faithfulness"
    return None


def report_order(planned: list[PlannedExplainer]) -> list[PlannedExplainer]:
    """``planned`` in the order the report shows them: by REPORT_GROUPS, the built-in ones of a group first (in
    plan order), then third parties'; explainers of no known kind last, by name."""
    def key(numbered):
        position, item = numbered
        group = report_group(item)
        if group is None:
            return (len(REPORT_GROUPS), 1, 0, item.name)
        built_in = type(item.explainer).__module__.split(".")[0] == "xai_fer_plugins"
        return (REPORT_GROUPS.index(group), 0 if built_in else 1, position, "")

    return [item for _, item in sorted(enumerate(planned), key=key)]
