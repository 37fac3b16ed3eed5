"""Where ``xai-fer explain`` writes: checking ``--out`` before any work, and writing the report so that it
appears complete or not at all, replacing only what an earlier report wrote.

A report's ``manifest.json`` lists every file the report wrote (``files``); ``--overwrite`` replaces a folder
only when everything in it is on that list, so a user's own files in it (``notes.txt``, ``annotations/``) are
never deleted: the run is refused and says which ones are in the way. A report written before the list existed
counts as its manifest, its index and the folders of the explainers it names.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path, PurePosixPath

from .. import atomic
from ..errors import UserError
from .browser import BROWSER_FOLDER

# Figures one explainer may write: a per-image option such as saliency.per_class=1e9 on FER2013 would
# otherwise write 35,887 PNGs for hours. The arrays keep every result; --max-figures raises the limit.
MAX_FIGURES = 200
_REPORT_FILES = ("manifest.json", "index.html")
# Reports this process is preparing, by target: the open, locked folder of the report it will replace, or None
# when there was none to replace (then a report another run writes meanwhile is not replaced: see write_report).
_CLAIMS: dict[Path, int | None] = {}


def prepare_output(out_dir: Path, overwrite: bool, inputs: tuple = ()) -> Path:
    """Refuse before any work: an existing result (unless overwrite), a directory that is not a previous
    report or holds files a report did not write, one that holds the run's own ``inputs`` (model, data), or a
    place we cannot write (see :func:`xai_fer.atomic.check_writable`). Returns where the report will go:
    ``out_dir`` with symbolic links resolved, so a linked ``--out`` is filled, not replaced.

    Nothing is left behind here: missing parent directories are made only once the results are ready to be
    written (see :func:`write_report`), so a run that fails leaves no trace.
    """
    out_dir = Path(out_dir)
    atomic.check_path_length(out_dir)  # first: a name too long cannot even be looked up
    target = out_dir.resolve()
    if target == Path.cwd().resolve() or target in Path.cwd().resolve().parents:
        raise UserError(f"--out {out_dir} is the current directory or above it", "pick a new folder for --out")
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {out_dir} exists and is not a directory", "pick another --out")
    if out_dir.exists() and any(out_dir.iterdir()):
        if not overwrite:
            raise UserError(f"--out {out_dir} already exists", "pass --overwrite to replace it, or pick another --out")
        # --overwrite replaces a previous report, never a folder of other things (a training run, a dataset).
        for path in inputs:
            resolved = Path(path).resolve()
            if resolved == target or target in resolved.parents:
                raise UserError(f"--out {out_dir} holds {path}, an input of this run", "pick another --out")
        check_replaceable(target, out_dir)
    atomic.check_writable(target)
    _claim(target, out_dir, replacing=out_dir.exists() and any(out_dir.iterdir()))
    return target


def _claim(target: Path, shown: Path, replacing: bool) -> None:
    """Lock the report ``--overwrite`` will replace until this run has written its own (the kernel drops the
    lock if the process dies), so that of two runs into one report the second stops now, in one line, instead
    of both printing "wrote" and one report silently replacing the other."""
    _release(target)  # an earlier run in this process that failed before writing (a notebook cell run again)
    handle = None
    if replacing:
        try:
            import fcntl
        except ImportError:  # not POSIX: no guard
            fcntl = None
        try:
            handle = os.open(target, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            handle = None  # gone meanwhile: write_report deals with whatever is there then
        if handle is not None and fcntl is not None:
            atomic.lock_or_refuse(handle, f"--out {shown} is being written by another explain run",
                                  "wait for it to finish, or pick another --out")
    _CLAIMS[target] = handle


def _release(target: Path) -> None:
    """Drop this process's claim on ``target`` (and its lock)."""
    handle = _CLAIMS.pop(target, None)
    if handle is not None:
        os.close(handle)


def check_replaceable(target: Path, shown: Path) -> None:
    """``target`` holds a previous report and nothing else, or a one-line refusal."""
    files = report_files(target)
    if files is None:
        raise UserError(f"--out {shown} is not an xai-fer report (no manifest.json from explain); "
                        "--overwrite only replaces a previous report", "pick another --out")
    others = _not_written_by_report(target, files)
    if others:
        listed = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
        raise UserError(f"--out {shown} holds {listed}, which the previous report did not write; --overwrite "
                        "replaces only a report's own files", "move them out of it, or pick another --out")


def report_files(folder: Path) -> set[str] | None:
    """The files (relative POSIX paths) the report in ``folder`` wrote, or None when it is not a report: a
    manifest from explain names a model it hashed and at least one explainer, and every file it lists lies in
    an explainer's folder or is the manifest or the index. A bare ``{"explainers": {}, "model": {}}`` is no
    report."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict):
        return None
    explainers, model = manifest.get("explainers"), manifest.get("model")
    if not (isinstance(explainers, dict) and explainers and all(isinstance(n, str) and n for n in explainers)
            and isinstance(model, dict) and isinstance(model.get("sha256"), str) and model["sha256"]):
        return None
    listed = manifest.get("files")
    if listed is None:  # written before reports listed their files: the manifest, the index, the explainers'
        return {*_REPORT_FILES, *(str(PurePosixPath(path.relative_to(folder)))
                                  for name in explainers if "/" not in name and (folder / name).is_dir()
                                  for path in (folder / name).rglob("*") if not path.is_dir())}
    run_files = manifest.get("run_files", [])  # files of the run as a whole (a whole-split run's maps.h5)
    if not all(isinstance(value, list) and all(isinstance(entry, str) for entry in value)
               for value in (listed, run_files)):
        return None
    for entry in [*listed, *run_files]:
        parts = PurePosixPath(entry).parts
        if (PurePosixPath(entry).is_absolute() or ".." in parts or not parts
                or not (entry in _REPORT_FILES or entry in run_files
                        or (len(parts) > 1 and parts[0] in (*explainers, BROWSER_FOLDER)))):
            return None
    return set(listed)


def _not_written_by_report(folder: Path, files: set[str]) -> list[str]:
    """Entries of ``folder`` (relative names, folders with a trailing '/') that are not the report's files
    nor folders holding them."""
    folders = {str(parent) for entry in files for parent in PurePosixPath(entry).parents if str(parent) != "."}
    others = []
    for root, directories, names in os.walk(folder):
        relative = PurePosixPath(Path(root).relative_to(folder))
        for name in sorted(directories):
            path = str(relative / name) if str(relative) != "." else name
            if path not in folders:
                others.append(path + "/")
        directories[:] = [d for d in directories if (str(relative / d) if str(relative) != "." else d) in folders]
        for name in sorted(names):
            path = str(relative / name) if str(relative) != "." else name
            if path not in files:
                others.append(path)
    return others


def write_report(target: Path, overwrite: bool, shown: Path, artifacts: dict, make_manifest, render,
                 max_figures: int | None = MAX_FIGURES, write_extra=None, add_files=None) -> dict:
    """Write every artifact, what ``write_extra(staging)`` writes (the image browser), the run's own files
    (``add_files(staging)`` writes them and returns their relative paths, listed as the manifest's
    ``run_files``: a whole-split run's ``maps.h5``), the manifest (``make_manifest()``, completed with
    ``files`` and any figures left out) and ``index.html`` (``render(manifest, sections)``) into a hidden
    staging folder beside ``target``,
    then move it into place. A failure of the disk (full, too large a file, read-only) is one line; on any
    failure or interruption the staging folder and the parents made for it are removed. Returns the manifest."""
    if target in _CLAIMS and _CLAIMS[target] is None:
        overwrite = False  # nothing was there to replace: what another run writes meanwhile is not to replace
    try:
        return _write_report(target, overwrite, shown, artifacts, make_manifest, render, max_figures, write_extra,
                             add_files)
    finally:
        _release(target)


def _write_report(target: Path, overwrite: bool, shown: Path, artifacts: dict, make_manifest, render,
                  max_figures: int | None, write_extra, add_files) -> dict:
    check_max_figures(max_figures)
    if not overwrite and _has_entries(target):  # another run wrote it while this one worked: stop before writing
        raise _taken(shown)
    parents = _make_parents(target.parent)
    staging = None
    try:
        staging = atomic.temp_directory_sibling(target)
        sections, left_out = [], {}
        for name, artifact in artifacts.items():
            figures = artifact.write(staging / name, max_figures)
            if len(figures) < len(artifact.figures):
                left_out[name] = {"written": len(figures), "made": len(artifact.figures)}
            sections.append((name, figures, artifact.summary))
            artifact.close()
        if write_extra is not None:
            write_extra(staging)
        run_files = sorted(add_files(staging)) if add_files is not None else []
        manifest = make_manifest()
        if run_files:
            manifest["run_files"] = run_files
        if left_out:
            manifest["figures_left_out"] = {"max_figures": max_figures, "explainers": left_out,
                                            "note": figures_note(left_out, max_figures)}
        manifest["files"] = sorted([*_REPORT_FILES, *_files_under(staging)])
        atomic.write_json(staging / "manifest.json", manifest)
        (staging / "index.html").write_text(render(manifest, sections), encoding="utf-8")
        if overwrite and _has_entries(target):  # the user may have added files since the check at the start
            check_replaceable(target, shown)
        atomic.replace_directory(staging, target, replace=overwrite)
    except FileExistsError:
        _discard(staging, parents)
        raise _taken(shown) from None
    except OSError as exc:
        _discard(staging, parents)
        error = atomic.write_error(exc, target)
        if error is None:
            raise
        raise error from None
    except BaseException:
        _discard(staging, parents)
        raise
    return manifest


def check_max_figures(max_figures: int | None) -> None:
    if max_figures is not None and max_figures < 1:
        raise UserError(f"--max-figures {max_figures} must be at least 1", "pass a whole number such as 200")


def figures_note(left_out: dict, max_figures: int) -> str:
    """One line per run: which explainers wrote fewer figures than they made, and where the rest is."""
    parts = [f"{name} wrote {counts['written']:,} of its {counts['made']:,} figures" for name, counts in
             left_out.items()]
    return (f"{'; '.join(parts)} (--max-figures {max_figures}); every result is in each explainer's "
            "arrays.npz and summary.json: raise --max-figures, or pick images with the explainer's options")


def _taken(shown: Path) -> UserError:
    return UserError(f"--out {shown} was written by another run while this one worked",
                     "pick another --out, or pass --overwrite to replace it")


def _has_entries(folder: Path) -> bool:
    try:
        return folder.is_dir() and any(folder.iterdir())
    except OSError:
        return False


def _files_under(folder: Path) -> list[str]:
    return [str(PurePosixPath(path.relative_to(folder))) for path in folder.rglob("*") if not path.is_dir()]


def _discard(staging: Path | None, parents: list[Path]) -> None:
    if staging is not None:
        shutil.rmtree(staging, ignore_errors=True)
    _remove_empty(parents)


def _make_parents(directory: Path) -> list[Path]:
    """Create ``directory`` and its missing parents; returns the ones created, deepest first."""
    missing, created = [], []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    try:
        for folder in reversed(missing):
            try:
                folder.mkdir()
            except FileExistsError:  # another run made it meanwhile: a folder to write in all the same
                continue
            created.insert(0, folder)
    except OSError as exc:
        _remove_empty(created)
        raise UserError(f"cannot create {exc.filename}: {exc.strerror}", "pick a writable --out") from None
    return created


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:  # deepest first; a folder something else wrote into stays
        try:
            folder.rmdir()
        except OSError:
            pass
