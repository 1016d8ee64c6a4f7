"""Reading the commented-out channel tables of ``config.example.toml``."""

from __future__ import annotations

from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.toml"


def example_table(header: str) -> str:
    """The TOML of a commented-out table (``"[adapters.slack]"``), uncommented.

    The block starts at ``# [header]`` and ends at the next separator line (``# ---``)
    or the end of the file; ``# key = value`` lines become settings, prose stays a
    comment.
    """
    text = EXAMPLE.read_text()
    start = text.index(f"# {header}\n")
    block = text[start:].split("\n# ----", 1)[0]
    lines = []
    for line in block.splitlines():
        body = line[2:] if line.startswith("# ") else line
        is_setting = body.startswith("[") or (
            " = " in body and body.split(" = ")[0].isidentifier()
        )
        lines.append(body if is_setting else line)
    return "\n".join(lines) + "\n"
