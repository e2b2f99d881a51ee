"""A new user's first command, exactly as the README gives it: a fresh clone runs `make demo` end to end
(its own venv, the browser check, the sandbox, plan -> post -> metrics -> performance through Dagster)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.timeout(1200)  # a fresh venv and several Dagster processes: minutes on a busy 2-core machine
def test_fresh_clone_runs_make_demo(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, timeout=120)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PIPELINE_", "DAGSTER_", "VIRTUAL_ENV")) or k == "PIPELINE_BROWSER_EXECUTABLE"}
    env["PIPELINE_X_BASE_URL"] = "http://127.0.0.1:18799"  # its own sandbox, whatever else runs here
    out = subprocess.run(["make", "demo"], cwd=clone, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "checks: 3/3 passed; duplicates on X: 0; posts with media on X: 1" in out.stdout
    assert "@demo_alice" in out.stdout and "make ui" in out.stdout
    assert (clone / ".pipeline" / "pipeline.db").exists() and (clone / ".dagster_home" / "dagster.yaml").exists()
