//! Rendering of admin-console results: JSON objects keyed by PgBouncer's column names (numbers as
//! numbers), and comfy-tables with human units that fit the terminal by dropping the less useful
//! columns. Knows column names, not commands: the caller says which columns matter most.

use comfy_table::{CellAlignment, ContentArrangement, Table, presets};
use serde::ser::{Serialize, SerializeMap as _, SerializeSeq as _, Serializer};

use super::admin_client::ShowResult;
use super::units;

/// A SHOW result serialised as an array of objects in column order.
pub struct JsonRows<'a>(pub &'a ShowResult);

impl Serialize for JsonRows<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.rows.len()))?;
        for row in &self.0.rows {
            seq.serialize_element(&JsonRow {
                columns: &self.0.columns,
                values: row,
            })?;
        }
        seq.end()
    }
}

struct JsonRow<'a> {
    columns: &'a [String],
    values: &'a [Option<String>],
}

impl Serialize for JsonRow<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.columns.len()))?;
        for (column, value) in self.columns.iter().zip(self.values) {
            map.serialize_entry(column, &json_value(value.as_deref()))?;
        }
        map.end()
    }
}

/// The console sends only text: integers and finite decimals become JSON numbers, NULL is null.
pub fn json_value(text: Option<&str>) -> serde_json::Value {
    let Some(text) = text else {
        return serde_json::Value::Null;
    };
    if let Ok(n) = text.parse::<i64>() {
        return n.into();
    }
    if let Ok(n) = text.parse::<u64>() {
        return n.into();
    }
    let numeric = text.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '.')
        && text
            .chars()
            .all(|c| c.is_ascii_digit() || "+-.eE".contains(c));
    if numeric {
        if let Some(n) = text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
        {
            return n.into();
        }
    }
    serde_json::Value::String(text.to_owned())
}

/// How to lay a table out.
#[derive(Debug, Clone, Copy)]
pub struct Layout<'a> {
    /// Terminal width to fit, if known.
    pub width: Option<usize>,
    /// Show every column even when the table is wider than `width`.
    pub all: bool,
    /// Columns worth keeping on a narrow terminal, most useful first.
    pub preferred: &'a [&'a str],
    /// Byte counts are per-second averages (SHOW STATS_AVERAGES).
    pub rates: bool,
    /// Now, in Unix seconds, for ages of timestamps.
    pub now: i64,
}

/// A rendered table and the columns left out to fit the width.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The table text, ending with a newline.
    pub text: String,
    /// Columns dropped to fit (empty with `--all` or when everything fits).
    pub hidden: Vec<String>,
}

/// Renders `result` with human units, fitted to `layout.width`.
pub fn render(result: &ShowResult, layout: &Layout<'_>) -> Rendered {
    let columns = &result.columns;
    // `maxwait_us`/`wait_us` are shown inside `maxwait`/`wait`; they are not columns of their own.
    let visible: Vec<usize> = (0..columns.len())
        .filter(|&i| !is_companion(columns, i))
        .collect();
    let cells: Vec<Vec<String>> = result
        .rows
        .iter()
        .map(|row| {
            (0..columns.len())
                .map(|i| cell(columns, row, i, layout))
                .collect()
        })
        .collect();
    let width_of = |i: usize| {
        cells
            .iter()
            .map(|row| row[i].chars().count())
            .chain([columns[i].chars().count()])
            .max()
            .unwrap_or(0)
            + 3
    };
    let total = |keep: &[usize]| keep.iter().map(|&i| width_of(i)).sum::<usize>() + 1;
    let mut keep = visible.clone();
    if let (Some(limit), false) = (layout.width, layout.all) {
        if total(&keep) > limit {
            let mut preferred: Vec<usize> = layout
                .preferred
                .iter()
                .filter_map(|name| columns.iter().position(|c| c == name))
                .collect();
            if !preferred.is_empty() {
                while preferred.len() > 2 && total(&preferred) > limit {
                    preferred.pop();
                }
                preferred.sort_unstable();
                keep = preferred;
            }
        }
    }
    let hidden = visible
        .iter()
        .filter(|i| !keep.contains(i))
        .map(|&i| columns[i].clone())
        .collect();
    let mut table = Table::new();
    table
        .force_no_tty()
        .load_preset(presets::UTF8_FULL_CONDENSED)
        .set_header(keep.iter().map(|&i| columns[i].as_str()));
    if let (Some(limit), false) = (layout.width, layout.all) {
        table
            .set_width(u16::try_from(limit).unwrap_or(u16::MAX))
            .set_content_arrangement(ContentArrangement::Dynamic);
    }
    for row in &cells {
        table.add_row(keep.iter().map(|&i| row[i].as_str()));
    }
    for (position, &i) in keep.iter().enumerate() {
        let numeric = result
            .rows
            .iter()
            .filter_map(|row| row[i].as_deref())
            .all(|v| json_value(Some(v)).is_number());
        if let (true, Some(column)) = (numeric, table.column_mut(position)) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    Rendered {
        text: format!("{table}\n"),
        hidden,
    }
}

/// `x_us` when `x` is also a column.
fn is_companion(columns: &[String], i: usize) -> bool {
    columns[i]
        .strip_suffix("_us")
        .is_some_and(|base| columns.iter().any(|c| c == base))
}

fn cell(columns: &[String], row: &[Option<String>], i: usize, layout: &Layout<'_>) -> String {
    let name = columns[i].as_str();
    let Some(text) = row.get(i).and_then(Option::as_deref) else {
        return String::new();
    };
    let number = text.parse::<f64>().ok().filter(|n| n.is_finite());
    match (name, number) {
        ("connect_time" | "request_time", _) => units::parse_timestamp(text)
            .map_or_else(|| text.to_owned(), |t| units::age(t, layout.now)),
        (_, Some(n)) if is_wait(columns, name) => {
            let us = columns
                .iter()
                .position(|c| *c == format!("{name}_us"))
                .and_then(|j| row.get(j)?.as_deref()?.parse::<f64>().ok())
                .unwrap_or(0.0);
            units::micros(n * 1_000_000.0 + us)
        }
        (_, Some(n)) if name.ends_with("_time") => units::micros(n),
        (_, Some(n)) if is_bytes(name) => {
            let per_second = layout.rates || name.starts_with("avg_");
            format!("{}{}", units::bytes(n), if per_second { "/s" } else { "" })
        }
        _ => text.to_owned(),
    }
}

fn is_wait(columns: &[String], name: &str) -> bool {
    let companion = format!("{name}_us");
    columns.contains(&companion)
}

fn is_bytes(name: &str) -> bool {
    matches!(
        name,
        "total_received"
            | "total_sent"
            | "avg_recv"
            | "avg_sent"
            | "bytes_received"
            | "bytes_sent"
            | "total_client_bytes"
            | "total_server_bytes"
            | "memtotal"
            | "size"
    )
}

#[cfg(test)]
mod tests;
