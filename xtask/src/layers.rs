//! `cargo xtask layers`: the two structural checks of `src/` (DESIGN.md "Layers").
//!
//! - **No import cycle between files.** Every `crate::…` and `super::…` path in a file's code
//!   (in `use` items and inline; comments and string literals are skipped) is an edge from that
//!   file to the file of the module the path names (its longest prefix that is a module).
//!   `mod x;` declarations are not edges. A cycle is printed file -> file with the names
//!   imported along each edge.
//! - **No source file over [`MAX_LINES`] lines**, inline test modules included.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Longest a file under `src/` may be.
pub const MAX_LINES: usize = 800;

/// A module path (`["catalog", "provider"]`) and the file defining it.
type Modules = BTreeMap<Vec<String>, PathBuf>;

/// file -> (file it names -> names used through that edge).
type Graph = BTreeMap<PathBuf, BTreeMap<PathBuf, BTreeSet<String>>>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module path of a file under `src/` (`lib.rs` and `main.rs` are the root).
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap_or(file);
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// The code of `text` with comments and string/char literals blanked out.
fn code_only(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                let mut prev = ' ';
                for c in chars.by_ref() {
                    if prev == '*' && c == '/' {
                        break;
                    }
                    prev = c;
                }
                out.push(' ');
            }
            '"' => {
                let mut escaped = false;
                for c in chars.by_ref() {
                    if c == '"' && !escaped {
                        break;
                    }
                    escaped = c == '\\' && !escaped;
                }
                out.push_str("\"\"");
            }
            '\'' => {
                // A char literal ('x', '\n') or a lifetime ('a): skip a char literal only.
                let rest: String = chars.clone().take(4).collect();
                let close = if rest.starts_with('\\') {
                    rest.char_indices()
                        .skip(1)
                        .find(|(_, c)| *c == '\'')
                        .map(|(i, _)| i)
                } else {
                    rest.char_indices()
                        .nth(1)
                        .filter(|(_, c)| *c == '\'')
                        .map(|(i, _)| i)
                };
                match close {
                    Some(i) => {
                        for _ in 0..=i {
                            chars.next();
                        }
                        out.push_str("' '");
                    }
                    None => out.push('\''),
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// Every path in `code` (an identifier followed by `::`, not itself after `::`), with
/// use-groups expanded: `crate::a::{b, c::d}` gives `crate::a::b` and `crate::a::c::d`.
fn paths(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
        let boundary = i == 0 || !(word(bytes[i - 1]) || bytes[i - 1] == b':');
        if boundary && (bytes[i].is_ascii_alphabetic() || bytes[i] == b'_') {
            let start = i;
            let mut end = i;
            while end < bytes.len() && word(bytes[end]) {
                end += 1;
            }
            if code[end..].starts_with("::") {
                let mut prefix = vec![code[start..end].to_string()];
                i = parse_tree(code, end + 2, &mut prefix, &mut out);
                continue;
            }
            i = end;
            continue;
        }
        i += 1;
    }
    out
}

/// Parses `ident(::ident)*` or a `{...}` group from `i`, extending `prefix`; returns the end.
fn parse_tree(
    code: &str,
    mut i: usize,
    prefix: &mut Vec<String>,
    out: &mut Vec<Vec<String>>,
) -> usize {
    let bytes = code.as_bytes();
    let depth = prefix.len();
    loop {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if i < bytes.len() && bytes[i] == b'{' {
            i += 1;
            loop {
                let mut branch = prefix.clone();
                i = parse_tree(code, i, &mut branch, out);
                while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                    i += 1;
                }
                match bytes.get(i) {
                    Some(b',') => i += 1,
                    Some(b'}') => {
                        i += 1;
                        break;
                    }
                    _ => break,
                }
                while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                    i += 1;
                }
                if bytes.get(i) == Some(&b'}') {
                    i += 1;
                    break;
                }
            }
            prefix.truncate(depth);
            return i;
        }
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
            i += 1;
        }
        if i == start {
            break;
        }
        prefix.push(code[start..i].to_string());
        if code[i..].starts_with("::") {
            i += 2;
            continue;
        }
        break;
    }
    if prefix.len() > 1 {
        out.push(prefix.clone());
    }
    i
}

/// The file a path used in module `here` names, and the names used through it; None for
/// paths outside the crate.
fn resolve(path: &[String], here: &[String], modules: &Modules) -> Option<(PathBuf, String)> {
    let (first, rest) = path.split_first()?;
    let mut absolute: Vec<String> = match first.as_str() {
        "crate" => Vec::new(),
        "self" => here.to_vec(),
        "super" => here.get(..here.len().checked_sub(1)?)?.to_vec(),
        // A child module of this one, named relatively (`types::X` in catalog/mod.rs).
        child => {
            let mut m = here.to_vec();
            m.push(child.to_string());
            if !modules.contains_key(&m) {
                return None;
            }
            here.to_vec()
        }
    };
    let rest: Vec<String> = if matches!(first.as_str(), "crate" | "self" | "super") {
        rest.to_vec()
    } else {
        path.to_vec()
    };
    let mut rest = rest.as_slice();
    while let Some(("super", tail)) = rest.split_first().map(|(h, t)| (h.as_str(), t)) {
        absolute.pop();
        rest = tail;
    }
    absolute.extend(rest.iter().cloned());
    (0..=absolute.len()).rev().find_map(|n| {
        modules
            .get(&absolute[..n])
            .map(|file| (file.clone(), absolute[n..].join("::")))
    })
}

fn graph(src: &Path) -> (Graph, Vec<(PathBuf, usize)>) {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let modules: Modules = files
        .iter()
        .filter(|f| !f.ends_with("main.rs"))
        .map(|f| (module_of(src, f), f.clone()))
        .collect();
    let mut g = Graph::new();
    let mut sizes = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        sizes.push((f.clone(), text.lines().count()));
        let here = module_of(src, f);
        let edges = g.entry(f.clone()).or_default();
        for p in paths(&code_only(&text)) {
            let Some((target, name)) = resolve(&p, &here, &modules) else {
                continue;
            };
            if &target != f {
                let name = if name.is_empty() {
                    "(module)".to_string()
                } else {
                    name
                };
                edges.entry(target).or_default().insert(name);
            }
        }
    }
    (g, sizes)
}

/// Tarjan's strongly connected components over successor lists (the graph is small, so the
/// recursion depth, at most the number of files, is too).
struct Tarjan<'a> {
    succ: &'a [Vec<usize>],
    index: Vec<usize>,
    low: Vec<usize>,
    on: Vec<bool>,
    stack: Vec<usize>,
    next: usize,
    /// Components of more than one file: the cycles.
    sccs: Vec<Vec<usize>>,
}

impl Tarjan<'_> {
    fn strong(&mut self, v: usize) {
        self.index[v] = self.next;
        self.low[v] = self.next;
        self.next += 1;
        self.stack.push(v);
        self.on[v] = true;
        for &w in &self.succ[v] {
            if self.index[w] == usize::MAX {
                self.strong(w);
                self.low[v] = self.low[v].min(self.low[w]);
            } else if self.on[w] {
                self.low[v] = self.low[v].min(self.index[w]);
            }
        }
        if self.low[v] == self.index[v] {
            let mut scc = Vec::new();
            while let Some(w) = self.stack.pop() {
                self.on[w] = false;
                scc.push(w);
                if w == v {
                    break;
                }
            }
            if scc.len() > 1 {
                self.sccs.push(scc);
            }
        }
    }
}

/// The cycles of `g`: per strongly connected component, its files and one concrete cycle
/// through them (first file repeated at the end).
fn cycles(g: &Graph) -> Vec<(Vec<PathBuf>, Vec<PathBuf>)> {
    let nodes: Vec<&PathBuf> = g.keys().collect();
    let index_of: BTreeMap<&PathBuf, usize> =
        nodes.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let succ: Vec<Vec<usize>> = nodes
        .iter()
        .map(|n| {
            g[*n]
                .keys()
                .filter_map(|t| index_of.get(t).copied())
                .collect()
        })
        .collect();
    let mut t = Tarjan {
        succ: &succ,
        index: vec![usize::MAX; nodes.len()],
        low: vec![0; nodes.len()],
        on: vec![false; nodes.len()],
        stack: Vec::new(),
        next: 0,
        sccs: Vec::new(),
    };
    for v in 0..nodes.len() {
        if t.index[v] == usize::MAX {
            t.strong(v);
        }
    }
    let sccs = t.sccs;
    // One concrete cycle per component: walk successors inside it until a node repeats.
    sccs.into_iter()
        .map(|scc| {
            let members: Vec<PathBuf> = scc.iter().map(|i| nodes[*i].clone()).collect();
            let inside: BTreeSet<usize> = scc.iter().copied().collect();
            let mut path = vec![scc[0]];
            loop {
                let last = *path.last().unwrap_or(&scc[0]);
                let next = succ[last]
                    .iter()
                    .copied()
                    .find(|w| inside.contains(w))
                    .unwrap_or(scc[0]);
                if let Some(pos) = path.iter().position(|p| *p == next) {
                    let mut cycle: Vec<PathBuf> =
                        path[pos..].iter().map(|i| nodes[*i].clone()).collect();
                    cycle.push(nodes[next].clone());
                    return (members, cycle);
                }
                path.push(next);
            }
        })
        .collect()
}

/// Runs both checks on `root/src`, printing every violation; true when there is none.
pub fn check(root: &Path) -> bool {
    let src = root.join("src");
    let (g, sizes) = graph(&src);
    let rel = |p: &Path| p.strip_prefix(root).unwrap_or(p).display().to_string();
    let mut ok = true;
    for (members, cycle) in cycles(&g) {
        ok = false;
        let all: Vec<String> = members.iter().map(|m| rel(m)).collect();
        println!("files importing each other: {}", all.join(", "));
        println!("import cycle:");
        for pair in cycle.windows(2) {
            let names: Vec<&String> = g[&pair[0]][&pair[1]].iter().collect();
            let names: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
            println!(
                "  {} -> {} ({})",
                rel(&pair[0]),
                rel(&pair[1]),
                names.join(", ")
            );
        }
    }
    for (file, lines) in &sizes {
        if *lines > MAX_LINES {
            ok = false;
            println!("{}: {lines} lines (at most {MAX_LINES})", rel(file));
        }
    }
    let edges: usize = g.values().map(BTreeMap::len).sum();
    println!(
        "layers: {} files, {edges} import edges, {} {}",
        g.len(),
        if ok {
            "no cycle, no file over"
        } else {
            "FAILED (see above); limit"
        },
        MAX_LINES
    );
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn use_groups_expand_and_comments_do_not_count() {
        let code = code_only(
            "use crate::a::{b, c::{d, E}};\n// crate::x::y\nlet s = \"crate::z::w\";\nsuper::q::r();",
        );
        let p: Vec<String> = paths(&code).iter().map(|p| p.join("::")).collect();
        assert_eq!(
            p,
            [
                "crate::a::b",
                "crate::a::c::d",
                "crate::a::c::E",
                "super::q::r"
            ]
        );
        let mut modules = Modules::new();
        modules.insert(vec![], PathBuf::from("lib.rs"));
        modules.insert(vec!["a".into()], PathBuf::from("a/mod.rs"));
        modules.insert(vec!["a".into(), "b".into()], PathBuf::from("a/b.rs"));
        let here = ["a".to_string()];
        let r = resolve(&["b".into(), "X".into()], &here, &modules);
        assert_eq!(r, Some((PathBuf::from("a/b.rs"), "X".into())));
        let r = resolve(
            &["super".into(), "Y".into()],
            &["a".into(), "b".into()],
            &modules,
        );
        assert_eq!(r, Some((PathBuf::from("a/mod.rs"), "Y".into())));
        assert_eq!(
            resolve(&["std".into(), "fmt".into()], &here, &modules),
            None
        );
    }

    fn tree(files: &[(&str, String)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let p = dir.path().join("src").join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        dir
    }

    #[test]
    fn a_cycle_through_three_files_is_found_with_its_names() {
        let dir = tree(&[
            ("lib.rs", "mod a; mod b; mod c;".into()),
            ("a.rs", "use crate::b::B;".into()),
            ("b.rs", "use crate::c::{C, D};".into()),
            ("c.rs", "fn f() { crate::a::run(); }".into()),
        ]);
        let (g, _) = graph(&dir.path().join("src"));
        let found = cycles(&g);
        assert_eq!(found.len(), 1);
        let (members, cycle) = &found[0];
        assert_eq!(members.len(), 3);
        let names: Vec<String> = cycle
            .windows(2)
            .map(|w| {
                let n: Vec<&str> = g[&w[0]][&w[1]].iter().map(String::as_str).collect();
                n.join(",")
            })
            .collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(sorted, ["B", "C,D", "run"]);
        assert_eq!(cycle.first(), cycle.last());
        assert!(!check(dir.path()));
    }

    #[test]
    fn an_acyclic_tree_passes_and_a_long_file_fails() {
        let dir = tree(&[
            ("lib.rs", "mod a; mod b;".into()),
            ("a.rs", "use crate::b::B;".into()),
            ("b.rs", "pub struct B;".into()),
        ]);
        assert!(cycles(&graph(&dir.path().join("src")).0).is_empty());
        assert!(check(dir.path()));
        let long = "// line\n".repeat(MAX_LINES + 1);
        std::fs::write(dir.path().join("src/b.rs"), long).unwrap();
        assert!(!check(dir.path()));
    }
}
