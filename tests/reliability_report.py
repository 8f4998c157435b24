"""Writes docs/reliability.md from the tests themselves: one row per reliability case.

A test opts in with the `reliability` marker and says what it saw through the `observed` fixture:

    @pytest.mark.reliability("Bad input", "12 MB of random bytes")
    def test_random_bytes(observed, ...):
        ...
        observed("413 payload_too_large; the next good request got 200")

With `--reliability-report` (what `make reliability-report` passes), every such test becomes a
row after the run (section, case, what happened, passed/failed). Rows of cases this run did not
execute are kept from the existing file, so running one test file updates its rows without
dropping the others. Without the option nothing is written: `make test` never changes a tracked
file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

REPORT = Path(__file__).resolve().parents[1] / "docs" / "reliability.md"
SECTION_ORDER = ["Fuzzing", "Bad input", "Faults", "Security", "Soak"]
# What stands above this line in docs/reliability.md is prose kept as it is; the rows below it are
# rewritten from the tests.
MARKER = "<!-- rows below are written by tests/reliability_report.py: do not edit them by hand -->"
DEFAULT_PREAMBLE = """# Reliability

What was tried against digits, what happened, and whether the test passed: `make
reliability-report` runs the reliability cases and the soak and rewrites the rows below.
"""
ROW = re.compile(r"^\| (?P<case>.+?) \| (?P<what>.*?) \| (?P<status>passed|failed) \|$")


@dataclass
class Row:
    section: str
    case: str
    what: str
    status: str


_observations: dict[str, list[str]] = {}
_rows: dict[tuple[str, str], Row] = {}


def pytest_addoption(parser):
    parser.addoption("--reliability-report", action="store_true", default=False,
                     help="write the reliability cases' rows into docs/reliability.md")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "reliability(section, case): a row of docs/reliability.md")


@pytest.fixture
def observed(request):
    """Call with a short sentence of what happened; several calls are joined."""
    notes = _observations.setdefault(request.node.nodeid, [])
    return notes.append


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    marker = item.get_closest_marker("reliability")
    if marker is None or report.when != "call" and not report.failed:
        return
    if report.when == "setup" and report.skipped:
        return
    section, case = marker.args[:2]
    what = "; ".join(_observations.get(item.nodeid, [])) or "(nothing observed)"
    if report.failed and report.when == "call":
        what = f"{what} — {_short_failure(report)}"
    status = "passed" if report.passed else "failed"
    _rows[(section, case)] = Row(section, case, _cell(what), status)


def _short_failure(report) -> str:
    message = getattr(report.longrepr, "reprcrash", None)
    return message.message.splitlines()[0][:200] if message else "failed"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def pytest_sessionfinish(session):
    if not _rows or not session.config.getoption("--reliability-report"):
        return
    rows = {**_read_existing(), **_rows}
    REPORT.write_text(_render(_preamble(), rows.values()))


def _preamble() -> str:
    if REPORT.exists() and MARKER in (text := REPORT.read_text()):
        return text[:text.index(MARKER)].rstrip("\n") + "\n"
    return DEFAULT_PREAMBLE


def _read_existing() -> dict[tuple[str, str], Row]:
    rows: dict[tuple[str, str], Row] = {}
    if not REPORT.exists():
        return rows
    section = ""
    text = REPORT.read_text()
    for line in text[max(text.find(MARKER), 0):].splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
        elif (match := ROW.match(line)) and match["case"] != "case":
            rows[(section, match["case"])] = Row(section, match["case"], match["what"],
                                                 match["status"])
    return rows


def _render(preamble: str, rows) -> str:
    by_section: dict[str, list[Row]] = {}
    for row in rows:
        by_section.setdefault(row.section, []).append(row)
    order = SECTION_ORDER + sorted(set(by_section) - set(SECTION_ORDER))
    parts = [preamble, MARKER]
    for section in order:
        if section not in by_section:
            continue
        parts.append(f"\n## {section}\n\n| case | what happened | status |\n| --- | --- | --- |")
        parts.extend(f"| {r.case} | {r.what} | {r.status} |" for r in by_section[section])
    return "\n".join(parts) + "\n"
