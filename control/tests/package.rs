//! The Debian package: `scripts/build-deb.sh` packages the binaries this test run built
//! (the directory of `aftrd`: release under `scripts/test.sh`), `dpkg -i` installs it,
//! the installed aftrd checks the installed example configuration, the man pages and
//! the unit are where they belong, and `dpkg --purge` removes every file it installed.
//! Needs root (CI runs as root on a throwaway machine); the package is purged even when
//! the test fails.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Purges the package when dropped, so that a failed assertion leaves nothing behind.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["--purge", "aftr"]).output();
    }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_deb_installs_checks_its_example_and_purges_cleanly() {
    let installed_before = Command::new("dpkg").args(["-s", "aftr"]).output().unwrap().status.success();
    assert!(!installed_before, "a package aftr is installed already; this test would remove it");
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_aftrd")).parent().unwrap();
    let out = tempfile::tempdir().unwrap();
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let deb = run(Command::new("bash")
        .arg(format!("{root}/scripts/build-deb.sh"))
        .arg("--bin-dir")
        .arg(bin_dir)
        .arg("--out")
        .arg(out.path()));
    let deb = PathBuf::from(deb.trim());
    assert!(deb.is_file(), "{deb:?}");

    let guard = Installed;
    run(Command::new("dpkg").arg("-i").arg(&deb));
    let files: Vec<String> = run(Command::new("dpkg").args(["-L", "aftr"])).lines().map(String::from).collect();
    for f in [
        "/usr/sbin/aftrd",
        "/usr/bin/aftrctl",
        "/lib/systemd/system/aftrd@.service",
        "/usr/share/man/man8/aftrd.8.gz",
        "/usr/share/man/man8/aftrctl.8.gz",
        "/usr/share/man/man5/aftr.conf.5.gz",
        "/usr/share/bash-completion/completions/aftrctl",
        "/etc/aftr/aftr-ha.conf",
    ] {
        assert!(files.iter().any(|l| l == f), "{f} not in the package:\n{}", files.join("\n"));
        assert!(Path::new(f).exists(), "{f} not installed");
    }
    let status = run(Command::new("dpkg").args(["-s", "aftr"]));
    assert!(status.contains("Status: install ok installed"), "{status}");
    let conffiles = status.split("Conffiles:").nth(1).unwrap_or_default();
    assert!(
        conffiles.contains("/etc/aftr/aftr-ha.conf") && conffiles.contains("/etc/aftr/aftr-two-locations.conf"),
        "{status}"
    );
    for example in ["/etc/aftr/aftr-ha.conf", "/etc/aftr/aftr-two-locations.conf"] {
        let said = run(Command::new("/usr/sbin/aftrd").args(["--check", "--config", example]));
        assert!(said.contains("configuration is valid"), "{said}");
    }
    // The man pages are whole pages (man renders them); aftr.conf(5) lists the commands.
    let page = run(Command::new("zcat").arg("/usr/share/man/man5/aftr.conf.5.gz"));
    assert!(page.starts_with(".TH AFTR.CONF 5") && page.contains("service\\-location"), "{page}");
    let page = run(Command::new("zcat").arg("/usr/share/man/man8/aftrd.8.gz"));
    assert!(page.contains("\\-\\-check"), "{page}");
    let unit = std::fs::read_to_string("/lib/systemd/system/aftrd@.service").unwrap();
    assert!(unit.contains("ExecStart=/usr/sbin/aftrd "), "{unit}");
    // systemd reads every setting of the unit (it warns, and exits 0, on one it does not
    // know) and finds its programs.
    let verify =
        Command::new("systemd-analyze").args(["verify", "/lib/systemd/system/aftrd@.service"]).output().unwrap();
    let said = String::from_utf8_lossy(&verify.stdout).to_string() + &String::from_utf8_lossy(&verify.stderr);
    assert!(verify.status.success() && said.trim().is_empty(), "systemd-analyze verify: {said}");

    drop(guard);
    assert!(!Command::new("dpkg").args(["-s", "aftr"]).output().unwrap().status.success(), "still installed");
    // Nothing of the package is left: its files, and its own directories.
    let left: Vec<&String> = files.iter().filter(|f| f.contains("aftr") && Path::new(f.as_str()).exists()).collect();
    assert!(left.is_empty(), "left after dpkg --purge: {left:?}");
}
