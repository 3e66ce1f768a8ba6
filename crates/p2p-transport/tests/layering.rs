//! The rooms of this crate are layered: `src/lib.rs` declares its modules
//! from the bottom up, and each module may use only modules declared before
//! it (or itself). So no two rooms import each other, and ARCHITECTURE.md's
//! map stays true. Test code (after `#[cfg(test)]`, and `tests.rs` files) is
//! exempt: a room's tests may drive the whole node.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The modules `lib.rs` declares, in order, and the room each public name
/// it re-exports (`pub use room::{A, B}`) comes from.
fn rooms() -> (Vec<String>, HashMap<String, String>) {
    let lib = fs::read_to_string(src().join("lib.rs")).unwrap();
    let mut order = Vec::new();
    let mut names = HashMap::new();
    for line in lib.lines() {
        let line = line.trim();
        if let Some(module) = line.strip_prefix("mod ").and_then(|l| l.strip_suffix(';')) {
            order.push(module.to_owned());
        }
        if let Some(rest) = line.strip_prefix("pub use ") {
            let Some((room, items)) = rest.split_once("::") else { continue };
            for item in items.trim_matches(|c| "{};".contains(c)).split(',') {
                names.insert(item.trim().to_owned(), room.to_owned());
            }
        }
    }
    (order, names)
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

/// The first segment of every `crate::` path in `code`, braces expanded one level.
fn crate_paths(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 1 => break,
                    '}' => depth -= 1,
                    ',' if depth == 1 => {
                        found.push(first_segment(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                if depth == 1 {
                    item.push(c);
                }
            }
            found.push(first_segment(&item));
        } else {
            found.push(first_segment(rest));
        }
    }
    found.retain(|s| !s.is_empty());
    found
}

fn first_segment(path: &str) -> String {
    path.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect()
}

#[test]
fn each_room_uses_only_the_rooms_below_it() {
    let (order, names) = rooms();
    assert!(order.len() > 5, "lib.rs declares the rooms: {order:?}");
    let rank = |room: &str| order.iter().position(|r| r == room);
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut violations = Vec::new();
    for file in files {
        let relative = file.strip_prefix(src()).unwrap();
        let room = relative.components().next().unwrap().as_os_str().to_string_lossy();
        let room = room.trim_end_matches(".rs").to_owned();
        if room == "lib" || file.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let own = rank(&room)
            .unwrap_or_else(|| panic!("{} is in no room that lib.rs declares", relative.display()));
        let text = fs::read_to_string(&file).unwrap();
        let code: String = text
            .lines()
            .take_while(|l| l.trim() != "#[cfg(test)]")
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        for used in crate_paths(&code) {
            let used_room = names.get(&used).cloned().unwrap_or(used.clone());
            let Some(used_rank) = rank(&used_room) else { continue }; // a crate-root item (libp2p re-export)
            if used_rank > own {
                violations.push(format!("{} ({room}) uses crate::{used} ({used_room})", relative.display()));
            }
        }
    }
    assert!(violations.is_empty(), "rooms used from below:\n{}", violations.join("\n"));
}

#[test]
fn the_checker_sees_braced_and_inline_paths() {
    let paths = crate_paths("use crate::{a::b, c, d::{e, f}};\nlet x = crate::g::h();");
    assert_eq!(paths, ["a", "c", "d", "g"]);
}
