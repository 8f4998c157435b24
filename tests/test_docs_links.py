"""The documentation holds together: every relative link points to a file that exists (and, with a
`#fragment`, to a heading of that file), and every page in docs/ is found from the README.

Read: README.md, docs/*.md and the READMEs of the folders (ui/, train/, inference/, k8s/...).
Links to other sites are not followed; links inside code are not links.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FOLDERS_WITH_READMES = ("ui", "train", "inference", "k8s")

FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


def documents() -> list[Path]:
    found = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    for folder in FOLDERS_WITH_READMES:
        found += sorted((REPO / folder).glob("**/README.md"))
    return found


def prose(path: Path) -> str:
    """The Markdown without fenced code blocks and code spans."""
    return CODE_SPAN.sub("", FENCE.sub("", path.read_text()))


def links(path: Path) -> list[str]:
    return LINK.findall(prose(path))


def is_external(target: str) -> bool:
    return re.match(r"^[a-z][a-z0-9+.-]*:", target) is not None


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading: its words
    text = text.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text())
    seen: dict[str, int] = {}
    result = set()
    for heading in HEADING.findall(text):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


def relative(path: Path) -> str:
    return str(path.relative_to(REPO))


def test_there_are_documents_with_links():
    """The scan sees the pages and their links (else the tests below prove nothing)."""
    docs = documents()
    assert REPO / "README.md" in docs and len(docs) >= 5
    assert any("docs/" in target for target in links(REPO / "README.md"))
    assert slug("Model metadata (`<name>.json`)") == "model-metadata-namejson"
    assert slug("On this machine (`make run`)") == "on-this-machine-make-run"


@pytest.mark.parametrize("document", documents(), ids=relative)
def test_every_relative_link_points_to_an_existing_file(document):
    broken = []
    for target in links(document):
        if is_external(target):
            continue
        file_part, _, fragment = target.partition("#")
        resolved = (document.parent / file_part).resolve() if file_part else document
        if not resolved.exists():
            broken.append(f"{target} (no such file)")
        elif fragment and resolved.suffix == ".md" and fragment not in anchors(resolved):
            broken.append(f"{target} (no heading #{fragment} in {relative(resolved)})")
    assert not broken, f"{relative(document)} links to what is not there:\n" + "\n".join(broken)


def test_every_page_in_docs_is_linked_from_the_readme():
    readme = REPO / "README.md"
    linked = {(readme.parent / target.partition("#")[0]).resolve()
              for target in links(readme) if not is_external(target)}
    unlinked = [relative(page) for page in sorted((REPO / "docs").glob("*.md"))
                if page.resolve() not in linked]
    assert not unlinked, f"pages in docs/ that README.md does not link to: {unlinked}"
