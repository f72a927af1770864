//! PgBouncer's INI dialect, tokenized: `[section]` headers, `key = value` lines, `;`/`#` comment
//! lines and `%include FILE`, as libusual's `cfparser.c` reads them. Values are kept raw (no
//! quote or `${}` handling: that belongs to the section that reads them).
//!
//! `%include` paths resolve as in PgBouncer: a relative path is relative to the current working
//! directory, not to the including file. Includes nest at most [`MAX_INCLUDE_DEPTH`] deep and a
//! cycle is an error. Every file is read through a size cap ([`MAX_FILE_SIZE`]), so a huge or
//! garbage file costs bounded memory.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use super::error::{ConfigError, Location};

/// Largest pgbouncer.ini (or included file, userlist, HBA file) we read: 1 MiB.
pub const MAX_FILE_SIZE: u64 = 1 << 20;
/// Deepest `%include` nesting (libusual's limit is of the same order).
pub const MAX_INCLUDE_DEPTH: usize = 10;

/// One meaningful line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// `[name]`.
    Section(String),
    /// `key = value`, both trimmed; a double-quoted key is unquoted.
    Pair {
        /// The key as written (case kept).
        key: String,
        /// The raw value.
        value: String,
    },
}

/// A line with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// File and line.
    pub at: Location,
    /// What the line says.
    pub item: Item,
}

/// Reads a whole file for the parser: the real one is [`read_text`]; tests may inject others.
pub type Reader<'a> = dyn FnMut(&Path) -> Result<String, ConfigError> + 'a;

/// Reads `path` as UTF-8 text of at most [`MAX_FILE_SIZE`] bytes, with file-level errors.
pub fn read_text(path: &Path) -> Result<String, ConfigError> {
    let at = Location::new(path.display().to_string(), 0);
    let file = std::fs::File::open(path).map_err(|e| at.error(format!("cannot open: {e}")))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| at.error(format!("cannot read: {e}")))?;
    if bytes.len() as u64 > MAX_FILE_SIZE {
        return Err(at.error(format!(
            "file is larger than {} KiB; refusing to read it as a configuration file",
            MAX_FILE_SIZE / 1024
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let line = e
            .as_bytes()
            .iter()
            .take(valid)
            .filter(|b| **b == b'\n')
            .count()
            + 1;
        Location::new(at.file.clone(), line).error("not UTF-8 text; is this a configuration file?")
    })
}

/// Tokenizes `text` (named `file` in messages), following `%include` through `reader`.
pub fn parse(text: &str, file: &str, reader: &mut Reader<'_>) -> (Vec<Entry>, Vec<ConfigError>) {
    let mut walker = Walker {
        reader,
        stack: vec![identity(Path::new(file))],
        entries: Vec::new(),
        errors: Vec::new(),
    };
    walker.text(text, file);
    (walker.entries, walker.errors)
}

struct Walker<'r, 'a> {
    reader: &'r mut Reader<'a>,
    stack: Vec<PathBuf>,
    entries: Vec<Entry>,
    errors: Vec<ConfigError>,
}

impl Walker<'_, '_> {
    fn text(&mut self, text: &str, file: &str) {
        for (index, raw) in text.lines().enumerate() {
            let at = Location::new(file, index + 1);
            match parse_line(raw) {
                Ok(Line::Blank) => {}
                Ok(Line::Item(item)) => self.entries.push(Entry { at, item }),
                Ok(Line::Include(path)) => self.include(&at, path),
                Err(message) => self.errors.push(at.error(message)),
            }
        }
    }

    fn include(&mut self, at: &Location, path: &str) {
        let target = identity(Path::new(path));
        if self.stack.contains(&target) {
            let chain: Vec<String> = self.stack.iter().map(|p| p.display().to_string()).collect();
            self.errors
                .push(at.error(format!("%include cycle: {} -> {path}", chain.join(" -> "))));
            return;
        }
        if self.stack.len() > MAX_INCLUDE_DEPTH {
            self.errors.push(at.error(format!(
                "%include nested more than {MAX_INCLUDE_DEPTH} deep"
            )));
            return;
        }
        match (self.reader)(Path::new(path)) {
            Ok(text) => {
                self.stack.push(target);
                self.text(&text, path);
                self.stack.pop();
            }
            Err(e) if e.line == 0 => self
                .errors
                .push(at.error(format!("%include {path}: {}", e.message))),
            Err(e) => self.errors.push(e),
        }
    }
}

/// The path used to detect cycles: canonical when the file exists, else as written.
fn identity(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

enum Line<'a> {
    Blank,
    Item(Item),
    Include(&'a str),
}

fn parse_line(raw: &str) -> Result<Line<'_>, String> {
    let line = raw.trim();
    if line.is_empty() || line.starts_with(['#', ';']) {
        return Ok(Line::Blank);
    }
    if let Some(rest) = line.strip_prefix('[') {
        let (name, after) = rest
            .split_once(']')
            .ok_or("syntax error: section header without a closing ']'")?;
        let after = after.trim_start();
        if !(after.is_empty() || after.starts_with(['#', ';'])) {
            return Err(format!("syntax error: unexpected {after:?} after [{name}]"));
        }
        return Ok(Line::Item(Item::Section(name.trim().to_owned())));
    }
    if let Some(rest) = line.strip_prefix("%include") {
        let path = rest.trim();
        if path.is_empty() || !rest.starts_with([' ', '\t']) {
            return Err("syntax error: expected `%include FILE`".to_owned());
        }
        return Ok(Line::Include(path));
    }
    let (key, rest) = split_key(line)?;
    let value = rest
        .trim_start_matches([' ', '\t'])
        .strip_prefix('=')
        .ok_or_else(|| {
            format!(
                "syntax error: expected `key = value`, found {:?}",
                short(line)
            )
        })?;
    Ok(Line::Item(Item::Pair {
        key,
        value: value.trim().to_owned(),
    }))
}

/// A bare key (`[A-Za-z0-9_.*-]+`) or a double-quoted one (`""` escapes a quote).
fn split_key(line: &str) -> Result<(String, &str), String> {
    if let Some(rest) = line.strip_prefix('"') {
        let mut key = String::new();
        let mut chars = rest.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c != '"' {
                key.push(c);
            } else if matches!(chars.peek(), Some((_, '"'))) {
                chars.next();
                key.push('"');
            } else {
                return Ok((key, rest.get(i + 1..).unwrap_or("")));
            }
        }
        return Err("syntax error: quoted name without a closing '\"'".to_owned());
    }
    let end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || "_.-*".contains(c)))
        .unwrap_or(line.len());
    if end == 0 {
        return Err(format!(
            "syntax error: expected `key = value`, found {:?}",
            short(line)
        ));
    }
    Ok((
        line.get(..end).unwrap_or("").to_owned(),
        line.get(end..).unwrap_or(""),
    ))
}

fn short(line: &str) -> String {
    line.chars().take(40).collect()
}

/// Fuzz entry: tokenizes and checks arbitrary bytes as a whole pgbouncer.ini; never panics.
#[cfg(any(fuzzing, test))]
pub fn fuzz_entry(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut no_files = |p: &Path| Err(Location::new(p.display().to_string(), 0).error("no files"));
    let _ = super::Config::parse_with(&text, "fuzz.ini", &super::NoEnv, &mut no_files);
}
