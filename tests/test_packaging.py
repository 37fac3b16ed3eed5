"""What a plain `pip install .` installs: pyproject.toml names its packages one by one, so a new package folder
that is not listed works in an editable install (the tests' own) and is missing from a user's. These tests read
the folders and the list, without building a wheel."""

from __future__ import annotations

import fnmatch
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
SETUPTOOLS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def _folder(package: str) -> Path:
    top, _, rest = package.partition(".")
    base = ROOT / SETUPTOOLS.get("package-dir", {}).get(top, top)
    return base.joinpath(*rest.split(".")) if rest else base


def _package_folders() -> dict[str, Path]:
    """Every folder holding Python modules under the installed top-level packages, by dotted name."""
    found = {}
    for top in {name.split(".")[0] for name in SETUPTOOLS["packages"]}:
        base = _folder(top)
        for module in base.rglob("*.py"):
            if "__pycache__" in module.parts:
                continue
            relative = module.parent.relative_to(base)
            found[".".join((top, *relative.parts))] = module.parent
    return found


def test_every_folder_of_modules_is_a_listed_package():
    missing = sorted(set(_package_folders()) - set(SETUPTOOLS["packages"]))
    assert not missing, f"add {missing} to [tool.setuptools] packages in pyproject.toml"


def test_every_listed_package_exists():
    assert all((_folder(name) / "__init__.py").is_file() for name in SETUPTOOLS["packages"])


def test_every_data_file_is_package_data():
    """Files other than modules inside a package (the bundled models, the browser's scripts) install only when a
    package-data pattern names them."""
    patterns = SETUPTOOLS.get("package-data", {})
    unlisted = []
    for name, folder in _package_folders().items():
        for path in folder.iterdir():
            if path.is_file() and path.suffix not in {".py", ".pyc"}:
                globs = patterns.get(name, [])
                if not any(fnmatch.fnmatch(path.name, glob) for glob in globs):
                    unlisted.append(str(path.relative_to(ROOT)))
            elif path.is_dir() and path.name != "__pycache__" and not any(path.glob("*.py")):
                for inner in path.rglob("*"):
                    relative = str(inner.relative_to(folder))
                    if inner.is_file() and not any(fnmatch.fnmatch(relative, glob)
                                                   for glob in patterns.get(name, [])):
                        unlisted.append(str(inner.relative_to(ROOT)))
    assert not unlisted, f"add package-data patterns in pyproject.toml for {unlisted}"
