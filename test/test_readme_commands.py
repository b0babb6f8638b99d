"""The documentation's runnable commands run: every ```bash runnable block of README.md and
doc/*.md is executed as written (bash -e), from a scratch directory that looks like the
workspace root (scripts/with-env, and demo_output/bag: a bag recorded from the simulator,
as `make demo` leaves one). Each file a block writes with -o / --out must exist afterwards.
Blocks that need a ROS 2 install are fenced as plain ```bash; equivalent tests exercise them
(README.md, "Development")."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "doc").glob("*.md"))]
FENCE = re.compile(r"^```bash runnable[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
OUTPUTS = re.compile(r"(?:^|\s)(?:-o|--out|--output)\s+(\S+)")

pytestmark = pytest.mark.timeout(300)


def runnable_blocks() -> list[tuple[str, str]]:
    blocks, seen = [], set()
    for doc in DOCS:
        if not doc.is_file():
            continue
        for i, match in enumerate(FENCE.finditer(doc.read_text())):
            block = match.group(1)
            if block not in seen:  # a doc may repeat a README block
                seen.add(block)
                blocks.append((f"{doc.name}#{i + 1}", block))
    return blocks


BLOCKS = runnable_blocks()


def test_the_docs_have_runnable_blocks():
    assert len(BLOCKS) >= 2, "README.md marks its runnable commands with ```bash runnable"


@pytest.fixture(scope="module")
def workspace_like(sim_session, tmp_path_factory) -> Path:
    cwd = tmp_path_factory.mktemp("docs")
    (cwd / "scripts").mkdir()
    wrapper = cwd / "scripts" / "with-env"
    wrapper.write_text(f'#!/usr/bin/env bash\nexec "{ROOT}/scripts/with-env" "$@"\n')
    wrapper.chmod(0o755)
    (cwd / "demo_output").mkdir()
    (cwd / "demo_output" / "bag").symlink_to(sim_session.bag)
    return cwd


@pytest.mark.parametrize("where,block", BLOCKS, ids=[w for w, _ in BLOCKS])
def test_runnable_block(where, block, workspace_like):
    result = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", block], cwd=workspace_like,
                            capture_output=True, text=True, timeout=240,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert result.returncode == 0, f"{where} failed:\n{block}\n{result.stdout[-3000:]}\n" \
                                   f"{result.stderr[-3000:]}"
    for path in OUTPUTS.findall(block.replace("\\\n", " ")):
        assert (workspace_like / path).exists(), f"{where}: {path} was not written"
