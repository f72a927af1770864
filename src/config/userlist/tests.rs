use super::*;
use proptest::prelude::*;

#[test]
fn reads_pgbouncer_examples() {
    let text = "\"admin\" \"md545f2603610af569b6155c45067268c6b\"\n\
                ; a comment\n\
                \n\
                \"we\"\"ird\" \"pa\"\"ss\" trailing junk ignored\n";
    let entries = parse(text).unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].user, "admin");
    assert_eq!(entries[0].secret.kind(), "md5");
    assert_eq!(entries[1].user, "we\"ird");
    assert_eq!(entries[1].secret, Secret::Plain("pa\"ss".into()));
    assert_eq!(entries[1].line, 4);
}

#[test]
fn classifies_scram() {
    let v = Verifier::derive("pw", b"saltsaltsaltsalt", 4096).to_string();
    let entries = parse(&format_line("u", &v)).unwrap();
    assert!(matches!(entries[0].secret, Secret::Scram(ref s) if s.iterations == 4096));
}

#[test]
fn broken_lines_name_their_number() {
    for (text, line, needle) in [
        (
            "\"a\" \"b\"\n# hash comment\n",
            2,
            "comments start with ';'",
        ),
        ("\"a\" \"b\"\n\"c\n", 2, "no closing quote"),
        ("\"a\"\n", 1, "no secret"),
        (
            "\"a\" \"b\n",
            1,
            "secret of user \"a\" has no closing quote",
        ),
        ("plain words\n", 1, "broken auth file"),
    ] {
        let err = parse(text).unwrap_err();
        assert_eq!(err.line, line, "{text:?}");
        assert!(err.reason.contains(needle), "{text:?}: {}", err.reason);
    }
}

#[test]
fn too_long_fields_are_rejected() {
    let long_user = "u".repeat(MAX_USERNAME);
    assert!(
        parse(&format_line(&long_user, "x"))
            .unwrap_err()
            .reason
            .contains("username too long")
    );
    let long_secret = "s".repeat(MAX_PASSWORD);
    assert!(
        parse(&format_line("u", &long_secret))
            .unwrap_err()
            .reason
            .contains("password too long")
    );
}

#[test]
fn upsert_keeps_everything_else() {
    let text = ";; header\n\"alice\" \"md5aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\" # note\n\n\"bob\" \"old\"\r\n\"carol\" \"x\"";
    let out = upsert(text, "bob", "new").unwrap();
    assert_eq!(
        out,
        ";; header\n\"alice\" \"md5aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\" # note\n\n\"bob\" \"new\"\r\n\"carol\" \"x\""
    );
    let appended = upsert(text, "dave", "s").unwrap();
    assert_eq!(appended, format!("{text}\n\"dave\" \"s\"\n"));
    assert_eq!(upsert("", "e", "s").unwrap(), "\"e\" \"s\"\n");
}

#[test]
fn upsert_drops_duplicate_entries_of_the_user() {
    let out = upsert("\"a\" \"1\"\n\"b\" \"2\"\n\"a\" \"3\"\n", "a", "9").unwrap();
    assert_eq!(out, "\"a\" \"9\"\n\"b\" \"2\"\n");
}

proptest! {
    #[test]
    fn write_then_read_gives_the_same_entries(
        users in proptest::collection::vec("[^\n\r]{1,20}", 1..8),
        secrets in proptest::collection::vec("[^\n\r]{0,40}", 8),
    ) {
        let mut text = String::new();
        let mut expected = Vec::new();
        for (user, secret) in users.iter().zip(&secrets) {
            text = upsert(&text, user, secret).unwrap();
            expected.retain(|(u, _): &(String, String)| u != user);
            expected.push((user.clone(), secret.clone()));
        }
        let read: Vec<(String, String)> = parse(&text)
            .unwrap()
            .into_iter()
            .map(|e| (e.user, e.secret.as_text()))
            .collect();
        let mut expected_sorted = expected.clone();
        expected_sorted.sort();
        let mut read_sorted = read.clone();
        read_sorted.sort();
        prop_assert_eq!(read_sorted, expected_sorted);
    }
}
