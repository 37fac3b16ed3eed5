"""Model architectures (plugins) and loading of any saved Keras model."""
