"""xai-fer: plugin-based explainability for image classifiers, starting with FER2013.

The Python API mirrors the CLI; names are imported lazily so ``import xai_fer`` stays as light as the CLI::

    import xai_fer
    model = xai_fer.load_model("model.keras")
    data = xai_fer.load_dataset("fer2013.csv", split="PrivateTest")
    print(xai_fer.evaluate_model(model, data, preprocess="symmetric")["accuracy"])  # or "auto": measured
    result = xai_fer.explain_model(model, data.subset(slice(0, 64)), ["saliency"], preprocess="symmetric",
                                   options={"saliency": {"indices": [0, 1, 2]}})
    result  # in Jupyter: the report section, figures included
    result.figures["saliency"]["grid"]  # a matplotlib Figure (so is every per-image entry)

``xai_fer.use_backend("jax")`` first (before anything imports Keras) computes under Keras' JAX backend.
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
    "run_request": "xai_fer.explain.pipeline",
    "ExplainRequest": "xai_fer.explain.request",
    "build_context": "xai_fer.explain.pipeline",
    "explain_model": "xai_fer.explain.notebook",
    "Explanation": "xai_fer.explain.notebook",
    "Artifact": "xai_fer.explain.artifact",
    "UserError": "xai_fer.errors",
    "use_backend": "xai_fer.explain.backends",
}

__all__ = ["__version__", *_LAZY]


# Names whose first use starts TensorFlow: its start-up log is silenced first, as the CLI does.
_NEED_TENSORFLOW = {"load_model", "inspect_model", "evaluate_model", "run_explainers", "run_explain", "run_request",
                    "build_context", "explain_model"}


def __getattr__(name: str):
    if name in _LAZY:
        if name in _NEED_TENSORFLOW:
            from .quiet import quiet_for_api

            quiet_for_api()
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'xai_fer' has no attribute {name!r}")
