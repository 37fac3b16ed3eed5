"""xai-fer: plugin-based explainability for image classifiers, starting with FER2013.

The Python API mirrors the CLI; names are imported lazily so ``import xai_fer`` stays as light as the CLI::

    import xai_fer
    model = xai_fer.load_model("model.keras")
    data = xai_fer.load_dataset("fer2013.csv", split="PrivateTest")
    print(xai_fer.evaluate_model(model, data)["accuracy"])
    artifacts, *_ = xai_fer.run_explainers(model, data.subset(slice(0, 64)), ["saliency"])
    artifacts["saliency"].figures["grid"]  # a matplotlib Figure
"""

from importlib import import_module

__version__ = "0.1.0"

_LAZY = {
    "load_model": "xai_fer.models.loading",
    "inspect_model": "xai_fer.models.introspect",
    "load_dataset": "xai_fer.data.loading",
    "Dataset": "xai_fer.data.dataset",
    "plugin_infos": "xai_fer.registry",
    "evaluate_model": "xai_fer.evaluation",
    "run_explainers": "xai_fer.explain.pipeline",
    "run_explain": "xai_fer.explain.pipeline",
    "build_context": "xai_fer.explain.pipeline",
    "Artifact": "xai_fer.explain.artifact",
    "UserError": "xai_fer.errors",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'xai_fer' has no attribute {name!r}")
