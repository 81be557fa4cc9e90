//! The shape of the code, held by a test so it stays: every source file
//! under 500 lines, every function under 80 (tests aside), and no cycle
//! between sibling modules (a module may use its parent's items; two
//! modules under the same parent never depend on each other both ways).
//!
//! A light reading of the source, not a parser: string and character
//! literals and comments are blanked before braces are counted.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_FILE_LINES: usize = 500;
const MAX_FN_LINES: usize = 80;

fn sources() -> Vec<(PathBuf, String)> {
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                out.push((path, text));
            }
        }
    }
    let mut out = Vec::new();
    walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut out);
    out.sort();
    out
}

/// The code before the file's unit tests.
fn production(text: &str) -> &str {
    text.split("\n#[cfg(test)]").next().unwrap_or(text)
}

/// A line with its literals and comment blanked, so braces count.
fn code_of(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                while let Some(d) = chars.next() {
                    match d {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
                out.push_str("\"\"");
            }
            '\'' => {
                // A char literal ('x', '\n', '{') or a lifetime ('a).
                let rest: String = chars.clone().take(3).collect();
                let lit = rest.starts_with('\\') || rest.chars().nth(1) == Some('\'');
                if lit {
                    while let Some(d) = chars.next() {
                        if d == '\\' {
                            chars.next();
                        } else if d == '\'' {
                            break;
                        }
                    }
                }
                out.push('\'');
            }
            '/' if chars.peek() == Some(&'/') => break,
            _ => out.push(c),
        }
    }
    out
}

/// `(name, first line, lines)` of every function body in `text`.
fn functions(text: &str) -> Vec<(String, usize, usize)> {
    let lines: Vec<String> = text.lines().map(code_of).collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(at) = line.find("fn ") else { continue };
        let head = line[..at].trim();
        let is_item = head.is_empty()
            || head.split_whitespace().all(|w| {
                [
                    "pub",
                    "pub(crate)",
                    "pub(super)",
                    "async",
                    "const",
                    "unsafe",
                ]
                .contains(&w)
            });
        if !is_item || line.trim_end().ends_with(';') {
            continue;
        }
        let name: String = line[at + 3..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let (mut depth, mut opened) = (0i64, false);
        for (j, l) in lines.iter().enumerate().skip(i) {
            for c in l.chars() {
                match c {
                    '{' => {
                        depth += 1;
                        opened = true;
                    }
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            if opened && depth <= 0 {
                found.push((name.clone(), i + 1, j - i + 1));
                break;
            }
            if !opened && l.trim_end().ends_with(';') {
                break; // a declaration in a trait
            }
        }
    }
    found
}

#[test]
fn every_source_file_is_under_500_lines() {
    let long: Vec<String> = sources()
        .iter()
        .filter(|(_, text)| text.lines().count() >= MAX_FILE_LINES)
        .map(|(p, text)| format!("{} ({} lines)", p.display(), text.lines().count()))
        .collect();
    assert!(
        long.is_empty(),
        "files of {MAX_FILE_LINES} lines or more: {long:#?}"
    );
}

#[test]
fn every_function_is_under_80_lines() {
    let mut long = Vec::new();
    for (path, text) in sources() {
        if path.ends_with("tests.rs") {
            continue; // a module of unit tests
        }
        for (name, line, n) in functions(production(&text)) {
            if n >= MAX_FN_LINES {
                long.push(format!("{}:{line} {name} ({n} lines)", path.display()));
            }
        }
    }
    assert!(
        long.is_empty(),
        "functions of {MAX_FN_LINES} lines or more: {long:#?}"
    );
}

#[test]
fn the_line_counter_sees_braces_in_code_only() {
    let text =
        "fn a() {\n    let s = \"}}\";\n    let c = '{';\n    // }\n}\nfn b<'x>(v: &'x str) {\n}\n";
    assert_eq!(
        functions(text),
        [("a".to_string(), 1, 5), ("b".to_string(), 6, 2)]
    );
}

/// The module a source file defines, as path segments (`src/io/kafka/mod.rs`
/// is `["io", "kafka"]`).
fn module_of(path: &Path) -> Vec<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let rel = path.strip_prefix(&src).unwrap().with_extension("");
    let mut segs: Vec<String> = rel
        .iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    if matches!(
        segs.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        segs.pop();
    }
    segs
}

/// Edges between sibling modules: for every `crate::…` or `super::…` path in
/// a module's production code, the two children of their nearest common
/// ancestor that lead to each.
fn sibling_edges() -> BTreeSet<(Vec<String>, Vec<String>)> {
    let files = sources();
    let known: BTreeSet<Vec<String>> = files.iter().map(|(p, _)| module_of(p)).collect();
    let mut edges = BTreeSet::new();
    for (path, text) in files.iter().filter(|(p, _)| !p.ends_with("tests.rs")) {
        let from = module_of(path);
        let code: String = production(text)
            .lines()
            .map(code_of)
            .collect::<Vec<_>>()
            .join("\n");
        for (at, _) in code.match_indices("::") {
            let start = code[..at]
                .rfind(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .map_or(0, |i| i + 1);
            let end = code[at..]
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .map_or(code.len(), |i| at + i);
            let segs: Vec<&str> = code[start..end]
                .split("::")
                .filter(|s| !s.is_empty())
                .collect();
            if start != at - segs.first().map_or(0, |s| s.len()) {
                continue; // not the first `::` of its path
            }
            let mut target = match segs.first() {
                Some(&"crate") => Vec::new(),
                Some(&"super") => from[..from.len().saturating_sub(1)].to_vec(),
                _ => continue,
            };
            let mut rest = &segs[1..];
            while rest.first() == Some(&"super") {
                target.pop();
                rest = &rest[1..];
            }
            let mut resolved = None;
            for s in rest {
                target.push(s.to_string());
                if known.contains(&target) {
                    resolved = Some(target.clone());
                } else {
                    break;
                }
            }
            let Some(to) = resolved else { continue };
            let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
            if common < from.len() && common < to.len() {
                edges.insert((from[..=common].to_vec(), to[..=common].to_vec()));
            }
        }
    }
    edges
}

#[test]
fn no_two_sibling_modules_depend_on_each_other() {
    let edges = sibling_edges();
    let mut graph: BTreeMap<&Vec<String>, Vec<&Vec<String>>> = BTreeMap::new();
    for (a, b) in &edges {
        graph.entry(a).or_default().push(b);
    }
    // Reachability by depth-first search from every node.
    let mut cycles = Vec::new();
    for start in graph.keys() {
        let (mut stack, mut seen) = (vec![*start], BTreeSet::new());
        while let Some(n) = stack.pop() {
            for next in graph.get(n).into_iter().flatten() {
                if next == start {
                    cycles.push(start.join("::"));
                } else if seen.insert(*next) {
                    stack.push(next);
                }
            }
        }
    }
    cycles.dedup();
    assert!(
        cycles.is_empty(),
        "modules on a dependency cycle: {cycles:?}"
    );
    assert!(
        edges.len() > 50,
        "only {} edges found: is the reader blind?",
        edges.len()
    );
}
