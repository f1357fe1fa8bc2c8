"""The README and the documentation site say the same thing.

The README is the short version of the site's home page: its examples appear on the
site verbatim (where ``tests/tools/test_readme.py`` runs them too), its Quickstart
and Development commands are the site's, and it links to every page. The site's
navigation (``mkdocs.yml``) lists every page, and the API reference renders every
public name. ``mkdocs build --strict`` (run by CI) checks the links and references.
"""

from __future__ import annotations

import re
from pathlib import Path

import interop

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
FENCE = re.compile(r"^```(\w+)[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _section(text: str, heading: str) -> str:
    """The text under ``## heading``, up to the next heading of level 2 or above."""
    lines, fenced, inside = [], False, False
    for line in text.splitlines(keepends=True):
        if re.match(r"```\w*[ \t]*$", line):  # a fence line, not ```` ``` ```` in text
            fenced = not fenced
        elif not fenced and re.match(r"#{1,2} ", line):
            if inside:
                break
            inside = line.rstrip("\n") == f"## {heading}"
            continue
        if inside:
            lines.append(line)
    assert lines, f"no section '## {heading}'"
    return "".join(lines)


def _blocks(text: str, language: str) -> list[str]:
    return [body for lang, body in FENCE.findall(text) if lang == language]


def test_every_readme_example_is_on_the_site_verbatim() -> None:
    site = [block for page in PAGES for block in _blocks(_read(page), "python")]
    readme = _blocks(_read(ROOT / "README.md"), "python")
    assert readme
    missing = [block.splitlines()[0:3] for block in readme if block not in site]
    assert not missing, f"README examples not on any page of docs/: {missing}"


def test_quickstart_commands_are_the_sites() -> None:
    readme = _blocks(_section(_read(ROOT / "README.md"), "Quickstart"), "bash")
    home = _blocks(_section(_read(DOCS / "index.md"), "Quickstart"), "bash")
    assert readme and readme == home


def test_development_commands_are_the_sites() -> None:
    readme = _blocks(_section(_read(ROOT / "README.md"), "Development"), "bash")
    page = _blocks(_read(DOCS / "development.md"), "bash")
    assert readme and readme[0] == page[0]
    assert "mkdocs build --strict" in readme[0]


def test_ci_builds_the_site_strictly_with_the_docs_extra() -> None:
    ci = _read(ROOT / ".ci" / "run")
    build = re.search(r"^[^#\n]*mkdocs build --strict --site-dir.*$", ci, re.M)
    assert build and "--quiet" not in build.group(0)  # it hides what --strict counts
    assert '".[all,test,bench,docs]"' in ci


def test_every_page_is_in_the_navigation_and_linked_from_the_readme() -> None:
    nav = re.findall(r"^\s+- .*?:\s*(\S+\.md)\s*$", _read(ROOT / "mkdocs.yml"), re.M)
    assert sorted(nav) == sorted(page.name for page in PAGES)
    links = set(re.findall(r"\]\(docs/([\w-]+\.md)(?:#[\w-]*)?\)", _read(ROOT / "README.md")))
    assert links == {page.name for page in PAGES}


def test_the_api_reference_renders_every_public_name() -> None:
    # (load and save are rendered from the module that defines them: the package
    # exports them lazily, which mkdocstrings cannot follow.)
    rendered = set(re.findall(r"^::: interop\.(?:_io\.)?(\w+)\s*$", _read(DOCS / "api.md"), re.M))
    public = set(interop.__all__) - {"__version__"}
    assert rendered == public | {"testing"}


def test_device_claims_say_how_they_are_verified() -> None:
    """The GPU paths are described with their verification status, never as measured facts.

    The results of the device check (``tools/gpu_check.sh``) appear in the README and
    on the Devices page once it has run on a CUDA device; until then both say they
    are pending. Phrases that stated unverified device behaviour as fact stay out.
    """
    from benchmarks import scenarios

    readme = _read(ROOT / "README.md")
    devices = _read(DOCS / "devices.md")
    section = _section(readme, "Devices")
    assert "](docs/devices.md)" in section and "tools/gpu_check.sh" in section
    results = _section(devices, "Results")
    measured = "| scenario | comparison |" in results
    assert measured or "PENDING" in results
    assert measured or "pending" in section.lower()
    for name, _ in scenarios.select(["gpu"]):
        assert f"| `{name}` |" in devices, f"{name} is not described on docs/devices.md"
    unverified = [
        "one device-to-host copy, synchronized",
        "cast on the device first where that moves fewer bytes",
        "one synchronization per stream",
        "so the transfers overlap with your work",
        "zero-copy through DLPack",
    ]
    for path in (ROOT / "README.md", *PAGES):
        text = _read(path)
        for phrase in unverified:
            assert phrase not in text, f"{path.name}: {phrase!r}"
