//! The crate is layered, at every level: `src/lib.rs` declares its rooms from
//! the bottom up, and a room may use only rooms declared before it; inside a
//! room, its `mod.rs` declares the room's files the same way, and a file may
//! use only the files declared before it (a leaf uses none). A file's own
//! parts (`x.rs` and the files `x/` it declares) and the file that declares
//! them may use each other: they are one file split in parts, the parts
//! being ordered among themselves in their turn. So there is no import
//! circle between rooms nor between the files of one room, and
//! ARCHITECTURE.md's map stays true.
//!
//! Every `crate::`, `super::` and `self::` path is followed to the file that
//! defines what it names (through `use` and re-exports), braces expanded.
//! Test code (after `#[cfg(test)]`, and `tests.rs` files) is exempt: a
//! room's tests may drive the whole node.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// One module of the crate, declared by a `mod x;` line.
#[derive(Debug, Default)]
struct Module {
    file: PathBuf,
    /// Its non-test code, comments dropped.
    code: String,
    /// The modules it declares, in order.
    children: Vec<String>,
    /// What its `use` lines bring into scope: name -> the path as written.
    imports: HashMap<String, Vec<String>>,
}

/// The crate's modules by path (`[]` is the crate root, `["inbound", "v1"]`
/// is `crate::inbound::v1`), read from `src/lib.rs` down.
fn modules(root: &Path) -> HashMap<Vec<String>, Module> {
    let mut all = HashMap::new();
    let mut todo = vec![(Vec::new(), root.join("lib.rs"))];
    while let Some((path, file)) = todo.pop() {
        let module = parse_module(&file, &fs::read_to_string(&file).unwrap());
        // `lib.rs` and `mod.rs` declare files beside them, `x.rs` in `x/`.
        let dir = match file.file_name().unwrap().to_str().unwrap() {
            "lib.rs" | "mod.rs" => file.parent().unwrap().to_owned(),
            _ => file.with_extension(""),
        };
        for child in &module.children {
            let flat = dir.join(format!("{child}.rs"));
            let child_file = if flat.exists() { flat } else { dir.join(child).join("mod.rs") };
            assert!(child_file.exists(), "{} declares `mod {child};`: no file for it", file.display());
            let mut child_path = path.clone();
            child_path.push(child.clone());
            todo.push((child_path, child_file));
        }
        all.insert(path, module);
    }
    all
}

/// The code before `#[cfg(test)]`, without comments.
fn non_test_code(text: &str) -> String {
    text.lines()
        .take_while(|l| l.trim() != "#[cfg(test)]")
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn parse_module(file: &Path, text: &str) -> Module {
    let code = non_test_code(text);
    let mut children = Vec::new();
    for line in code.lines() {
        let line = line.trim();
        let line = line.strip_prefix("pub(crate) ").or_else(|| line.strip_prefix("pub ")).unwrap_or(line);
        if let Some(name) = line.strip_prefix("mod ").and_then(|l| l.strip_suffix(';')) {
            children.push(name.trim().to_owned());
        }
    }
    let mut imports = HashMap::new();
    for (at, _) in code.match_indices("use ") {
        let before = code[..at].trim_end();
        // A `use` item: at a line's start, after a visibility or a `;`/`{`/`}`.
        let starts_item = before.is_empty()
            || before.ends_with([';', '{', '}', ')'])
            || before.ends_with("pub")
            || code[..at].ends_with('\n');
        if !starts_item || code[..at].chars().last().is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let statement = &code[at + "use ".len()..];
        let statement = &statement[..statement.find(';').unwrap_or(statement.len())];
        for (name, path) in use_tree(statement) {
            imports.insert(name, path);
        }
    }
    Module { file: file.to_owned(), code, children, imports }
}

/// The names a `use` tree brings into scope and the path each stands for:
/// `a::{b, c::{d as e, self}}` gives `b` -> `a::b`, `e` -> `a::c::d`, `c` -> `a::c`.
fn use_tree(tree: &str) -> Vec<(String, Vec<String>)> {
    let mut found = Vec::new();
    for path in paths(tree) {
        let (mut path, alias) = path;
        if path.last().is_some_and(|s| s == "self") {
            path.pop();
        }
        let name = alias.or_else(|| path.last().cloned());
        if let Some(name) = name.filter(|n| n != "*" && n != "_") {
            found.push((name, path));
        }
    }
    found
}

/// Every path a `use` tree (or a path expression) spells, braces expanded,
/// each with its `as` alias if any.
fn paths(text: &str) -> Vec<(Vec<String>, Option<String>)> {
    let mut out = Vec::new();
    parse_tree(text.trim_start(), &mut Vec::new(), &mut out);
    out
}

/// Parses one tree at the start of `s` under `prefix`; returns what follows it.
fn parse_tree<'a>(
    s: &'a str,
    prefix: &mut Vec<String>,
    out: &mut Vec<(Vec<String>, Option<String>)>,
) -> &'a str {
    let s = s.trim_start();
    if let Some(mut rest) = s.strip_prefix('{') {
        loop {
            rest = rest.trim_start();
            if let Some(after) = rest.strip_prefix('}') {
                return after;
            }
            if rest.is_empty() {
                return rest;
            }
            rest = parse_tree(rest, prefix, out).trim_start();
            rest = rest.strip_prefix(',').unwrap_or(rest);
        }
    }
    let segment: String = s.chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '*').collect();
    let rest = &s[segment.len()..];
    if segment.is_empty() {
        return rest.get(1..).unwrap_or("");
    }
    prefix.push(segment);
    let rest = if let Some(deeper) = rest.strip_prefix("::") {
        parse_tree(deeper, prefix, out)
    } else {
        let trimmed = rest.trim_start();
        let (alias, rest) = match trimmed.strip_prefix("as ") {
            Some(aliased) => {
                let alias: String =
                    aliased.trim_start().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                let after = aliased.trim_start()[alias.len()..].to_owned();
                (Some(alias), &rest[rest.len() - after.len()..])
            }
            None => (None, rest),
        };
        out.push((prefix.clone(), alias));
        rest
    };
    prefix.pop();
    rest
}

/// Every `crate::`, `super::` and `self::` path in `code` (use lines and
/// expressions alike), braces expanded.
fn relative_paths(code: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    for start in ["crate::", "super::", "self::"] {
        for (at, _) in code.match_indices(start) {
            // Not the tail of a longer path (`foo::super::`) or of a name (`my_crate::`).
            if code[..at].ends_with("::")
                || code[..at].chars().last().is_some_and(|c| c.is_alphanumeric() || c == '_')
            {
                continue;
            }
            let mut prefix = Vec::new();
            let mut these = Vec::new();
            parse_tree(&code[at..], &mut prefix, &mut these);
            // (`super::x::{self, Y}`: the `self` is `super::x`.)
            found.extend(these.into_iter().map(|(mut path, _)| {
                if path.last().is_some_and(|s| s == "self") {
                    path.pop();
                }
                path
            }));
        }
    }
    found
}

/// The module whose file defines what `path` names, seen from module `from`.
fn resolve(
    all: &HashMap<Vec<String>, Module>,
    from: &[String],
    path: &[String],
    depth: usize,
) -> Vec<String> {
    let here = from.to_vec();
    let Some((first, rest)) = path.split_first() else { return here };
    if depth > 16 {
        return here;
    }
    match first.as_str() {
        "crate" => return resolve(all, &[], rest, depth + 1),
        "super" => return resolve(all, &from[..from.len().saturating_sub(1)], rest, depth + 1),
        "self" => return resolve(all, from, rest, depth + 1),
        _ => {}
    }
    let Some(module) = all.get(from) else { return here };
    if module.children.contains(first) {
        let mut child = here;
        child.push(first.clone());
        return resolve(all, &child, rest, depth + 1);
    }
    if let Some(imported) = module.imports.get(first) {
        let local = imported
            .first()
            .is_some_and(|s| ["crate", "super", "self"].contains(&s.as_str()) || module.children.contains(s));
        if local && imported.as_slice() != [first.clone()] {
            let mut full = imported.clone();
            full.extend(rest.iter().cloned());
            return resolve(all, from, &full, depth + 1);
        }
    }
    // Defined here (or an external crate's name imported here).
    here
}

/// Every use of a module declared after the user's own branch, as text.
fn violations(all: &HashMap<Vec<String>, Module>, root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut paths: Vec<_> = all.keys().cloned().collect();
    paths.sort();
    for from in paths {
        let module = &all[&from];
        if module.file.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        for used in relative_paths(&module.code) {
            let target = resolve(all, &from, &used, 0);
            // The deepest module both are inside; an ancestor or a part may be used.
            let common = from.iter().zip(&target).take_while(|(a, b)| a == b).count();
            if common == from.len() || common == target.len() {
                continue;
            }
            let parent = &all[&from[..common]];
            let rank = |name: &String| parent.children.iter().position(|c| c == name);
            let (user, usee) = (&from[common], &target[common]);
            if rank(usee) > rank(user) {
                found.push(format!(
                    "{} uses {} ({}), declared after {user} in {}",
                    module.file.strip_prefix(root).unwrap_or(&module.file).display(),
                    used.join("::"),
                    all[&target].file.strip_prefix(root).unwrap_or(&all[&target].file).display(),
                    parent.file.strip_prefix(root).unwrap_or(&parent.file).display(),
                ));
            }
        }
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn each_room_and_each_file_uses_only_what_is_declared_before_it() {
    let all = modules(&src());
    assert!(all[&Vec::new()].children.len() > 5, "lib.rs declares the rooms");
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    for file in files {
        let declared = all.values().any(|m| m.file == file);
        let test_file = file.file_name().is_some_and(|n| n == "tests.rs");
        assert!(declared || test_file, "{} is in no module the crate declares", file.display());
    }
    let found = violations(&all, &src());
    assert!(
        found.is_empty(),
        "modules used from below (an import circle, or about to be one):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_checker_sees_braced_aliased_and_relative_paths() {
    let found =
        relative_paths("use crate::{a::b, c, d::{e, f}};\nlet x = crate::g::h();\nuse super::{i::J, K};");
    let expected: Vec<Vec<&str>> = vec![
        vec!["crate", "a", "b"],
        vec!["crate", "c"],
        vec!["crate", "d", "e"],
        vec!["crate", "d", "f"],
        vec!["crate", "g", "h"],
        vec!["super", "i", "J"],
        vec!["super", "K"],
    ];
    assert_eq!(found, expected);
    let imports = use_tree("x::{y as z, w::{self, V}}");
    let names: Vec<&str> = imports.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["z", "w", "V"]);
    assert_eq!(imports[1].1, ["x", "w"]);
}

/// A crate of three files in one room where `b` uses `a` (declared before
/// it, fine) and `a` uses `b` through a re-export (a circle): only the
/// second is reported. And rooms the same: `low` may not use `high`.
#[test]
fn the_checker_follows_super_and_re_exports_to_the_file() {
    let dir = std::env::temp_dir().join(format!("layering-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("room")).unwrap();
    let write = |path: &str, text: &str| fs::write(dir.join(path), text).unwrap();
    write("lib.rs", "mod low;\nmod room;\nmod high;\npub use high::Top;\n");
    write("low.rs", "use crate::Top;\n");
    write("high.rs", "pub struct Top;\nuse crate::room::B;\n");
    write("room/mod.rs", "mod a;\nmod b;\npub(crate) use b::B;\nuse crate::low;\n");
    write("room/a.rs", "use super::B;\npub(crate) struct A;\n");
    write("room/b.rs", "use super::a::A;\npub(crate) struct B;\n#[cfg(test)]\nuse super::later::Nothing;\n");
    let all = modules(&dir);
    let found = violations(&all, &dir);
    let _ = fs::remove_dir_all(&dir);
    assert_eq!(
        found,
        [
            "low.rs uses crate::Top (high.rs), declared after low in lib.rs",
            "room/a.rs uses super::B (room/b.rs), declared after a in room/mod.rs",
        ]
    );
}
