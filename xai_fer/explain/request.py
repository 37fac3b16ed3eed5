"""An explain run, described as data: what to read, what to run, where to write, and whether to explain every
image of the split. ``xai-fer explain`` builds an :class:`ExplainRequest` from its options and
:func:`xai_fer.explain.pipeline.run_request` carries it out; the Python API (``run_explain``, ``explain_model``)
builds one from keyword arguments (:meth:`ExplainRequest.from_settings`).

Nothing here checks a value: each is checked where it was checked before the request existed (the seed and
``max_figures`` first, then the explainers and their options, then the output folder, then the whole-split
settings, then the model and data), so a bad value fails with the same one line at the same moment."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import did_you_mean
from .output import MAX_FIGURES


@dataclass(frozen=True)
class ReadSettings:
    """What to read. ``model``: a path (default: the bundled reference CNN), or in the Python API a loaded Keras
    model. ``data``: a path, several image files (a list, or a glob), or in the Python API a ``Dataset`` (default:
    the bundled sample). ``split``, ``labels``, ``faces`` and ``data_format`` as for
    :func:`xai_fer.data.load_dataset`; ``unsafe`` as for :func:`xai_fer.models.loading.load_model`."""

    model: object = None
    data: object = None
    split: str | None = None
    labels: str | Path | None = None
    faces: bool = False
    data_format: str | None = None
    unsafe: bool = False

    def model_path(self) -> Path:
        from .. import reference

        return Path(reference.resolve(self.model)) if self.model else reference.model_path("cnn")

    def data_source(self):
        """The data as given (a bundled name resolved), or the bundled sample."""
        from .. import reference

        return reference.resolve(self.data) if self.data else reference.sample_path()

    def source(self, model_path: Path, data) -> dict:
        """Where the model and data come from, for an engine whose workers load them (Ray): plain values, which
        :meth:`from_source` reads back."""
        return {"model_path": str(model_path), "unsafe": self.unsafe, "split": self.split,
                "data_format": self.data_format,
                "data": str(data) if isinstance(data, (str, Path)) else [str(item) for item in data],
                "labels": str(self.labels) if self.labels else None, "faces": self.faces}

    @classmethod
    def from_source(cls, source: dict) -> ReadSettings:
        return cls(model=source["model_path"], data=source["data"], split=source.get("split"),
                   labels=source.get("labels"), faces=source.get("faces", False),
                   data_format=source.get("data_format"), unsafe=source.get("unsafe", False))

    def load(self) -> tuple:
        """``(model, dataset)``: loaded from their paths (the bundled ones by default); a model or ``Dataset``
        given in Python is taken as it is, the Dataset with the split and labels applied."""
        from ..data import Dataset, load_dataset
        from ..data.labels import attach_labels
        from ..models.loading import load_model

        model = self.model
        if model is None or isinstance(model, (str, Path)):
            model = load_model(self.model_path(), unsafe=self.unsafe)
        if not isinstance(self.data, Dataset):
            return model, load_dataset(self.data_source(), split=self.split, format=self.data_format,
                                       labels=self.labels, faces=self.faces, allow_mixed_splits=False)
        data = attach_labels(self.data, self.labels) if self.labels is not None else self.data
        return model, data.select_split(self.split)


@dataclass(frozen=True)
class RunSettings:
    """What to run. ``explainers``: names (None: all that apply, or a whole split's defaults). ``options``:
    explainer -> {key: value}, Python values or the command line's strings. ``preset``: named options for what
    ``options`` leaves out (:mod:`xai_fer.explain.presets`). ``preprocess``: the input scaling, or ``auto``."""

    explainers: list[str] | None = None
    options: dict[str, dict] | None = None
    preset: str | None = None
    preprocess: str = "auto"
    seed: int = 0


@dataclass(frozen=True)
class WriteSettings:
    """Where to write, and what to show meanwhile. ``max_figures``: at most this many figures per explainer
    (None: all; the arrays keep every result). ``command``: the command line that asked for the run, recorded in
    the manifest. ``progress``: see :func:`xai_fer.explain.progress.as_progress`."""

    out_dir: Path = Path("xai-fer-out")
    overwrite: bool = False
    max_figures: int | None = MAX_FIGURES
    command: str | None = None
    progress: object = None


@dataclass(frozen=True)
class WholeSplitSettings:
    """``all_images``: every attribution method explains every image of the split, streamed in chunks of
    ``chunk_size`` images into ``maps.h5`` (``maps_dtype`` float32 or float16), computed by ``engine`` ("local",
    or "ray": ``workers`` Ray workers of ``worker_cpus`` CPUs each, 0 workers for as many as the cluster holds).
    See :mod:`xai_fer.explain.wholesplit`."""

    all_images: bool = False
    chunk_size: int = 1024
    maps_dtype: str = "float32"
    engine: str = "local"
    workers: int = 0
    worker_cpus: int = 1

    def working_in(self, work: Path):
        """The :class:`~xai_fer.explain.wholesplit.WholeSplit` keeping its unfinished work in ``work`` (which
        checks the settings), or None when not every image is explained."""
        if not self.all_images:
            return None
        from .wholesplit import WholeSplit

        return WholeSplit(Path(work), self.chunk_size, self.maps_dtype, self.engine, self.workers, self.worker_cpus)


@dataclass(frozen=True)
class ExplainRequest:
    """One explain run: the four groups of settings, each with its defaults."""

    read: ReadSettings = field(default_factory=ReadSettings)
    run: RunSettings = field(default_factory=RunSettings)
    write: WriteSettings = field(default_factory=WriteSettings)
    whole_split: WholeSplitSettings = field(default_factory=WholeSplitSettings)

    @classmethod
    def from_settings(cls, settings: dict, caller: str = "run_explain", refused: tuple = ()) -> ExplainRequest:
        """The request for flat keyword settings (``{"seed": 1, "all_images": True}``), each put into its group
        by name. A name no group has, or one of ``refused`` (settings that mean nothing to ``caller``), is a
        TypeError, as for any Python call."""
        grouped: dict[str, dict] = {name: {} for name in _GROUPS}
        for key, value in settings.items():
            group = _GROUP_OF.get(key) if key not in refused else None
            if group is None:
                names = [name for name in _GROUP_OF if name not in refused]
                raise TypeError(f"{caller}() got an unexpected keyword argument {key!r}; "
                                f"{did_you_mean(key, names)}it takes {', '.join(names)}")
            grouped[group][key] = value
        return cls(**{name: kind(**grouped[name]) for name, kind in _GROUPS.items()})


_GROUPS = {"read": ReadSettings, "run": RunSettings, "write": WriteSettings, "whole_split": WholeSplitSettings}
_GROUP_OF = {item.name: group for group, kind in _GROUPS.items() for item in dataclasses.fields(kind)}
