"""What `semfs install-service` writes: units systemd's own verifier accepts, names as
systemd-escape makes them, an fstab line findmnt reads back, and mount options."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from semfs.cli import COMMANDS, _parser, as_mount_helper, main
from semfs.config import Settings, config_template, write_config_template
from semfs.daemon.options import format_mount_options, parse_mount_options
from semfs.daemon.service import carry_out, escape_path, fstab_line, plan_install
from semfs.errors import QuietError

ODD_PATHS = ["/mnt/photos", "/mnt/my photos 100%", "/srv/.hidden/ünïcode", "/a-b/c_d:e.f", "/"]


@pytest.mark.parametrize("path", ODD_PATHS)
def test_unit_names_are_escaped_as_systemd_escape_does(path: str) -> None:
    tool = shutil.which("systemd-escape")
    if tool is None:
        pytest.skip("systemd-escape is not installed")
    expected = subprocess.run([tool, "--path", path], capture_output=True, text=True, check=True)
    assert escape_path(path) == expected.stdout.strip()


@pytest.mark.parametrize("user", [False, True], ids=["system", "user"])
def test_installed_units_pass_systemd_analyze_verify(
    tmp_path: Path, store: Path, user: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    verifier = shutil.which("systemd-analyze")
    if verifier is None:
        pytest.skip("systemd-analyze is not installed")
    units, mountpoint = tmp_path / "units", tmp_path / "photos 100%"
    arguments = ["install-service", str(store), str(mountpoint), "--no-enable"]
    arguments += ["--unit-dir", str(units), "--link-dir", str(tmp_path / "bin"), "-o", "top_k=5"]
    assert main(arguments + (["--user"] if user else [])) == 0
    instance = f"semfs@{escape_path(str(mountpoint))}.service"
    dropin = (units / f"{instance}.d" / "semfs.conf").read_text()
    assert f'"SEMFS_STORE={store}"' in dropin and '"SEMFS_OPTIONS=-o top_k=5"' in dropin
    template = (units / "semfs@.service").read_text()
    assert ("WantedBy=default.target" in template) == user
    assert mountpoint.is_dir()
    assert (tmp_path / "bin" / "semfs").exists() != user  # the fstab helper: system only
    runtime = tmp_path / "run"  # a user manager's, which --user needs
    runtime.mkdir(mode=0o700)
    environment = {"SYSTEMD_UNIT_PATH": f"{units}:", "PATH": "/usr/bin:/bin",
                   "XDG_RUNTIME_DIR": str(runtime)}  # fmt: skip
    result = subprocess.run(
        [verifier, *(["--user"] if user else []), "verify", "--man=no", instance],
        capture_output=True, text=True, env=environment, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    # The verifier is not a rubber stamp: a broken unit beside it fails.
    (units / "broken@.service").write_text("[Service]\nExecStart=not-absolute\n")
    broken = subprocess.run(
        [verifier, "verify", "--man=no", "broken@x.service"],
        capture_output=True, text=True, env=environment, check=False,
    )  # fmt: skip
    assert broken.returncode != 0


def test_fstab_line_reads_back_and_is_appended_once(tmp_path: Path, store: Path) -> None:
    fstab, mountpoint = tmp_path / "fstab", str(tmp_path / "my photos")
    fstab.write_text("# existing\n/dev/sda1 / ext4 defaults 0 1")  # no final newline
    plan = plan_install(store, mountpoint, use_fstab=True, options="top_k=9",
                        fstab=fstab, link_dir=tmp_path / "bin")  # fmt: skip
    assert "appended" in carry_out(plan, mountpoint)[-1]
    assert "already has the line" in carry_out(plan, mountpoint)[-1]
    lines = fstab.read_text().splitlines()
    assert lines[:2] == ["# existing", "/dev/sda1 / ext4 defaults 0 1"] and len(lines) == 3
    found = subprocess.run(
        ["findmnt", "-F", str(fstab), "-n", "-o", "SOURCE,FSTYPE,OPTIONS", "-T", mountpoint],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    source, fstype, options = found.stdout.split()
    assert (source, fstype) == (str(store), "fuse.semfs") and "top_k=9" in options
    other = plan_install(tmp_path, mountpoint, use_fstab=True, fstab=fstab,
                         link_dir=tmp_path / "bin")  # fmt: skip
    with pytest.raises(QuietError, match="already mounts something"):
        carry_out(other, mountpoint)
    assert fstab_line(store, "/mnt/x").endswith("0 0")


def test_mount_options_parse_settings_and_ignore_what_mount_adds() -> None:
    options = parse_mount_options("rw,noatime,top_k=20,workers=1,allow_other,dev,suid,"
                                  "x-systemd.requires=a,nofail,threshold=0.9,debug")  # fmt: skip
    assert options.settings == {
        "top_k": 20, "ingest_workers": 1, "allow_other": True, "max_distance": 0.9,
    }  # fmt: skip
    assert options.debug and not options.read_only
    assert parse_mount_options("ro").read_only
    assert parse_mount_options(format_mount_options(options)) == options
    over_files = parse_mount_options("rw,nonempty,top_k=3")  # as mount.fuse3 passes it
    assert over_files.nonempty and not options.nonempty
    assert parse_mount_options(format_mount_options(over_files)) == over_files  # to the daemon
    assert parse_mount_options("captioner=transformers:/models/blip").settings == {
        "captioner": "transformers:/models/blip"
    }
    for bad, message in [
        ("colour=red", "unknown mount option 'colour=red'"),
        ("top_k=many", "not a number"),
        ("top_k", "needs a value"),
        ("writeback_cache=maybe", "not true or false"),
    ]:
        with pytest.raises(QuietError, match=message):
            parse_mount_options(bad)


def test_mount_options_given_more_than_once_add_up() -> None:
    """As mount(8) reads them; argparse alone kept the last -o only, so a second one
    silently dropped the first's settings."""
    args = _parser().parse_args(
        ["mount", "/srv/photos", "/mnt/p", "-o", "ro,top_k=7", "-o", "facet_people=off"]
    )
    options = parse_mount_options(args.options)
    assert options.read_only and options.settings == {"top_k": 7, "facet_people": "off"}
    once = _parser().parse_args(
        ["install-service", "/srv/photos", "/mnt/p", "-o", "ro", "-o", "debug"]
    )
    assert once.options == "ro,debug"
    assert _parser().parse_args(["mount", "/srv/photos", "/mnt/p"]).options is None


def test_mount_helper_form_is_a_mount_command() -> None:
    assert as_mount_helper(["/srv/photos", "/mnt/p", "-o", "rw"]) == [
        "mount", "/srv/photos", "/mnt/p", "-o", "rw",
    ]  # fmt: skip
    assert as_mount_helper(["status", "/srv/photos"]) == ["status", "/srv/photos"]
    subcommands = next(a for a in _parser()._actions if a.dest == "command").choices
    assert subcommands is not None and set(subcommands) == COMMANDS


def test_config_template_documents_every_setting_at_its_default(tmp_path: Path) -> None:
    import tomllib

    template = config_template()
    uncommented = "\n".join(
        line[1:] if line.startswith("#") and not line.startswith("# ") else line
        for line in template.splitlines()
    )
    values = tomllib.loads(uncommented)
    defaults = Settings(store=tmp_path)
    for name, value in values.items():
        if name in ("max_distance", "example_max_distance"):
            assert getattr(defaults, name) is None  # shown with an example value
        elif name == "image_extensions":
            assert frozenset(value) == defaults.image_extensions
        else:
            assert value == getattr(defaults, name), name
    assert len(values) == len(Settings.__dataclass_fields__) - 1  # all but the store
    settings = Settings(store=tmp_path)
    assert write_config_template(settings) and not write_config_template(settings)
    assert Settings.load(tmp_path) == settings  # all commented out: the defaults


def test_the_daemon_keeps_numpys_blas_to_one_thread() -> None:
    """Its second thread spins on 2 cores the daemon's threads already share."""
    import numpy  # noqa: F401  (loads OpenBLAS, whose threads are limited)
    from threadpoolctl import threadpool_info

    from semfs.daemon.mount import limit_blas_threads

    limiter = limit_blas_threads()
    try:
        blas = [pool for pool in threadpool_info() if pool["user_api"] == "blas"]
        assert blas and all(pool["num_threads"] == 1 for pool in blas)
    finally:
        limiter.restore_original_limits()
