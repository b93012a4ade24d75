//! No module of the workspace imports, directly or through others, a module
//! that imports it back — except the runtime's process core, whose knot
//! owl-runtime's crate docs explain. A new cycle fails here, naming the
//! modules in it and who imports whom.
//!
//! A module's imports are the `crate::`, `super::` and `self::` paths in its
//! file (comments and `pub use` re-exports aside: a re-export is a facade,
//! not a dependency). That is all the crates use to reach each other's
//! modules, so a small scanner suffices and CI needs no extra tool.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The only cycle allowed, by crate: see "How the modules depend on each
/// other" in owl-runtime's crate docs.
const ALLOWED: &[(&str, &[&str])] = &[(
    "owl-runtime",
    &[
        "group",
        "message",
        "node",
        "pid",
        "process",
        "process::cell",
        "process::table",
        "process::task",
        "registry",
        "scheduler",
        "trace",
    ],
)];

type Module = Vec<String>;

#[test]
fn no_crate_has_a_module_cycle_beyond_the_documented_one() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut found = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(&crates)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("src").is_dir())
        .collect();
    names.sort();
    assert!(names.len() >= 7, "found only {names:?} under {crates:?}");
    for krate in names {
        let name = krate.file_name().unwrap().to_string_lossy().into_owned();
        let graph = module_graph(&krate.join("src"));
        for cycle in cycles(&graph) {
            let members: BTreeSet<String> = cycle.iter().map(show).collect();
            let allowed = ALLOWED.iter().any(|(c, mods)| {
                *c == name && members == mods.iter().map(|m| m.to_string()).collect()
            });
            if !allowed {
                let edges: Vec<String> = cycle
                    .iter()
                    .map(|m| {
                        let to: Vec<String> = graph[m]
                            .iter()
                            .filter(|t| cycle.contains(t))
                            .map(show)
                            .collect();
                        format!("    {} -> {}", show(m), to.join(", "))
                    })
                    .collect();
                found.push(format!("{name}: {members:?}\n{}", edges.join("\n")));
            }
        }
    }
    assert!(found.is_empty(), "module cycles:\n{}", found.join("\n"));
}

#[test]
fn the_scanner_sees_a_cycle_through_crate_super_and_grouped_paths() {
    let dir = std::env::temp_dir().join(format!("owl-module-graph-{}", std::process::id()));
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("a")).unwrap();
    std::fs::write(src.join("lib.rs"), "mod a;\nmod b;\npub use a::A;\n").unwrap();
    std::fs::write(
        src.join("a/mod.rs"),
        "mod inner;\n// crate::b is only a comment\n",
    )
    .unwrap();
    std::fs::write(src.join("a/inner.rs"), "use crate::{b::B, lib_item};\n").unwrap();
    std::fs::write(
        src.join("b.rs"),
        "fn f() { super::a::inner::g() }\n#[cfg(test)]\nmod tests {\n    use super::*;\n    use crate::c::C;\n}\n",
    )
    .unwrap();
    std::fs::write(src.join("c.rs"), "use crate::b::f;\n").unwrap();
    let graph = module_graph(&src);
    let found: Vec<BTreeSet<String>> = cycles(&graph)
        .iter()
        .map(|c| c.iter().map(show).collect())
        .collect();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(
        found,
        vec![BTreeSet::from(["a::inner".to_string(), "b".to_string()])]
    );
}

/// Every module of a crate, with the modules it imports.
fn module_graph(src: &Path) -> BTreeMap<Module, BTreeSet<Module>> {
    let mut files = Vec::new();
    collect_rs(src, &mut files);
    let modules: BTreeMap<Module, String> = files
        .iter()
        .map(|f| (module_of(src, f), std::fs::read_to_string(f).unwrap()))
        .collect();
    let known: BTreeSet<Module> = modules.keys().cloned().collect();
    modules
        .iter()
        .map(|(module, text)| {
            let imports = paths_in(&strip(text))
                .into_iter()
                .filter_map(|path| resolve(module, &path, &known))
                .filter(|target| target != module)
                .collect();
            (module.clone(), imports)
        })
        .collect()
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_rs(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/process/cell.rs` is `process::cell`; `lib.rs`, `main.rs` and
/// `mod.rs` name their folder.
fn module_of(src: &Path, file: &Path) -> Module {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Module = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("lib" | "main" | "mod")
    ) {
        parts.pop();
    }
    parts
}

/// The text without comments, `pub use …;` re-exports and inline test
/// modules (whose `super` is the file's own module, not its parent).
fn strip(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let code = line.find("//").map_or(line, |i| &line[..i]);
        out.push_str(code);
        out.push('\n');
    }
    while let Some(at) = out.find("#[cfg(test)]") {
        let after = at + "#[cfg(test)]".len();
        if !out[after..].trim_start().starts_with("mod ") {
            out.replace_range(at..after, "");
            continue;
        }
        let end = match out[after..].find(['{', ';']) {
            Some(i) if out.as_bytes()[after + i] == b'{' => matching_brace(&out, after + i) + 1,
            Some(i) => after + i + 1,
            None => out.len(),
        };
        out.replace_range(at..end, "");
    }
    let mut rest = out.as_str();
    let mut kept = String::with_capacity(out.len());
    while let Some(at) = find_pub_use(rest) {
        kept.push_str(&rest[..at]);
        let end = rest[at..].find(';').map_or(rest.len(), |i| at + i + 1);
        rest = &rest[end..];
    }
    kept.push_str(rest);
    kept
}

fn find_pub_use(text: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = text[from..].find("pub") {
        let at = from + i;
        let after = text[at + 3..].trim_start();
        let after = match after.strip_prefix('(') {
            Some(r) => r.split_once(')').map_or("", |(_, r)| r).trim_start(),
            None => after,
        };
        let boundary = at == 0 || !is_ident(text.as_bytes()[at - 1] as char);
        if boundary && after.starts_with("use ") {
            return Some(at);
        }
        from = at + 3;
    }
    None
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Every path that starts with `crate`, `super` or `self`, as its segments;
/// a group (`crate::{a::X, b}`) gives one path per member.
fn paths_in(text: &str) -> Vec<Vec<String>> {
    let bytes = text.as_bytes();
    let mut paths = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let starts_word = i == 0 || !is_ident(bytes[i - 1] as char);
        // Scanning bytes is safe: the heads are ASCII, so a match starts on
        // a character boundary.
        let head = ["crate::", "super::", "self::"]
            .into_iter()
            .find(|h| bytes[i..].starts_with(h.as_bytes()));
        match head {
            Some(head) if starts_word => {
                let (found, end) = path_at(text, i);
                debug_assert!(found.iter().all(|p| !p.is_empty()), "{head}");
                paths.extend(found);
                i = end.max(i + 1);
            }
            _ => i += 1,
        }
    }
    paths
}

/// The path (or group of paths) starting at `at`, and where it ends.
fn path_at(text: &str, at: usize) -> (Vec<Vec<String>>, usize) {
    let bytes = text.as_bytes();
    let mut segments = Vec::new();
    let mut i = at;
    loop {
        let start = i;
        while i < bytes.len() && is_ident(bytes[i] as char) {
            i += 1;
        }
        if i > start {
            segments.push(text[start..i].to_string());
        }
        if !text[i..].starts_with("::") {
            return (vec![segments], i);
        }
        i += 2;
        if text[i..].starts_with('{') {
            let close = matching_brace(text, i);
            let members = split_top_level(&text[i + 1..close]);
            let group = members
                .iter()
                .flat_map(|member| {
                    let member = member.trim();
                    let (inner, _) = path_at(member, 0);
                    inner.into_iter().map(|tail| {
                        let mut full = segments.clone();
                        full.extend(tail);
                        full
                    })
                })
                .collect();
            return (group, close + 1);
        }
    }
}

fn matching_brace(text: &str, open: usize) -> usize {
    let mut depth = 0;
    for (i, c) in text[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return open + i;
                }
            }
            _ => {}
        }
    }
    text.len() - 1
}

fn split_top_level(group: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&group[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&group[start..]);
    parts.into_iter().filter(|p| !p.trim().is_empty()).collect()
}

/// The module a path imports from: the longest prefix of its absolute form
/// that is a module of the crate (the crate root when none is).
fn resolve(from: &Module, path: &[String], known: &BTreeSet<Module>) -> Option<Module> {
    let mut absolute: Module = Vec::new();
    let mut rest = path;
    match path.first().map(String::as_str) {
        Some("crate") => rest = &path[1..],
        Some("self") => {
            absolute = from.clone();
            rest = &path[1..];
        }
        Some("super") => {
            absolute = from.clone();
            while rest.first().map(String::as_str) == Some("super") {
                absolute.pop();
                rest = &rest[1..];
            }
        }
        _ => return None,
    }
    absolute.extend(rest.iter().filter(|s| s.as_str() != "self").cloned());
    (0..=absolute.len())
        .rev()
        .map(|n| absolute[..n].to_vec())
        .find(|prefix| known.contains(prefix))
}

/// The strongly connected groups of more than one module (Tarjan).
fn cycles(graph: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    struct Walk<'g> {
        graph: &'g BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<&'g Module, usize>,
        low: BTreeMap<&'g Module, usize>,
        stack: Vec<&'g Module>,
        found: Vec<Vec<Module>>,
    }
    impl<'g> Walk<'g> {
        fn visit(&mut self, v: &'g Module) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            for w in self.graph.get(v).into_iter().flatten() {
                let Some((w, _)) = self.graph.get_key_value(w) else {
                    continue;
                };
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.stack.contains(&w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let at = self.stack.iter().position(|m| *m == v).unwrap();
                let group: Vec<Module> = self.stack.drain(at..).cloned().collect();
                if group.len() > 1 {
                    self.found.push(group);
                }
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !walk.index.contains_key(v) {
            walk.visit(v);
        }
    }
    walk.found
}

fn show(module: &Module) -> String {
    if module.is_empty() {
        "lib".to_string()
    } else {
        module.join("::")
    }
}
