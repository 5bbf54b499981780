"""Known vulnerabilities in the installed Python packages (what `pip-audit` checks).

    python .ci/audit.py            # run with the virtual environment's python

Asks PyPI's JSON API, the same source as pip-audit's default "pypi" service: for each
installed distribution, `/pypi/NAME/VERSION/json` lists the known vulnerabilities of that
release (from the PyPA advisory database / OSV). Where a mirror or proxy serves only the
project's page (`/pypi/NAME/json`), that page's list holds for the newest release, so an
installed newest release is audited from it; an older one is reported as not audited.

Exit status 1 when any installed release has a known, not withdrawn vulnerability; 0
otherwise, with every package that could not be audited named (never silently skipped).
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata

PYPI = os.environ.get("TALA_AUDIT_PYPI", "https://pypi.org/pypi").rstrip("/")
OWN = {"tala"}  # this project, installed editable: not on PyPI


def fetch(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(url, timeout=20) as resp:
            return json.load(resp)
    except (urllib.error.URLError, OSError, ValueError):
        return None


def audit(name: str, version: str) -> tuple[str, str, list[dict] | None, str]:
    """(name, version, vulnerabilities or None when not audited, how it was audited)."""
    release = fetch(f"{PYPI}/{name}/{version}/json")
    if release is not None:
        return name, version, release.get("vulnerabilities") or [], "release"
    project = fetch(f"{PYPI}/{name}/json")
    if project is None:
        return name, version, None, "PyPI unreachable"
    newest = project.get("info", {}).get("version")
    if newest == version:
        return name, version, project.get("vulnerabilities") or [], "newest release"
    return name, version, None, f"not the newest release ({newest}) and no release page"


def main() -> int:
    installed = sorted({(d.metadata["Name"].lower(), d.version) for d in metadata.distributions()
                        if d.metadata["Name"] and d.metadata["Name"].lower() not in OWN})
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda nv: audit(*nv), installed))
    found = [(n, v, x) for n, v, vulns, _ in results if vulns for x in vulns
             if not x.get("withdrawn")]
    skipped = [(n, v, why) for n, v, vulns, why in results if vulns is None]
    audited = len(results) - len(skipped)
    for n, v, x in found:
        ids = ", ".join([x.get("id", "?"), *x.get("aliases", [])])
        fixed = ", ".join(x.get("fixed_in") or []) or "no fixed release"
        print(f"VULNERABLE {n} {v}: {ids} (fixed in {fixed}) {x.get('link', '')}")
    for n, v, why in skipped:
        print(f"not audited: {n} {v}: {why}")
    print(f"audit: {audited} of {len(results)} packages audited, {len(found)} known "
          f"vulnerabilities, {len(skipped)} not audited")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
