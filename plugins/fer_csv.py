"""Kaggle's ``fer2013.csv``: ``emotion,pixels,Usage``, one 48x48 image per line as 2304 space-separated pixels."""

from pathlib import Path

from xai_fer.data import FER2013_CLASSES, SPLITS, Dataset, canonical_split
from xai_fer.data.csv_pixels import read_header, read_pixel_csv
from xai_fer.errors import UserError
from xai_fer.hookspecs import hookimpl


def _usage_code(text: str) -> int:
    try:
        return SPLITS.index(canonical_split(text))
    except UserError:
        raise ValueError(f"not one of {', '.join(SPLITS)}") from None


class FerCsvFormat:
    name = "fer-csv"
    description = "Kaggle fer2013.csv: emotion,pixels[,Usage] with space-separated pixels"

    def detect(self, path: Path) -> bool:
        # Either column claims the file, so that a header missing the other gets load's one-line explanation.
        return bool({"emotion", "pixels"} & set(read_header(path)))

    def load(self, path: Path) -> Dataset:
        table = read_pixel_csv(path, "pixels", required=("emotion",))
        labels = table.integers("emotion", stop=len(FER2013_CLASSES))
        usage = table.codes("usage", _usage_code) if "usage" in table.columns else None
        return Dataset(images=table.pixels, labels=labels, class_names=FER2013_CLASSES, source=str(path),
                       usage=usage)


@hookimpl
def register_datasets(register):
    register(FerCsvFormat())
