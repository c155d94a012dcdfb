"""scripts/bootstrap: a no-op on a current venv, a clear message when it cannot install.

The first install itself is what `scripts/test` does on a fresh clone (and CI's .ci/run);
these check the two answers that must stay cheap and readable.
"""

import hashlib
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BOOTSTRAP = ROOT / "scripts" / "bootstrap"


def run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BOOTSTRAP)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_current_venv_is_left_alone() -> None:
    # scripts/test ran bootstrap before pytest, so the stamp holds pyproject.toml's hash.
    stamp = ROOT / ".venv" / ".albs-installed"
    expected = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    assert stamp.read_text().strip() == expected
    done = run({})
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


def test_a_missing_interpreter_is_named_with_its_packages() -> None:
    done = run({"ALBS_PYTHON": "python-that-does-not-exist", "ALBS_BOOTSTRAP_SKIP_APT": "1"})
    assert done.returncode == 1
    assert "missing system packages: python3.11 python3.11-venv" in done.stderr
    assert "apt-get install" in done.stderr
