"""Run the code of a README section as it is written, so examples cannot drift."""

from __future__ import annotations

import pathlib
import re


def readme_section(title: str) -> str:
    """The Python code of one README section, its blocks joined in order."""
    text = (pathlib.Path(__file__).parent.parent / "README.md").read_text()
    assert f"\n## {title}\n" in text, f"README has no section {title!r}"
    body = text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", body, re.S)
    assert blocks, f"README section {title!r} has no Python example"
    return "\n".join(blocks)
