"""Importing this module makes TensorFlow unimportable in the process, as on a machine where only JAX is
installed: ``import tensorflow`` raises ModuleNotFoundError, and nothing is left in ``sys.modules`` (Keras takes
a ``"tensorflow"`` key there to mean that TensorFlow is running). Used by the JAX-backend subprocesses of
tests/test_jax_backend.py; import it before anything else."""

import sys


class _NoTensorFlow:
    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            raise ModuleNotFoundError(f"No module named {name!r} (hidden by tests/without_tensorflow.py)", name=name)
        return None


if "tensorflow" in sys.modules:
    raise RuntimeError("TensorFlow is already imported: import without_tensorflow first")
sys.meta_path.insert(0, _NoTensorFlow())
