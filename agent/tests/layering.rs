//! The layering of DESIGN.md, checked on the sources: every `crate::x`
//! a module names must be below it in [`ORDER`], and a few arrows that
//! the order alone would allow are ruled out by name. A module that
//! imports one above it fails this test with the file and the line.
//!
//! Run alone: `cargo test -p streembit-agent --test layering`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The agent's top-level modules, lowest first: a module may name only
/// modules before it. Leaves (`api`, `metrics`, `journal`) name nothing
/// of the crate; `clock` names only `wire`'s time type.
const ORDER: &[&str] = &[
    "identity",
    "api",
    "metrics",
    "journal",
    "state_file",
    "wire",
    "clock",
    "dht",
    "transport",
    "node",
    "discovery",
    "devices",
    "daemon",
    "cli",
];

/// Arrows the order allows but the design does not: the DHT core knows
/// no clock and no transport (it is sans-IO); the transport knows no DHT;
/// the CLI is a thin client of the API and the daemon, not of the layers
/// under them.
const FORBIDDEN: &[(&str, &str)] = &[
    ("dht", "clock"),
    ("dht", "api"),
    ("dht", "metrics"),
    ("dht", "journal"),
    ("dht", "state_file"),
    ("transport", "dht"),
    ("transport", "api"),
    ("transport", "journal"),
    ("cli", "node"),
    ("cli", "discovery"),
    ("cli", "devices"),
    ("cli", "transport"),
    ("cli", "dht"),
    ("cli", "journal"),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a source file belongs to (`node` for
/// `src/node/nat/dial.rs`, `clock` for `src/clock.rs`).
fn module_of(file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src()).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    Some(first.trim_end_matches(".rs").to_owned())
}

/// The top-level modules `line` names through `crate::` paths, including
/// grouped imports (`use crate::{wire, identity::Keypair}`).
fn named(line: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = line;
    while let Some(at) = rest.find("crate::") {
        let after = &rest[at + "crate::".len()..];
        if let Some(group) = after.strip_prefix('{') {
            let inner = group.split('}').next().unwrap_or("");
            for part in inner.split(',') {
                let name: String = part
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    found.insert(name);
                }
            }
        } else {
            let name: String = after
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.insert(name);
            }
        }
        rest = after;
    }
    found
}

/// Every `(file:line, from, to)` arrow that points up or is forbidden.
fn violations() -> (Vec<String>, usize) {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    files.sort();
    let rank = |m: &str| ORDER.iter().position(|o| *o == m);
    let mut bad = Vec::new();
    let mut arrows = 0;
    for file in &files {
        let Some(from) = module_of(file) else {
            continue;
        };
        // lib.rs and main.rs are the crate's roots, above every layer.
        let Some(from_rank) = rank(&from) else {
            continue;
        };
        let text = std::fs::read_to_string(file).expect("readable source");
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            for to in named(code) {
                if to == from {
                    continue;
                }
                arrows += 1;
                let up = match rank(&to) {
                    Some(to_rank) => to_rank > from_rank,
                    None => true,
                };
                let forbidden = FORBIDDEN.contains(&(from.as_str(), to.as_str()));
                if up || forbidden {
                    let shown = file.strip_prefix(src()).unwrap_or(file).display();
                    bad.push(format!(
                        "src/{shown}:{}: {from} -> {to}: {}",
                        n + 1,
                        code.trim()
                    ));
                }
            }
        }
    }
    (bad, arrows)
}

#[test]
fn arrows_point_down_only() {
    let (bad, arrows) = violations();
    // The check must have seen the crate's imports, or it proves nothing.
    assert!(
        arrows > 100,
        "only {arrows} crate:: paths found: is src/ there?"
    );
    assert!(
        bad.is_empty(),
        "{} imports against DESIGN.md's layering:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn every_module_has_a_place_in_the_order() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let modules: BTreeSet<String> = files.iter().filter_map(|f| module_of(f)).collect();
    let unplaced: Vec<&String> = modules
        .iter()
        .filter(|m| !ORDER.contains(&m.as_str()) && *m != "lib" && *m != "main")
        .collect();
    assert!(
        unplaced.is_empty(),
        "modules missing from ORDER (add each where its imports put it): {unplaced:?}"
    );
}

#[test]
fn the_check_sees_an_arrow_going_up() {
    assert_eq!(
        named("use crate::{daemon::config, wire};"),
        BTreeSet::from(["daemon".to_owned(), "wire".to_owned()])
    );
    assert_eq!(
        named("let x = crate::node::Dialer::new(crate::clock::Clock::system());"),
        BTreeSet::from(["clock".to_owned(), "node".to_owned()])
    );
}

/// The bridges crate turns bus traffic into readings and never depends on
/// the agent (which decides identity and signing).
#[test]
fn bridges_never_depend_on_the_agent() {
    let bridges = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bridges");
    let manifest = std::fs::read_to_string(bridges.join("Cargo.toml")).expect("bridges manifest");
    assert!(
        !manifest.contains("streembit-agent"),
        "bridges/Cargo.toml names the agent"
    );
    let mut files = Vec::new();
    rust_files(&bridges.join("src"), &mut files);
    assert!(!files.is_empty(), "no bridges sources found");
    for f in files {
        let text = std::fs::read_to_string(&f).expect("readable source");
        assert!(
            !text.contains("streembit_agent"),
            "{} names the agent",
            f.display()
        );
    }
}

/// DESIGN.md, "Time": the wall clock is read in one place, the agent's
/// `Clock`, so an agent can be run on a wrong clock. Test code (files
/// named `tests.rs`, folders `tests/`, and everything after a
/// `#[cfg(test)]`) may make its own times.
#[test]
fn the_clock_is_read_in_one_place() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut reads = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(src()).unwrap_or(file);
        let is_test = rel.components().any(|c| c.as_os_str() == "tests")
            || rel.file_name().is_some_and(|n| n == "tests.rs");
        if is_test || rel == Path::new("clock.rs") {
            continue;
        }
        let text = std::fs::read_to_string(file).expect("readable source");
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        for (n, line) in code.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            for read in ["SystemTime::now", "Instant::now", "UnixMillis::now"] {
                if line.contains(read) {
                    reads.push(format!("src/{}:{}: {}", rel.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        reads.is_empty(),
        "clock reads outside clock.rs (take a Clock instead):\n{}",
        reads.join("\n")
    );
}
