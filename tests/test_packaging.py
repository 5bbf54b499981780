"""What an install from the wheel holds: every Python package of the source tree, and the data
files (questionnaires, catalogs, templates) the code reads at run time."""

from __future__ import annotations

import tomllib
from fnmatch import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOP = ("bot", "flows", "storage", "admin_cli", "locales")


def _config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_package_of_the_tree_is_listed():
    found = {".".join(p.parent.relative_to(ROOT).parts)
             for top in TOP for p in (ROOT / top).rglob("__init__.py")}
    assert found - set(_config()["packages"]) == set()


def test_every_data_file_the_code_reads_is_packaged():
    data = _config()["package-data"]
    wanted = [*(ROOT / "flows" / "questionnaires").glob("*.yaml"),
              *(ROOT / "locales").glob("*/LC_MESSAGES/*.po"),
              *(ROOT / "locales").glob("*/glossary.yaml"),
              *(ROOT / "admin_cli" / "templates").glob("*.html")]
    assert wanted
    for path in wanted:
        top = path.relative_to(ROOT).parts[0]
        rel = path.relative_to(ROOT / top).as_posix()
        assert any(fnmatch(rel, pattern) for pattern in data.get(top, [])), rel
