"""The bundled reference models and PrivateTest sample: the defaults of `xai-fer explain`."""
