//! Configuration problems as `file:line: message`, and where a value was written.

use std::fmt;

/// Where something was written: a file (as the operator named it) and a 1-based line.
/// Line 0 means "the file as a whole" (unreadable, too large) or "not from a file".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Location {
    /// The file name as given (relative paths stay relative).
    pub file: String,
    /// 1-based line number, or 0.
    pub line: usize,
}

impl Location {
    /// A location in `file` at `line`.
    pub fn new(file: impl Into<String>, line: usize) -> Self {
        Location {
            file: file.into(),
            line,
        }
    }

    /// A problem at this location.
    pub fn error(&self, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.clone(),
            line: self.line,
            message: message.into(),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.file)
        } else {
            write!(f, "{}:{}", self.file, self.line)
        }
    }
}

/// One problem found while reading or checking a configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", Location::new(file.clone(), *line))]
pub struct ConfigError {
    /// The file at fault, as the operator named it.
    pub file: String,
    /// 1-based line, or 0 when the problem is the whole file.
    pub line: usize,
    /// What is wrong and, where we can tell, how to fix it.
    pub message: String,
}

impl ConfigError {
    /// Where the problem is.
    pub fn location(&self) -> Location {
        Location::new(self.file.clone(), self.line)
    }
}

/// Edit distance counting a swap of neighbours as one edit (optimal string alignment);
/// small inputs only (key names).
fn distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let width = b.len() + 1;
    let mut d: Vec<usize> = (0..(a.len() + 1) * width)
        .map(|k| {
            if k < width {
                k
            } else if k % width == 0 {
                k / width
            } else {
                0
            }
        })
        .collect();
    let at = |d: &Vec<usize>, i: usize, j: usize| {
        d.get(i * width + j).copied().unwrap_or(usize::MAX / 2)
    };
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let (ca, cb) = (a.get(i - 1), b.get(j - 1));
            let cost = usize::from(ca != cb);
            let mut best = (at(&d, i - 1, j) + 1)
                .min(at(&d, i, j - 1) + 1)
                .min(at(&d, i - 1, j - 1) + cost);
            if i > 1 && j > 1 && ca == b.get(j - 2) && a.get(i - 2) == cb {
                best = best.min(at(&d, i - 2, j - 2) + 1);
            }
            if let Some(cell) = d.get_mut(i * width + j) {
                *cell = best;
            }
        }
    }
    at(&d, a.len(), b.len())
}

/// `" (did you mean X?)"` for the closest of `known` to `word`, or `""` when none is close.
pub fn did_you_mean<'a>(word: &str, known: impl IntoIterator<Item = &'a str>) -> String {
    let word = word.to_ascii_lowercase();
    let limit = (word.chars().count() / 3).clamp(1, 3);
    known
        .into_iter()
        .map(|k| (distance(&word, k), k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| format!(" (did you mean {k}?)"))
        .unwrap_or_default()
}
