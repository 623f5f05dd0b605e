//! The layers of `src/` (docs/ARCHITECTURE.md, "Layers"), checked on the source text: every
//! file's `crate::…`, `super::…`, `self::…` and child-module paths are resolved to the file that
//! defines what they name (following `pub use` re-exports), and the test fails, naming the file
//! and line, when a file imports a module of a higher layer or when files import each other in
//! a circle. Unit-test modules (`#[cfg(test)]`) are left out: they are not part of the build.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Bottom up. A module may import its own layer and the ones below; a top-level module missing
/// here fails the test, so a new module is placed on purpose.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "foundation",
        &["domain", "clock", "error", "telemetry", "return_url"],
    ),
    ("configuration", &["config"]),
    ("storage", &["store", "order_watch"]),
    ("provider adapters", &["providers"]),
    (
        "use cases",
        &[
            "entitlements",
            "settle",
            "refunds",
            "settlement",
            "lifecycle",
            "checkout",
            "reconcile",
            "privacy",
            "push",
            "console_users",
        ],
    ),
    (
        "composition",
        &[
            "state",
            "api_keys",
            "app",
            "jobs",
            "test_clock",
            "api",
            "console",
            "edge",
            "embedded",
            "keygen",
            "cli",
            "lib",
            "main",
        ],
    ),
];

/// One module's source: its path segments (`["store", "orders"]`), text without comments,
/// strings and test modules, and the children it declares.
struct Module {
    file: String,
    text: String,
    children: BTreeSet<String>,
}

/// An import: the line it is on and the module it resolves to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Import {
    line: usize,
    path: String,
    target: Vec<String>,
}

struct Tree {
    modules: BTreeMap<Vec<String>, Module>,
}

/// Blanks comments, string and char literals (keeping newlines, so lines still count).
fn strip(src: &str) -> String {
    let b: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(b[i]));
                    i += 1;
                }
            }
        } else if c == 'r'
            && (next == Some('"') || next == Some('#'))
            && (i == 0 || !(b[i - 1].is_alphanumeric() || b[i - 1] == '_'))
        {
            // A raw string: r"…", r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while j < b.len() && b[j] == '#' {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= b.len() {
                    break;
                }
                if b[j] == '"' && (0..hashes).all(|k| b.get(j + 1 + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            for &ch in &b[i..j.min(b.len())] {
                out.push(blank(ch));
            }
            i = j;
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < b.len() {
                    out.push(blank(b[i]));
                    i += 1;
                }
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a): only the former is blanked.
            let close = if next == Some('\\') {
                (i + 2..b.len().min(i + 12)).find(|&k| b[k] == '\'')
            } else if b.get(i + 2) == Some(&'\'') {
                Some(i + 2)
            } else {
                None
            };
            match close {
                Some(end) => {
                    for _ in i..=end {
                        out.push(' ');
                    }
                    i = end + 1;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Blanks every item marked `#[cfg(test)]` (a `mod tests { … }`, a `use`, a function).
fn without_tests(text: &str) -> String {
    let mut out: Vec<char> = text.chars().collect();
    let marker: Vec<char> = "#[cfg(test)]".chars().collect();
    let mut i = 0;
    while i + marker.len() <= out.len() {
        if out[i..i + marker.len()] != marker[..] {
            i += 1;
            continue;
        }
        // The item ends at its first `;` before any `{`, or at the `}` closing its first `{`.
        let mut j = i + marker.len();
        let mut depth = 0usize;
        while j < out.len() {
            match out[j] {
                ';' if depth == 0 => break,
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                _ => {}
            }
            j += 1;
        }
        let end = (j + 1).min(out.len());
        for ch in &mut out[i..end] {
            if *ch != '\n' {
                *ch = ' ';
            }
        }
        i = j;
    }
    out.into_iter().collect()
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Expands a use tree (`a::{b, c::{d, e as f}, self}`) into full paths.
fn expand_use(prefix: &str, tree: &str, out: &mut Vec<String>) {
    let tree = tree.trim();
    if let Some(open) = tree.find('{') {
        let head = tree[..open].trim().trim_end_matches("::");
        let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
        let base = join(prefix, head);
        let mut depth = 0;
        let mut start = 0;
        for (k, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand_use(&base, &inner[start..k], out);
                    start = k + 1;
                }
                _ => {}
            }
        }
        expand_use(&base, &inner[start..], out);
    } else {
        let path = tree.split(" as ").next().unwrap_or("").trim();
        if path.is_empty() || path == "*" {
            return;
        }
        if path == "self" {
            out.push(prefix.to_string());
        } else {
            out.push(join(prefix, path));
        }
    }
}

fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ => format!("{a}::{b}"),
    }
}

/// Every path of a module's text with the line it starts on: use trees expanded, and the
/// `crate::…` / `super::…` / `self::…` / `child::…` paths of expressions and types.
fn paths_of(module: &Module) -> Vec<(usize, String)> {
    let text = &module.text;
    let chars: Vec<char> = text.chars().collect();
    let line_at = |pos: usize| chars[..pos].iter().filter(|&&c| c == '\n').count() + 1;
    let mut found = Vec::new();
    let mut covered = vec![false; chars.len()];
    // `use` declarations (also `pub use`, `pub(crate) use`).
    let mut i = 0;
    while i + 4 <= chars.len() {
        let starts_word = i == 0 || !is_ident(chars[i - 1]);
        if starts_word && chars[i..i + 4] == ['u', 's', 'e', ' '] {
            let end = (i..chars.len())
                .find(|&k| chars[k] == ';')
                .unwrap_or(chars.len());
            let tree: String = chars[i + 4..end].iter().collect();
            let mut paths = Vec::new();
            expand_use("", &tree, &mut paths);
            let line = line_at(i);
            found.extend(paths.into_iter().map(|p| (line, p)));
            for c in covered.iter_mut().take(end).skip(i) {
                *c = true;
            }
            i = end;
        } else {
            i += 1;
        }
    }
    // Paths elsewhere.
    let mut i = 0;
    while i < chars.len() {
        if covered[i] || !is_ident(chars[i]) || (i > 0 && (is_ident(chars[i - 1]))) {
            i += 1;
            continue;
        }
        if i >= 2 && chars[i - 1] == ':' && chars[i - 2] == ':' {
            i += 1;
            continue;
        }
        let start = i;
        let mut segments = Vec::new();
        let mut j = i;
        loop {
            let s = j;
            while j < chars.len() && is_ident(chars[j]) {
                j += 1;
            }
            segments.push(chars[s..j].iter().collect::<String>());
            if j + 2 < chars.len()
                && chars[j] == ':'
                && chars[j + 1] == ':'
                && is_ident(chars[j + 2])
            {
                j += 2;
            } else {
                break;
            }
        }
        let first = segments[0].as_str();
        if segments.len() > 1
            && (first == "crate"
                || first == "super"
                || first == "self"
                || module.children.contains(first))
        {
            found.push((line_at(start), segments.join("::")));
        }
        i = j.max(i + 1);
    }
    found
}

impl Tree {
    fn load(src: &Path) -> Tree {
        let mut modules = BTreeMap::new();
        let mut stack = vec![src.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).expect("read src") {
                let path = entry.expect("dir entry").path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                if path.extension().is_none_or(|e| e != "rs") {
                    continue;
                }
                let rel = path.strip_prefix(src).expect("under src");
                let mut segments: Vec<String> = rel
                    .with_extension("")
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                if segments.last().is_some_and(|s| s == "mod" || s == "lib") {
                    segments.pop();
                }
                let source = std::fs::read_to_string(&path).expect("read file");
                modules.insert(
                    segments,
                    Module::new(format!("src/{}", rel.display()), &source),
                );
            }
        }
        Tree { modules }
    }

    fn from_files(files: &[(&str, &str)]) -> Tree {
        let mut modules = BTreeMap::new();
        for (name, source) in files {
            let rel = name.trim_start_matches("src/").trim_end_matches(".rs");
            let mut segments: Vec<String> = rel.split('/').map(str::to_string).collect();
            if segments.last().is_some_and(|s| s == "mod" || s == "lib") {
                segments.pop();
            }
            modules.insert(segments, Module::new(name.to_string(), source));
        }
        Tree { modules }
    }

    /// The absolute segments of `path` as written in module `at`.
    fn absolute(&self, at: &[String], path: &str) -> Option<Vec<String>> {
        let mut segments: Vec<&str> = path.split("::").collect();
        let mut base: Vec<String> = match segments[0] {
            "crate" | "paygate" => {
                segments.remove(0);
                Vec::new()
            }
            "self" => {
                segments.remove(0);
                at.to_vec()
            }
            "super" => {
                let mut base = at.to_vec();
                while segments.first() == Some(&"super") {
                    segments.remove(0);
                    base.pop()?;
                }
                base
            }
            first if self.modules.get(at)?.children.contains(first) => at.to_vec(),
            _ => return None,
        };
        base.extend(segments.iter().map(|s| s.to_string()));
        Some(base)
    }

    /// The module whose file defines what `absolute` names, following `pub use` re-exports.
    fn resolve(&self, absolute: &[String], depth: usize) -> Option<Vec<String>> {
        let module = (1..=absolute.len())
            .rev()
            .map(|n| absolute[..n].to_vec())
            .find(|m| self.modules.contains_key(m))?;
        if depth > 8 || module.len() == absolute.len() {
            return Some(module);
        }
        let name = &absolute[module.len()];
        for (_, path) in self.reexports(&module) {
            let Some(target) = self.absolute(&module, &path) else {
                continue;
            };
            if target.last() == Some(name) {
                let mut rest = target;
                rest.extend(absolute[module.len() + 1..].iter().cloned());
                return self.resolve(&rest, depth + 1).or(Some(module));
            }
        }
        Some(module)
    }

    fn reexports(&self, module: &[String]) -> Vec<(usize, String)> {
        let Some(m) = self.modules.get(module) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (n, line) in m.text.lines().enumerate() {
            let t = line.trim_start();
            if let Some(rest) = t
                .strip_prefix("pub use ")
                .or_else(|| t.strip_prefix("pub(crate) use "))
            {
                let tree = m.text.lines().skip(n).collect::<Vec<_>>().join("\n");
                let tree = &tree[tree
                    .find(rest.split_whitespace().next().unwrap_or(""))
                    .unwrap_or(0)..];
                let tree = &tree[..tree.find(';').unwrap_or(tree.len())];
                let mut paths = Vec::new();
                expand_use("", tree, &mut paths);
                out.extend(paths.into_iter().map(|p| (n + 1, p)));
            }
        }
        out
    }

    fn imports(&self) -> BTreeMap<Vec<String>, Vec<Import>> {
        let mut all = BTreeMap::new();
        for (at, module) in &self.modules {
            let mut imports = Vec::new();
            for (line, path) in paths_of(module) {
                let Some(absolute) = self.absolute(at, &path) else {
                    continue;
                };
                let Some(target) = self.resolve(&absolute, 0) else {
                    continue;
                };
                if &target != at && !target.is_empty() {
                    imports.push(Import { line, path, target });
                }
            }
            imports.sort();
            imports.dedup_by(|a, b| a.target == b.target && a.line == b.line);
            all.insert(at.clone(), imports);
        }
        all
    }
}

impl Module {
    fn new(file: String, source: &str) -> Module {
        let text = without_tests(&strip(source));
        let mut children = BTreeSet::new();
        for line in text.lines() {
            let t = line.trim();
            let t = t
                .strip_prefix("pub ")
                .or_else(|| t.strip_prefix("pub(crate) "))
                .unwrap_or(t);
            if let Some(name) = t.strip_prefix("mod ").and_then(|r| r.strip_suffix(';')) {
                children.insert(name.trim().to_string());
            }
        }
        Module {
            file,
            text,
            children,
        }
    }
}

fn layer_of(module: &[String]) -> Option<usize> {
    let top = module.first().map(String::as_str).unwrap_or("lib");
    LAYERS.iter().position(|(_, names)| names.contains(&top))
}

/// Every broken rule, one line each: unknown modules, upward imports, circles.
fn violations(tree: &Tree) -> Vec<String> {
    let imports = tree.imports();
    let file = |m: &Vec<String>| tree.modules[m].file.clone();
    let mut out = Vec::new();
    for (at, list) in &imports {
        let Some(mine) = layer_of(at) else {
            out.push(format!(
                "{}: module `{}` is in no layer (tests/layers.rs LAYERS, docs/ARCHITECTURE.md)",
                file(at),
                at.join("::")
            ));
            continue;
        };
        for import in list {
            if let Some(theirs) = layer_of(&import.target)
                && theirs > mine
            {
                out.push(format!(
                    "{}:{}: `{}` imports `{}` of layer {} ({}) from layer {} ({})",
                    file(at),
                    import.line,
                    at.join("::"),
                    import.path,
                    theirs,
                    LAYERS[theirs].0,
                    mine,
                    LAYERS[mine].0
                ));
            }
        }
    }
    for (size, circle) in circles(&imports) {
        let mut text = format!("import circle ({size} files import each other; one loop):");
        for (k, m) in circle.iter().enumerate() {
            let next = &circle[(k + 1) % circle.len()];
            let line = imports[m]
                .iter()
                .find(|i| &i.target == next)
                .map(|i| i.line)
                .unwrap_or(0);
            text.push_str(&format!(" {}:{} → {};", file(m), line, file(next)));
        }
        out.push(text);
    }
    out
}

/// Per strongly connected component of more than one file: its size and one loop through it
/// (a shortest one, as a path of modules).
fn circles(imports: &BTreeMap<Vec<String>, Vec<Import>>) -> Vec<(usize, Vec<Vec<String>>)> {
    // Tarjan's algorithm; recursion is deep enough for a few hundred files.
    struct State<'a> {
        imports: &'a BTreeMap<Vec<String>, Vec<Import>>,
        index: BTreeMap<&'a Vec<String>, usize>,
        low: BTreeMap<&'a Vec<String>, usize>,
        stack: Vec<&'a Vec<String>>,
        on: BTreeSet<&'a Vec<String>>,
        sccs: Vec<Vec<&'a Vec<String>>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a Vec<String>) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on.insert(v);
        for w in s.imports[v].iter().map(|i| &i.target) {
            let Some((w, _)) = s.imports.get_key_value(w) else {
                continue;
            };
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut scc = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on.remove(w);
                scc.push(w);
                if w == v {
                    break;
                }
            }
            s.sccs.push(scc);
        }
    }
    let mut s = State {
        imports,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        sccs: Vec::new(),
    };
    for v in imports.keys() {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    let mut out = Vec::new();
    for scc in s.sccs.into_iter().filter(|c| c.len() > 1) {
        // A shortest circle through the component's first module, by breadth-first search.
        let members: BTreeSet<&Vec<String>> = scc.iter().copied().collect();
        let start = *members.iter().next().expect("non-empty");
        let mut prev: BTreeMap<&Vec<String>, &Vec<String>> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start]);
        let mut end = None;
        'search: while let Some(v) = queue.pop_front() {
            for w in imports[v].iter().map(|i| &i.target) {
                let Some(w) = members.get(w).copied() else {
                    continue;
                };
                if w == start {
                    end = Some(v);
                    break 'search;
                }
                if !prev.contains_key(w) {
                    prev.insert(w, v);
                    queue.push_back(w);
                }
            }
        }
        let mut path = Vec::new();
        let mut at = end.expect("a strongly connected component has a circle");
        while at != start {
            path.push(at.clone());
            at = prev[at];
        }
        path.push(start.clone());
        path.reverse();
        out.push((members.len(), path));
    }
    out
}

#[test]
fn src_keeps_its_layers_and_has_no_import_circle() {
    let tree = Tree::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(tree.modules.len() > 40, "read {} files", tree.modules.len());
    let found = violations(&tree);
    assert!(
        found.is_empty(),
        "{} broken layer rules:\n{}",
        found.len(),
        found.join("\n")
    );
}

#[test]
fn an_upward_import_is_named_with_its_line() {
    let tree = Tree::from_files(&[
        ("src/lib.rs", "pub mod domain;\npub mod store;\n"),
        ("src/domain/mod.rs", "pub mod money;\npub use money::Fen;\n"),
        (
            "src/domain/money.rs",
            "// crate::store::Db in a comment is no import\n\
             const S: &str = \"crate::store::Db\";\n\
             pub struct Fen(i64);\n\
             fn f() -> crate::store::Db { todo!() }\n",
        ),
        (
            "src/store/mod.rs",
            "use crate::domain::Fen;\npub struct Db;\n",
        ),
    ]);
    let found = violations(&tree);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(
        found[0].starts_with(
            "src/domain/money.rs:4: `domain::money` imports `crate::store::Db` of layer 2"
        ),
        "{found:#?}"
    );
    // The re-export `domain::Fen` resolves to money.rs, so store and money form the circle.
    assert!(
        found[1].contains("src/domain/money.rs:4 → src/store/mod.rs")
            && found[1].contains("src/store/mod.rs:1 → src/domain/money.rs"),
        "{found:#?}"
    );
}

#[test]
fn a_parent_and_its_child_that_use_each_other_are_a_circle() {
    let tree = Tree::from_files(&[
        ("src/lib.rs", "pub mod store;\n"),
        (
            "src/store/mod.rs",
            "mod orders;\npub struct Db;\npub fn f() { orders::get(); }\n",
        ),
        (
            "src/store/orders.rs",
            "use super::{Db, sql::{Value as V}};\npub fn get() {}\n\
             #[cfg(test)]\nmod tests { use crate::api::Router; }\n",
        ),
        ("src/store/sql.rs", "pub struct Value;\n"),
    ]);
    let found = violations(&tree);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(found[0].starts_with("import circle (2 files"), "{found:#?}");
    assert!(found[0].contains("src/store/mod.rs:3 → src/store/orders.rs"));
    assert!(found[0].contains("src/store/orders.rs:1 → src/store/mod.rs"));
    let imports = tree.imports();
    let targets: Vec<String> = imports[&vec!["store".to_string(), "orders".to_string()]]
        .iter()
        .map(|i| i.target.join("::"))
        .collect();
    assert_eq!(
        targets,
        ["store", "store::sql"],
        "the test module is left out"
    );
}

#[test]
fn a_module_in_no_layer_is_named() {
    let tree = Tree::from_files(&[("src/lib.rs", "pub mod gadgets;\n"), ("src/gadgets.rs", "")]);
    let found = violations(&tree);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].contains("module `gadgets` is in no layer"),
        "{found:#?}"
    );
}
