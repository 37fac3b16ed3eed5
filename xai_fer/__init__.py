"""xai-fer: plugin-based explainability for image classifiers, starting with FER2013."""

__version__ = "0.1.0"
