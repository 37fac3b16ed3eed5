"""What ``xai-fer explain`` tells the user around a run: the lines that sum up a written report, and where an
interrupted whole-split run keeps its work. Each function prints to the consoles it is given (the CLI's)."""

from __future__ import annotations

from pathlib import Path


def print_explained(console, err_console, result, out: Path) -> None:
    """After a run (an :class:`~xai_fer.explain.pipeline.ExplainRun`): notes on stderr (explainers skipped, layers
    renamed, the whole split's maps, figures left out), then where the report is."""
    manifest = result.manifest
    for name, reason in manifest.get("skipped", {}).items():
        err_console.print(f"skipped {name}: {reason}", highlight=False)
    renamed = manifest["model"].get("renamed")
    if renamed:
        err_console.print("Note: renamed " + ", ".join(f"{old!r} -> {new!r}" for old, new in renamed["names"].items())
                          + f" ({renamed['why']})", highlight=False)
    whole = manifest.get("whole_split")
    if whole:
        resumed = f", {whole['resumed_chunks']} resumed from an earlier run" if whole["resumed_chunks"] else ""
        err_console.print(f"maps of {whole['images']:,} images in {whole['chunks']} chunks{resumed}: "
                          f"{out / 'maps.h5'}", highlight=False)
    left_out = manifest.get("figures_left_out")
    if left_out:
        err_console.print(f"Note: {left_out['note']}", highlight=False)
    console.print(f"wrote {out}/ ({', '.join(result.artifacts)}); open {out / 'index.html'}")


def resume_note(err_console, out: Path, all_images: bool) -> None:
    """After an interrupted whole-split run: where its finished chunks are, and how to resume."""
    from .workfolder import work_folder_for

    work = work_folder_for(out.resolve())
    if all_images and work.is_dir():
        chunks = len(list((work / "chunks").glob("*.npz")))
        done = f"{chunks} finished chunks are" if chunks else "the finished maps are"
        err_console.print(f"{done} kept in {work}: run the same command again to resume", highlight=False)
