"""Every built-in attribution method's maps and activation-max's images for one saved model, under whatever Keras
backend this process runs, written to an .npz: run as a subprocess by tests/test_jax_backend.py (Keras' backend is
fixed per process) and by hand::

    KERAS_BACKEND=jax python tests/backend_maps.py MODEL.keras OUT.npz PREPROCESS [--no-tensorflow]

``--no-tensorflow`` makes TensorFlow unimportable first, as on a machine where only JAX is installed."""

import sys

if "--no-tensorflow" in sys.argv:
    import without_tensorflow  # noqa: F401  (`import tensorflow` now fails, as where it is not installed)

import numpy as np  # noqa: E402

# Options small enough for a test, the same under both backends (random draws come from numpy, seeded).
METHODS = {
    "saliency": {},
    "grad-cam": {},
    "grad-cam-plus-plus": {},
    "smoothgrad": {"samples": 3},
    "integrated-gradients": {"steps": 16},
    "gradient-x-input": {"baseline": "mid-grey"},
    "occlusion": {"patch": 12, "stride": 6},
    "rise": {"masks": 40},
}


def images(count=5, size=48, seed=0):
    from xai_fer.data import FER2013_CLASSES, Dataset

    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(count, size, size, 1), dtype=np.uint8)
    return Dataset(images=pixels, labels=np.arange(count) % 7, class_names=FER2013_CLASSES, source="test")


def compute(model_path: str, preprocess: str) -> dict:
    import keras
    from xai_fer_plugins.activation_max import ActivationMax, ActivationMaxOptions

    from xai_fer import registry
    from xai_fer.explain.pipeline import build_context

    model = keras.saving.load_model(model_path, compile=False)
    context = build_context(model, images(), preprocess=preprocess)
    rows = np.arange(len(context.dataset))
    targets = rows % context.info.num_classes  # fixed: the same targets whatever each backend predicts
    out = {"probabilities": context.probabilities}
    for name, options in METHODS.items():
        method = registry.explainers()[name]
        for score in ("logit", "probability"):
            maps = method.compute(context, rows, targets, method.Options(score=score, batch_size=3, **options))
            out[f"{name}/{score}"] = np.asarray(maps.values)
    artifact = ActivationMax().explain(context, ActivationMaxOptions(filters=(0, 1, 2), steps=12))
    try:
        out["activation-max/images"] = artifact.arrays["images"]
        out["activation-max/activation"] = artifact.arrays["activation"]
        out["activation-max/data_max"] = artifact.arrays["data_max"]
    finally:
        artifact.close()
    return out


if __name__ == "__main__":
    import keras

    model_path, out_path, preprocess = sys.argv[1:4]
    results = compute(model_path, preprocess)
    results["backend"] = np.array(keras.backend.backend())
    results["tensorflow_loaded"] = np.array("tensorflow" in sys.modules)
    np.savez(out_path, **results)
