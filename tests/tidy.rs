//! Fast static checks of the source tree (STYLE.md §3.4); needs no PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

/// Hard cap on lines before a file's `#[cfg(test)]` part.
const MAX_LINES: usize = 800;

fn sources() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut out);
    out.sort();
    out
}

/// `src/a/b.rs` → "a/b.rs".
fn rel(path: &Path) -> String {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    path.strip_prefix(src)
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// Whether a file is a unit-test sibling (`tests.rs` or under a `tests/` directory).
fn is_test_file(rel: &str) -> bool {
    rel.ends_with("tests.rs") || rel.contains("/tests/")
}

#[test]
fn every_source_file_starts_with_a_module_doc() {
    let missing: Vec<String> = sources()
        .into_iter()
        .filter(|p| !is_test_file(&rel(p)))
        .filter(|p| !std::fs::read_to_string(p).unwrap().starts_with("//!"))
        .map(|p| rel(&p))
        .collect();
    assert!(
        missing.is_empty(),
        "files without a leading `//!` line: {missing:?}"
    );
}

#[test]
fn no_file_is_too_long() {
    let mut long = Vec::new();
    for path in sources() {
        let text = std::fs::read_to_string(&path).unwrap();
        let lines = text
            .lines()
            .take_while(|l| !l.trim_start().starts_with("#[cfg(test)]"))
            .count();
        if lines > MAX_LINES {
            long.push(format!("{} ({lines} lines)", rel(&path)));
        }
    }
    assert!(
        long.is_empty(),
        "over {MAX_LINES} lines before #[cfg(test)]; split along a seam: {long:?}"
    );
}

/// Layer of a top-level module (STYLE.md §3.1); unknown modules fail the test so the table grows.
fn layer(module: &str) -> Option<u8> {
    Some(match module {
        "error" | "protocol" | "auth" | "config" => 0,
        "conn" | "net" | "tls" | "shutdown" | "stats" | "latency" | "registry" => 1,
        "pool" => 2,
        "admin" | "proxy" | "metrics" => 3,
        "cli" => 4,
        "lib" => 5,
        _ => return None,
    })
}

fn top_module(rel: &str) -> &str {
    let first = rel.split('/').next().unwrap();
    first.strip_suffix(".rs").unwrap_or(first)
}

#[test]
fn layers_point_one_way() {
    let mut bad = Vec::new();
    for path in sources() {
        let rel = rel(&path);
        if rel == "main.rs" || is_test_file(&rel) {
            continue;
        }
        let own = top_module(&rel);
        let own_layer = layer(own)
            .unwrap_or_else(|| panic!("{rel}: module `{own}` missing from the layer table"));
        let text = std::fs::read_to_string(&path).unwrap();
        for (n, line) in text.lines().enumerate() {
            for part in line.split("crate::").skip(1) {
                let used: String = part
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                let Some(used_layer) = layer(&used) else {
                    continue;
                };
                let cli_command = own == "cli" && rel != "cli/serve.rs";
                let allowed = used_layer <= own_layer
                    && !(own == "admin" && used == "proxy")
                    && !(cli_command && matches!(used_layer, 1..=3));
                if !allowed {
                    bad.push(format!("{rel}:{}: uses crate::{used}", n + 1));
                }
            }
        }
    }
    assert!(
        bad.is_empty(),
        "imports against STYLE.md §3.1's layer order: {bad:#?}"
    );
}

#[test]
fn only_the_cli_prints() {
    let mut bad = Vec::new();
    for path in sources() {
        let rel = rel(&path);
        if rel == "main.rs" || rel.starts_with("cli/") || is_test_file(&rel) {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap();
        for (n, line) in code.lines().enumerate() {
            if ["println!", "print!", "eprintln!", "eprint!", "dbg!"]
                .iter()
                .any(|m| line.contains(m))
            {
                bad.push(format!("{rel}:{}", n + 1));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "print macros outside cli/ and main.rs: {bad:?}"
    );
}

#[test]
fn generated_docs_are_fresh() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bless = std::env::var_os("BOUNCECTL_BLESS").is_some_and(|v| v == "1");
    let mut stale = Vec::new();
    for (path, bytes) in bouncectl::cli::generate::render_all().unwrap() {
        let full = root.join(&path);
        if std::fs::read(&full).ok().as_deref() == Some(bytes.as_slice()) {
            continue;
        }
        if bless {
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(&full, bytes).unwrap();
        } else {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "stale generated files {stale:?}: run `{}`, or rerun with `BOUNCECTL_BLESS=1`",
        bouncectl::cli::generate::REGENERATE
    );
}
