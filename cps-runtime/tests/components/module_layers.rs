//! The runtime's modules form layers (see `docs/architecture.md`): each
//! file uses only modules of its own layer or of the layers below it, and
//! no files depend on each other in a circle.
//!
//! The check reads every source file's `crate::` and `super::` paths
//! (comments and test modules left out) and resolves each to the module
//! file it names. A module's use of its own submodules is part of
//! declaring them and is not counted; a submodule's use of its parent is.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, lowest first, each with the top-level modules in it.
const LAYERS: [(&str, &[&str]); 9] = [
    ("kernels", &["kernels", "flat", "element"]),
    ("memory", &["memory"]),
    ("execution", &["execution"]),
    (
        "values",
        &[
            "var",
            "param",
            "parameters",
            "computation",
            "custom",
            "higher_order",
            "reversible",
            "join",
        ],
    ),
    ("operations", &["ops", "gradcheck"]),
    ("optimizers", &["optim"]),
    ("data-parallel training", &["parallel"]),
    ("data", &["io", "data"]),
    ("macro support", &["private"]),
];

/// A module path, `crate` first.
type Module = Vec<String>;

fn source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every source file (test-only files left out) with its module path.
fn modules() -> BTreeMap<Module, PathBuf> {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("a readable source directory") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|e| e == "rs") {
                found.push(path);
            }
        }
    }
    let root = source_dir();
    let mut files = Vec::new();
    walk(&root, &mut files);
    let mut modules = BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(&root).expect("under src");
        let mut module: Module = vec!["crate".into()];
        for part in relative.iter() {
            let part = part.to_str().expect("a UTF-8 file name");
            match part.strip_suffix(".rs") {
                Some("lib" | "mod") => {}
                Some(stem) => module.push(stem.into()),
                None => module.push(part.into()),
            }
        }
        if module.last().is_some_and(|m| m.ends_with("tests")) {
            continue;
        }
        modules.insert(module, file);
    }
    modules
}

/// The source without comments and without `#[cfg(test)]` modules.
fn code_of(source: &str) -> String {
    let mut code = String::new();
    let mut lines = source.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]") || trimmed.starts_with("#[cfg(all(test") {
            // The item after the attribute: skip it, braces and all.
            let mut depth = 0i32;
            let mut opened = false;
            for next in lines.by_ref() {
                depth += next.matches('{').count() as i32 - next.matches('}').count() as i32;
                opened |= next.contains('{');
                if (opened && depth <= 0) || (!opened && next.trim_end().ends_with(';')) {
                    break;
                }
            }
            continue;
        }
        let without_comment = match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        };
        code.push_str(without_comment);
        code.push('\n');
    }
    code
}

/// Every path that starts with `crate::` or `super::` in `code`, as
/// written relative to `module`, expanded through `{…}` groups and
/// resolved to absolute paths. Inside an inline `mod name { … }`, the
/// first `super` names the file's own module.
fn paths_in(code: &str, module: &Module) -> Vec<Module> {
    let chars: Vec<char> = code.chars().collect();
    let text = |from: usize, len: usize| -> String {
        chars[from.min(chars.len())..chars.len().min(from + len)]
            .iter()
            .collect()
    };
    let mut found = Vec::new();
    let (mut depth, mut inline_mods) = (0usize, Vec::<usize>::new());
    let mut at = 0;
    while at < chars.len() {
        let starts_word = at == 0 || !(chars[at - 1].is_alphanumeric() || chars[at - 1] == '_');
        match chars[at] {
            '{' => depth += 1,
            '}' => {
                depth = depth.saturating_sub(1);
                if inline_mods.last() == Some(&depth) {
                    inline_mods.pop();
                }
            }
            _ => {}
        }
        if starts_word && text(at, 4) == "mod " {
            // `mod name {`: an inline module opens at the next brace.
            let mut end = at + 4;
            while end < chars.len()
                && (chars[end].is_alphanumeric() || chars[end] == '_' || chars[end] == ' ')
            {
                end += 1;
            }
            if end < chars.len() && chars[end] == '{' {
                inline_mods.push(depth);
            }
        }
        let base = if !starts_word {
            None
        } else if text(at, 7) == "crate::" {
            Some(vec!["crate".to_string()])
        } else if text(at, 7) == "super::" {
            let mut base = module.clone();
            if inline_mods.is_empty() {
                base.pop();
            }
            Some(base)
        } else {
            None
        };
        let Some(mut base) = base else {
            at += 1;
            continue;
        };
        // Both keywords are seven characters; then any further `super::`.
        at += 7;
        while text(at, 7) == "super::" {
            base.pop();
            at += 7;
        }
        at = parse_tree(&chars, at, base, &mut found);
    }
    found
}

/// Parses a path tree (`a::b`, `a::{b, c::d}`, `*`) at `at`, pushing each
/// leaf path onto `out`; returns where the tree ends.
fn parse_tree(chars: &[char], mut at: usize, base: Module, out: &mut Vec<Module>) -> usize {
    let skip_space = |at: &mut usize| {
        while *at < chars.len() && chars[*at].is_whitespace() {
            *at += 1;
        }
    };
    skip_space(&mut at);
    if at < chars.len() && chars[at] == '{' {
        at += 1;
        loop {
            skip_space(&mut at);
            if at >= chars.len() {
                return at;
            }
            if chars[at] == '}' {
                return at + 1;
            }
            if chars[at] == ',' {
                at += 1;
                continue;
            }
            at = parse_tree(chars, at, base.clone(), out);
        }
    }
    let start = at;
    while at < chars.len() && (chars[at].is_alphanumeric() || chars[at] == '_') {
        at += 1;
    }
    let word: String = chars[start..at].iter().collect();
    if word.is_empty() || word == "self" {
        out.push(base);
        return at.max(start + usize::from(at < chars.len() && chars[at] == '*'));
    }
    let mut path = base;
    path.push(word);
    if chars[at..].iter().take(2).collect::<String>() == "::" {
        return parse_tree(chars, at + 2, path, out);
    }
    out.push(path);
    at
}

/// The module file a path names: its longest prefix that is a module.
fn module_of(path: &Module, modules: &BTreeMap<Module, PathBuf>) -> Option<Module> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|prefix| modules.contains_key(prefix))
}

/// The layer of a module (by its top-level module), if it has one.
fn layer_of(module: &Module) -> Option<usize> {
    let top = module.get(1)?;
    LAYERS
        .iter()
        .position(|(_, members)| members.contains(&top.as_str()))
}

/// Every counted dependency between module files.
fn dependencies(modules: &BTreeMap<Module, PathBuf>) -> BTreeSet<(Module, Module)> {
    let mut edges = BTreeSet::new();
    for (module, file) in modules {
        let source = std::fs::read_to_string(file).expect("a readable source file");
        for path in paths_in(&code_of(&source), module) {
            let Some(target) = module_of(&path, modules) else {
                continue;
            };
            // The module itself, or one of its own submodules.
            if target.starts_with(module) {
                continue;
            }
            edges.insert((module.clone(), target));
        }
    }
    edges
}

fn name(module: &Module) -> String {
    module.join("::")
}

#[test]
fn every_module_uses_only_its_own_layer_and_those_below() {
    let modules = modules();
    let mut wrong = Vec::new();
    for (from, to) in dependencies(&modules) {
        if from.len() == 1 {
            continue; // lib.rs declares the layers and re-exports
        }
        let (Some(from_layer), Some(to_layer)) = (layer_of(&from), layer_of(&to)) else {
            wrong.push(format!(
                "{} -> {}: a module in no layer (add it to LAYERS and docs/architecture.md)",
                name(&from),
                name(&to)
            ));
            continue;
        };
        if to_layer > from_layer {
            wrong.push(format!(
                "{} ({}) uses {} ({}), a layer above it",
                name(&from),
                LAYERS[from_layer].0,
                name(&to),
                LAYERS[to_layer].0
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn no_module_files_depend_on_each_other_in_a_circle() {
    let modules = modules();
    let edges = dependencies(&modules);
    let mut next: BTreeMap<&Module, Vec<&Module>> = BTreeMap::new();
    for (from, to) in &edges {
        next.entry(from).or_default().push(to);
    }
    // Depth-first, keeping the path: a module met again on it closes a
    // circle.
    fn visit<'a>(
        module: &'a Module,
        next: &BTreeMap<&'a Module, Vec<&'a Module>>,
        path: &mut Vec<&'a Module>,
        done: &mut BTreeSet<&'a Module>,
        circles: &mut Vec<String>,
    ) {
        if let Some(at) = path.iter().position(|m| *m == module) {
            let circle: Vec<String> = path[at..].iter().map(|m| name(m)).collect();
            circles.push(format!("{} -> {}", circle.join(" -> "), name(module)));
            return;
        }
        if !done.insert(module) {
            return;
        }
        path.push(module);
        for to in next.get(module).into_iter().flatten() {
            visit(to, next, path, done, circles);
        }
        path.pop();
    }
    let (mut done, mut circles) = (BTreeSet::new(), Vec::new());
    for module in modules.keys() {
        visit(module, &next, &mut Vec::new(), &mut done, &mut circles);
    }
    assert!(circles.is_empty(), "circles:\n{}", circles.join("\n"));
}

/// The reader of paths finds what it should (a negative control for the
/// two checks above: a reader that found nothing would pass them).
#[test]
fn the_path_reader_expands_groups_and_resolves_super() {
    let module: Module = ["crate", "ops", "linalg"].map(String::from).to_vec();
    let code = code_of(
        "use crate::{var::Var, memory};\n\
         use super::shape_mismatch; // crate::private::x\n\
         fn f() { crate::execution::products::gemm(); }\n\
         #[cfg(test)]\nmod tests {\n    use crate::optim::Sgd;\n}\n",
    );
    let found: Vec<String> = paths_in(&code, &module).iter().map(name).collect();
    assert_eq!(
        found,
        [
            "crate::var::Var",
            "crate::memory",
            "crate::ops::shape_mismatch",
            "crate::execution::products::gemm"
        ]
    );
    let modules = modules();
    assert!(modules.len() > 40, "{} modules", modules.len());
    let edges = dependencies(&modules);
    let ops = |m: &str| m.split("::").map(String::from).collect::<Module>();
    assert!(edges.contains(&(ops("crate::ops::linalg"), ops("crate::var"))));
}
