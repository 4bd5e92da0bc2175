//! `yocto/meta-streembit`: the recipe's crate list (`streembit-crates.inc`)
//! is exactly Cargo.lock's, as `scripts/yocto-crates.py` generates it, and
//! the recipe is named for the workspace version and installs what the
//! Debian package installs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repository root")
        .to_owned()
}

fn recipe_dir() -> PathBuf {
    repo().join("yocto/meta-streembit/recipes-streembit/streembit")
}

/// `python3 scripts/yocto-crates.py --check [--lock LOCK] [--inc INC]`.
fn check(lock: Option<&Path>, inc: Option<&Path>) -> Output {
    let mut c = Command::new("python3");
    c.arg(repo().join("scripts/yocto-crates.py")).arg("--check");
    if let Some(lock) = lock {
        c.arg("--lock").arg(lock);
    }
    if let Some(inc) = inc {
        c.arg("--inc").arg(inc);
    }
    c.output()
        .expect("python3 (./scripts/install-test-deps.sh)")
}

#[test]
fn crates_inc_is_in_sync_with_cargo_lock() {
    let out = check(None, None);
    assert!(
        out.status.success(),
        "{}\nfix: scripts/yocto-crates.py",
        String::from_utf8_lossy(&out.stderr)
    );

    // Every registry crate of Cargo.lock is in the .inc with its checksum.
    let lock = std::fs::read_to_string(repo().join("Cargo.lock")).expect("Cargo.lock");
    let inc = std::fs::read_to_string(recipe_dir().join("streembit-crates.inc")).expect(".inc");
    let mut crates = 0;
    for block in lock.split("[[package]]").skip(1) {
        let field = |k: &str| {
            block
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{k} = \""))?.strip_suffix('"'))
        };
        let (Some(name), Some(version)) = (field("name"), field("version")) else {
            panic!("a Cargo.lock package without name or version: {block}");
        };
        let Some(sum) = field("checksum") else {
            continue; // a workspace member
        };
        crates += 1;
        assert!(
            inc.contains(&format!("    crate://crates.io/{name}/{version} \\\n")),
            "{name} {version} missing from SRC_URI"
        );
        assert!(
            inc.contains(&format!(
                "SRC_URI[{name}-{version}.sha256sum] = \"{sum}\"\n"
            )),
            "{name} {version}: checksum missing or wrong"
        );
    }
    assert!(crates > 100, "only {crates} crates read from Cargo.lock");
    assert_eq!(inc.matches("crate://crates.io/").count(), crates);
    assert_eq!(inc.matches(".sha256sum] = ").count(), crates);
}

#[test]
fn the_check_fails_when_cargo_lock_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lock = std::fs::read_to_string(repo().join("Cargo.lock")).expect("Cargo.lock");

    // A crate upgraded: version and checksum change.
    let (name, old) = ("hex", "version = \"0.4.3\"");
    assert!(lock.contains(&format!("name = \"{name}\"\n{old}")));
    let upgraded = dir.path().join("upgraded.lock");
    std::fs::write(
        &upgraded,
        lock.replace(
            &format!("name = \"{name}\"\n{old}"),
            &format!("name = \"{name}\"\nversion = \"0.4.4\""),
        ),
    )
    .expect("write");
    let out = check(Some(&upgraded), None);
    assert_eq!(
        out.status.code(),
        Some(1),
        "an upgraded crate went unnoticed"
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("hex/0.4.4") && said.contains("out of sync"),
        "{said}"
    );

    // A checksum changed alone.
    let first_sum = lock
        .lines()
        .find_map(|l| l.strip_prefix("checksum = \"")?.strip_suffix('"'))
        .expect("a checksum");
    let resummed = dir.path().join("resummed.lock");
    std::fs::write(&resummed, lock.replacen(first_sum, &"0".repeat(64), 1)).expect("write");
    assert_eq!(check(Some(&resummed), None).status.code(), Some(1));

    // And the generator writes what the check then accepts.
    let inc = dir.path().join("streembit-crates.inc");
    let written = Command::new("python3")
        .arg(repo().join("scripts/yocto-crates.py"))
        .arg("--lock")
        .arg(&upgraded)
        .arg("--inc")
        .arg(&inc)
        .output()
        .expect("python3");
    assert!(written.status.success());
    assert!(check(Some(&upgraded), Some(&inc)).status.success());
    assert_eq!(check(None, Some(&inc)).status.code(), Some(1));
}

#[test]
fn the_recipe_matches_the_workspace() {
    let version = env!("CARGO_PKG_VERSION");
    let path = recipe_dir().join(format!("streembit_{version}.bb"));
    let recipe = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (rename the recipe for version {version})",
            path.display()
        )
    });
    for needle in [
        "require ${BPN}-crates.inc",
        "inherit cargo cargo-update-recipe-crates systemd useradd",
        "${S}/systemd/streembit.service",
        "${S}/etc/agent.example.toml ${D}${sysconfdir}/streembit/agent.toml",
        "SYSTEMD_SERVICE:${PN} = \"streembit.service\"",
        "--groups dialout,i2c streembit",
        "CONFFILES:${PN} = \"${sysconfdir}/streembit/agent.toml\"",
    ] {
        assert!(
            recipe.contains(needle),
            "{} lacks {needle:?}",
            path.display()
        );
    }
    // The recipe installs files that exist.
    for file in [
        "systemd/streembit.service",
        "etc/agent.example.toml",
        "LICENSE-MIT",
        "LICENSE-APACHE",
    ] {
        assert!(repo().join(file).is_file(), "{file} missing");
    }
    // LIC_FILES_CHKSUM holds each license file's md5.
    for (file, digest) in recipe
        .split("file://")
        .skip(1)
        .filter_map(|s| s.split_once(";md5="))
        .map(|(f, rest)| (f, &rest[..32]))
    {
        let out = Command::new("md5sum")
            .arg(repo().join(file))
            .output()
            .expect("md5sum");
        let have = String::from_utf8_lossy(&out.stdout);
        assert!(
            have.starts_with(digest),
            "{file}: md5 {have} but the recipe says {digest}"
        );
    }
}
