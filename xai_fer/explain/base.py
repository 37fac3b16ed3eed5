"""The explainer interface: one class per method, one uniform call ``explain(context, options)``."""

from __future__ import annotations

from typing import Protocol

from .artifact import Artifact
from .context import ExplainContext


class Explainer(Protocol):
    """What an explainer plugin registers.

    ``Options`` is a dataclass of typed fields (see :func:`xai_fer.options.option`); its ``__post_init__``
    raises ``ValueError`` for invalid values. ``validate(info, options)`` may check options against the model
    before any work starts, and ``check(context, options)`` against the model and the data once the shared
    context exists, before any explainer runs (both raise ``UserError``). ``explain`` returns an
    :class:`Artifact`.
    """

    name: str
    description: str
    Options: type

    def explain(self, context: ExplainContext, options) -> Artifact: ...
