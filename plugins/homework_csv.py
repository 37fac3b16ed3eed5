"""The course-homework split of FER2013: ``train.csv`` (``label,feature``) and unlabelled ``test.csv``
(``id,feature``), with the same space-separated pixels as ``fer2013.csv``."""

from pathlib import Path

from xai_fer.data import FER2013_CLASSES, Dataset
from xai_fer.data.csv_pixels import read_header, read_pixel_csv
from xai_fer.errors import UserError
from xai_fer.hookspecs import hookimpl


class HomeworkCsvFormat:
    name = "homework-csv"
    description = "homework train.csv (label,feature) or test.csv (id,feature) with space-separated pixels"

    def detect(self, path: Path) -> bool:
        # The pixel column claims the file, so that a header missing label/id gets load's one-line explanation.
        return "feature" in read_header(path)

    def load(self, path: Path) -> Dataset:
        table = read_pixel_csv(path, "feature")
        if not {"label", "id"} & table.columns.keys():
            raise UserError(f"{path}, line 1: neither a 'label' nor an 'id' column",
                            "train.csv has label,feature and test.csv has id,feature")
        labels = table.integers("label", stop=len(FER2013_CLASSES)) if "label" in table.columns else None
        ids = table.integers("id") if "id" in table.columns else None
        return Dataset(images=table.pixels, labels=labels, class_names=FER2013_CLASSES, source=str(path), ids=ids)


@hookimpl
def register_datasets(register):
    register(HomeworkCsvFormat())
