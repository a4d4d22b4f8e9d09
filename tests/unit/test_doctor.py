"""`semfs doctor`: each problem is found, named, and comes with a fix."""

from __future__ import annotations

from pathlib import Path

from semfs.commands.doctor import Finding, report_text, run_checks
from semfs.config import Settings


def by_check(findings: list[Finding]) -> dict[str, Finding]:
    return {finding.check: finding for finding in findings}


def test_a_healthy_machine_and_store(store: Path, tmp_path: Path) -> None:
    Settings.load(store).make_state_dir()
    (tmp_path / "mnt").mkdir()
    findings = by_check(run_checks(str(store), str(tmp_path / "mnt"), models=True))
    for name in ("kernel", "/dev/fuse", "fusermount3", "pyfuse3", "store", "state directory",
                 "disk space", "mountpoint", "captioner", "embedder",
                 "image features"):  # fmt: skip
        assert findings[name].ok, findings[name]
    assert "384-d vector" in findings["embedder"].detail
    assert "256-d vector" in findings["image features"].detail
    assert report_text(list(findings.values())).endswith("all good")


def test_problems_are_named_with_their_fix(store: Path, tmp_path: Path) -> None:
    state = Settings.load(store).make_state_dir()
    state.chmod(0o755)  # readable by everyone: the captions of every photo
    (state / "config.toml").write_text(
        'captioner = "transformers:/no/such/model"\nimage_features = "no-such-net"\n'
    )
    (state / "catalog.sqlite3").write_bytes(b"not a database, but 100 bytes long " * 3)
    findings = run_checks(str(store), str(tmp_path / "missing"), models=True)
    failed = {finding.check: finding for finding in findings if not finding.ok}
    assert set(failed) == {"state directory", "catalog", "mountpoint", "captioner",
                           "image features"}  # fmt: skip
    assert failed["state directory"].fix.startswith(f"chmod 700 {state}")
    assert "semfs check STORE --repair" in failed["catalog"].fix
    assert failed["mountpoint"].fix == f"mkdir -p {tmp_path / 'missing'}"
    assert "/no/such/model" in failed["captioner"].detail
    assert "no-such-net" in failed["image features"].detail
    text = report_text(findings)
    assert "FAIL  captioner" in text and "      fix: " in text and text.endswith("5 problems found")


def test_a_store_that_is_not_there(tmp_path: Path) -> None:
    findings = run_checks(str(tmp_path / "nowhere"), None, models=False)
    store = by_check(findings)["store"]
    assert not store.ok and "is not a directory" in store.detail
