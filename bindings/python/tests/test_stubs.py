"""The shipped type stubs describe the compiled module exactly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_stubtest_passes_on_compiled_module(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "inferwatch"],
        # Outside the repository, so that mypy finds only the installed package.
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_package_ships_stubs_and_marker() -> None:
    import inferwatch

    package_dir = Path(inferwatch.__file__).parent
    assert (package_dir / "py.typed").is_file()
    assert (package_dir / "_native.pyi").is_file()
