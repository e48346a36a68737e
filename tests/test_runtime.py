"""graphdiff.runtime: the allocator setting the command line applies, observed through the process's memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

PROBE = """
import json, sys
import torch
from graphdiff.runtime import keep_freed_memory

def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20

changed = keep_freed_memory()
x = torch.ones(50_000_000)  # 200 MB, far above glibc's mmap threshold
held = rss_mb()
del x
print(json.dumps({"changed": changed, "held": held, "after_free": rss_mb()}))
"""


def probe(**env: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, env={**os.environ, **env}, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def glibc() -> bool:
    try:
        return sys.platform.startswith("linux") and (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (ValueError, OSError):
        return False


@pytest.mark.skipif(not glibc(), reason="glibc's malloc")
def test_freed_tensor_memory_is_kept_for_reuse_unless_told_not_to():
    kept = probe()
    assert kept["changed"] and kept["after_free"] > kept["held"] - 20  # the 200 MB stay in the heap
    system = probe(GRAPHDIFF_MALLOC="system")
    assert not system["changed"] and system["after_free"] < system["held"] - 150  # munmap'ed at once


def test_the_command_line_applies_it(monkeypatch):
    from graphdiff import cli

    calls = []
    monkeypatch.setattr(cli, "keep_freed_memory", lambda: calls.append(1) or True)
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert calls == [1]
