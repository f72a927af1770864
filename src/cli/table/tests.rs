use super::*;

fn result(columns: &[&str], rows: &[&[Option<&str>]]) -> ShowResult {
    ShowResult {
        columns: columns.iter().map(|c| (*c).to_owned()).collect(),
        rows: rows
            .iter()
            .map(|r| r.iter().map(|v| v.map(str::to_owned)).collect())
            .collect(),
    }
}

fn layout(width: Option<usize>, preferred: &'static [&'static str]) -> Layout<'static> {
    Layout {
        width,
        all: false,
        preferred,
        rates: false,
        now: 1_795_703_604,
    }
}

#[test]
fn json_numbers_strings_and_nulls() {
    assert_eq!(json_value(Some("42")), serde_json::json!(42));
    assert_eq!(json_value(Some("-7")), serde_json::json!(-7));
    assert_eq!(json_value(Some("0.25")), serde_json::json!(0.25));
    assert_eq!(
        json_value(Some("0x5621c89f86f0")),
        serde_json::json!("0x5621c89f86f0")
    );
    assert_eq!(
        json_value(Some("127.0.0.1")),
        serde_json::json!("127.0.0.1")
    );
    assert_eq!(json_value(Some("inf")), serde_json::json!("inf"));
    assert_eq!(json_value(Some("")), serde_json::json!(""));
    assert_eq!(json_value(None), serde_json::Value::Null);
}

#[test]
fn json_keeps_column_order() {
    let r = result(
        &["database", "user", "cl_active"],
        &[&[Some("db"), None, Some("3")]],
    );
    let text = serde_json::to_string(&JsonRows(&r)).unwrap();
    assert_eq!(text, r#"[{"database":"db","user":null,"cl_active":3}]"#);
}

#[test]
fn human_units_in_cells() {
    let r = result(
        &[
            "database",
            "total_received",
            "total_query_time",
            "maxwait",
            "maxwait_us",
        ],
        &[&[
            Some("postgres"),
            Some("2048"),
            Some("10669"),
            Some("3"),
            Some("500000"),
        ]],
    );
    let text = render(&r, &layout(None, &[])).text;
    for want in ["2.0 KiB", "10.7ms", "3.50s", "maxwait"] {
        assert!(text.contains(want), "{want} in\n{text}");
    }
    assert!(!text.contains("maxwait_us"), "{text}");
}

#[test]
fn timestamps_become_ages() {
    let r = result(
        &["user", "connect_time"],
        &[
            &[Some("u"), Some("2026-11-26 14:30:12 UTC")],
            &[Some("v"), Some("odd")],
        ],
    );
    let text = render(&r, &layout(None, &[])).text;
    assert!(text.contains("3m12s ago"), "{text}");
    assert!(text.contains("odd"), "{text}");
}

#[test]
fn narrow_terminals_keep_the_preferred_columns() {
    let columns: Vec<String> = (0..20).map(|i| format!("column_{i:02}")).collect();
    let names: Vec<&str> = columns.iter().map(String::as_str).collect();
    let row: Vec<Option<&str>> = vec![Some("1"); 20];
    let r = result(&names, &[&row]);
    let fitted = render(
        &r,
        &layout(Some(60), &["column_05", "column_01", "column_09"]),
    );
    assert_eq!(fitted.hidden.len(), 17, "{:?}", fitted.hidden);
    let header = fitted.text.lines().nth(1).unwrap();
    let first = header.find("column_01").unwrap();
    assert!(first < header.find("column_05").unwrap(), "{header}");
    assert!(
        fitted.text.lines().all(|l| l.chars().count() <= 60),
        "{}",
        fitted.text
    );
    let mut all = layout(Some(60), &["column_05"]);
    all.all = true;
    assert!(render(&r, &all).hidden.is_empty());
}
