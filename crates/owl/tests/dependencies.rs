//! Every declared dependency is used: a crate listed in the workspace is
//! taken by some member, and each member's own dependencies appear in its
//! code. A dependency left behind costs build time in CI and misleads a
//! reader about what the crate relies on.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Dependencies taken for what they switch on, not for names in our code.
const USED_WITHOUT_A_PATH: &[&str] = &[];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The names declared in `[section]` of a manifest, as written there
/// (`name = …`, `name.workspace = true`, `name = { … }`).
fn declared(manifest: &str, section: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut inside = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            inside = line == format!("[{section}]");
            continue;
        }
        if !inside || line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some((key, _)) = line.split_once('=') {
            let name = key.trim().split('.').next().unwrap_or("").trim();
            if !name.is_empty() {
                names.insert(name.to_string());
            }
        }
    }
    names
}

fn members() -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(workspace_root().join("crates"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("Cargo.toml").is_file())
        .collect();
    found.sort();
    found
}

fn rust_sources(dir: &Path, out: &mut String) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            // A module borrowed from another crate's folder
            // (`#[path = "../../owl-web/tests/common/browser.rs"]`) is this
            // crate's code too.
            for borrowed in text.split("#[path = \"").skip(1) {
                let file = borrowed.split('"').next().unwrap_or_default();
                if let Ok(more) = std::fs::read_to_string(path.parent().unwrap().join(file)) {
                    out.push_str(&more);
                }
            }
            out.push_str(&text);
            out.push('\n');
        }
    }
}

/// Whether `text` names the crate `name` as a path (`name::`, `use name`,
/// `name!`), a word on its own.
fn names_crate(text: &str, name: &str) -> bool {
    let ident = name.replace('-', "_");
    text.match_indices(&ident).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = &text[at + ident.len()..];
        let word_start = before.is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        word_start
            && (after.starts_with("::") || after.starts_with(';') || after.starts_with(" as "))
    })
}

#[test]
fn every_workspace_dependency_is_taken_by_a_member() {
    let root = std::fs::read_to_string(workspace_root().join("Cargo.toml")).unwrap();
    let offered = declared(&root, "workspace.dependencies");
    assert!(offered.contains("tokio"), "{offered:?}");
    let mut taken = BTreeSet::new();
    for member in members() {
        let manifest = std::fs::read_to_string(member.join("Cargo.toml")).unwrap();
        for section in ["dependencies", "dev-dependencies", "build-dependencies"] {
            taken.extend(declared(&manifest, section));
        }
    }
    let unused: Vec<&String> = offered.difference(&taken).collect();
    assert!(
        unused.is_empty(),
        "declared in the workspace, taken by no crate: {unused:?}"
    );
}

#[test]
fn every_members_dependency_appears_in_its_code() {
    let mut unused = Vec::new();
    for member in members() {
        let manifest = std::fs::read_to_string(member.join("Cargo.toml")).unwrap();
        let mut code = String::new();
        rust_sources(&member.join("src"), &mut code);
        let mut all_code = code.clone();
        for dir in ["tests", "benches", "examples"] {
            rust_sources(&member.join(dir), &mut all_code);
        }
        let crate_name = member.file_name().unwrap().to_string_lossy().into_owned();
        for (section, text) in [("dependencies", &code), ("dev-dependencies", &all_code)] {
            for name in declared(&manifest, section) {
                if !USED_WITHOUT_A_PATH.contains(&name.as_str()) && !names_crate(text, &name) {
                    unused.push(format!("{crate_name} [{section}] {name}"));
                }
            }
        }
    }
    assert!(
        unused.is_empty(),
        "declared but never named in the code: {unused:#?}"
    );
}

#[test]
fn the_checks_see_a_dependency_and_its_absence() {
    let manifest = "[package]\nname = \"x\"\n\n[dependencies]\nserde.workspace = true\n\
                    tokio = { workspace = true }\n# a comment\nrand = \"0.9\"\n\n[dev-dependencies]\nproptest = \"1\"\n";
    assert_eq!(
        declared(manifest, "dependencies"),
        BTreeSet::from(["serde".into(), "tokio".into(), "rand".into()])
    );
    assert!(names_crate("use serde_json::Value;", "serde_json"));
    assert!(names_crate("let x = tokio::spawn(f);", "tokio"));
    assert!(!names_crate("use serde_json::Value;", "serde"));
    assert!(!names_crate("// the word rand in prose", "rand"));
}
