"""The systemd unit that `semfs service` prints, checked by systemd's own verifier."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from semfs.cli import main


def test_unit_is_valid_for_systemd(
    tmp_path: Path, store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mountpoint = tmp_path / "photos 100%"  # a space and a percent sign need escaping
    mountpoint.mkdir()
    assert main(["service", str(store), str(mountpoint)]) == 0
    unit = capsys.readouterr().out
    assert f"{sys.executable} -m semfs mount --foreground" in unit
    assert "'" + str(mountpoint).replace("%", "%%") + "'" in unit
    assert "Restart=on-failure" in unit
    verifier = shutil.which("systemd-analyze")
    if verifier is None:
        pytest.skip("systemd-analyze is not installed")
    path = tmp_path / "semfs-photos.service"
    path.write_text(unit)
    result = subprocess.run(
        [verifier, "verify", "--man=no", str(path)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
