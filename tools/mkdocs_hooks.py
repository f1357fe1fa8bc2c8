"""MkDocs hooks for the documentation site: repository files the pages link to.

A page under ``docs/`` links to a file elsewhere in the repository with a path
relative to itself (``../benchmarks/results.png``), which works when the page is
read on GitHub. The site has no such file: these hooks add each linked file to the
site at its repository path and point the link at it, so the same Markdown works in
both places. Loaded by mkdocs.yml (``hooks:``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

# A Markdown link or image target that leaves docs/: ](../path) or ](../path#anchor)
OUTSIDE = re.compile(r"\]\(\.\./([^)#\s]+)(#[^)\s]*)?\)")


def _repository_files(config: Any) -> set[str]:
    """The repository paths of the files (not pages) that pages link to from docs/."""
    docs = Path(config["docs_dir"])
    found = set()
    for page in docs.glob("*.md"):
        for target, _ in OUTSIDE.findall(page.read_text(encoding="utf-8")):
            if not target.endswith(".md") and (docs.parent / target).is_file():
                found.add(target)
    return found


def on_files(files: Files, config: Any) -> Files:
    root = str(Path(config["docs_dir"]).parent)
    for target in sorted(_repository_files(config)):
        files.append(File(target, root, config["site_dir"], config["use_directory_urls"]))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    if "/" in page.file.src_uri:  # pages are top-level; a nested page would need ../../
        return markdown

    def inside(match: re.Match[str]) -> str:
        target, anchor = match.group(1), match.group(2) or ""
        if files.get_file_from_path(target) is None:
            return match.group(0)  # left for MkDocs to report
        return f"]({target}{anchor})"

    return OUTSIDE.sub(inside, markdown)
