"""Explainers: the base class, the artifact they return, and the `explain` pipeline that chains them."""
