"""The README's fault matrix and the tests' use of the shared data stay true to the code."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TESTS = REPO / "tests" / "realtime"


def _fault_rows() -> list[list[str]]:
    text = (REPO / "README.md").read_text()
    section = text.split("### Fault matrix", 1)[1].split("\n\n", 2)[1]
    rows = [[c.strip() for c in ln.strip().strip("|").split("|")] for ln in section.splitlines() if ln.startswith("|")]
    assert rows[0] == ["fault", "behaviour", "exit", "what is kept", "checked by"]
    return rows[2:]


def _test_source(ref: str) -> str:
    file, name = ref.split("::")
    tree = ast.parse((TESTS / file).read_text())
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return ast.get_source_segment((TESTS / file).read_text(), node) or ""
    raise AssertionError(f"{ref} (named in the README's fault matrix) does not exist")


def test_fault_matrix_has_the_faults_of_issue_17() -> None:
    faults = " ".join(r[0] for r in _fault_rows())
    for word in ("first write", "disk full during", "stalls", "second Ctrl-C", "FIFO", "truncated", "/dev/full"):
        assert word in faults, word


@pytest.mark.parametrize("row", _fault_rows(), ids=lambda r: r[0][:40])
def test_each_fault_row_is_checked_by_a_test_asserting_its_exit_code(row) -> None:
    fault, _behaviour, exit_cell, _kept, checked = row
    refs = re.findall(r"`([\w./]+\.py::\w+)`", checked)
    assert refs, f"no test named for {fault!r}"
    sources = [_test_source(r) for r in refs]
    code = int(re.match(r"\d+", exit_cell).group())
    if "a bug" in exit_cell:  # an internal error is raised, not turned into an exit code
        assert any("pytest.raises" in s for s in sources), fault
    else:
        assert any(re.search(rf"==\s*{code}\b", s) for s in sources), f"no named test asserts exit {code}: {fault!r}"


def test_every_test_finds_the_shared_data_through_mca_shared() -> None:
    """Users' clones have no ../shared: a test reaches it through $MCA_SHARED (conftest.shared_data_dir, or the
    variable read on the same line), never through a bare ``../shared``."""
    offenders = []
    for f in (REPO / "tests").rglob("*.py"):
        for i, line in enumerate(f.read_text().splitlines(), 1):
            if re.search(r"""/\s*["']shared["']""", line) and "def shared_data_dir" not in line \
                    and "MCA_SHARED" not in line and f.name != "conftest.py":
                offenders.append(f"{f.relative_to(REPO)}:{i}")
    assert not offenders, offenders


def test_license_is_an_spdx_string() -> None:
    """First run: a license table made `pip install -e .` warn four times (setuptools deprecates it for PEP 639)."""
    import tomllib

    meta = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert meta["project"]["license"] == "MIT"
    assert any(r.startswith("setuptools>=77") for r in meta["build-system"]["requires"]), "the first with PEP 639"
