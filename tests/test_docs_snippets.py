"""Every Python block of README.md and docs/*.md runs, so the documentation cannot rot.

Each file is one case: its ```python (or ```py) blocks run in order in one shared namespace, in an empty temporary
working directory, offline, with the reference data in ``HF_SCRATCH_DATA``. Blocks of other languages (bash, text,
yaml, or no language) are not run; a Python example that cannot run here (it needs the Hub) is written as
```text with a sentence saying why. Files are found by glob, so new pages are covered when they are added.
A failure's traceback shows the Markdown file and line, since each block is compiled under the file's path with
its own line numbers.
"""

import re
import socket
import sys
import types
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PYTHON_LANGUAGES = {"python", "py"}
_OPENING = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\n]*)$")


def python_blocks(text: str, name: str) -> list[tuple[int, str]]:
    """``(line of the first code line, code)`` of each Python block, in order (CommonMark fences: three or more
    backticks or tildes, closed by at least as many of the same character; indented fences are dedented)."""
    blocks, fence = [], None
    for number, line in enumerate(text.splitlines(), start=1):
        if fence is None:
            match = _OPENING.match(line)
            if match:
                fence, indent, start, body = match["fence"], len(match["indent"]), number + 1, []
                language = (match["info"].split() or [""])[0].lower()
            continue
        stripped = line.strip()
        if stripped.startswith(fence) and set(stripped) == {fence[0]}:  # the closing fence
            if language in PYTHON_LANGUAGES:
                blocks.append((start, "\n".join(body)))
            fence = None
        else:
            # Remove the fence's own indentation (less where a line has less), as CommonMark does.
            body.append(line[min(indent, len(line) - len(line.lstrip())):])
    if fence is not None:
        raise AssertionError(f"{name}: the code block opened at line {start - 1} is never closed")
    return blocks


def test_the_block_finder_reads_fences_as_markdown_does():
    text = "\n".join([
        "```python", "a = 1", "```",          # run
        "```bash", "echo hi", "```",          # not Python
        "````text", "```python", "b = 2", "```", "````",  # a fence quoted inside another block is not a block
        "- item", "  ```py", "  if a:", "      c = 3", "  ```",  # indented under a list item: dedented
        "```", "d = 4", "```",                # no language: not run
    ])
    assert python_blocks(text, "x.md") == [(2, "a = 1"), (14, "if a:\n    c = 3")]
    with pytest.raises(AssertionError, match="line 1 is never closed"):
        python_blocks("```python\nx = 1\n", "x.md")


def test_the_docs_are_found():
    names = {path.name for path in DOC_FILES}
    assert {"README.md", "guide.md", "model.md", "hub.md"} <= names
    # The API tour and the guide are the pages most worth keeping runnable.
    for name in ("README.md", "guide.md"):
        path = next(p for p in DOC_FILES if p.name == name)
        assert python_blocks(path.read_text(encoding="utf-8"), name), f"{name} has no Python block"


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda path: path.name)
def test_python_blocks_run(path, data_dir, tmp_path, monkeypatch):
    name = str(path.relative_to(ROOT))
    blocks = python_blocks(path.read_text(encoding="utf-8"), name)
    if not blocks:
        return  # a page with no Python has nothing to check

    monkeypatch.chdir(tmp_path)  # what snippets write (checkpoints, runs/) goes here
    for variable, value in dict(HF_SCRATCH_DATA=str(data_dir), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
                                HF_DATASETS_OFFLINE="1", HF_SCRATCH_OFFLINE="1", MPLBACKEND="Agg").items():
        monkeypatch.setenv(variable, value)
    real_connect = socket.socket.connect

    def no_network(sock, address):  # a snippet that reaches out fails at once instead of waiting on a timeout
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            raise ConnectionRefusedError(f"{name}: documentation snippets must not use the network ({address})")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", no_network)
    # A real module, so that dataclasses, pickling and `if __name__ == ...` behave as in a script.
    module = types.ModuleType("__doc_snippets__")
    module.__file__ = str(tmp_path / "snippets.py")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    torch.manual_seed(0)
    for first_line, code in blocks:
        # Padding with newlines keeps the Markdown file's line numbers, so tracebacks show the failing line.
        exec(compile("\n" * (first_line - 1) + code, str(path), "exec"), module.__dict__)
