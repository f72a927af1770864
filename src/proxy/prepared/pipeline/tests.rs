//! The pipeline's ordering rules on hand-made reply streams.

use super::*;
use crate::pool::statements::Registry;

fn msg(tag: u8) -> Vec<u8> {
    vec![tag, 0, 0, 0, 4]
}

/// Feeds server tags and returns the tags the client sees, with the rolled-back entry count.
fn feed(p: &mut Pipeline, tags: &[u8]) -> (String, usize) {
    let mut out = BytesMut::new();
    let mut undone = 0;
    for &t in tags {
        undone += p.server_message(t, &msg(t), &mut out).len();
    }
    let mut seen = String::new();
    let mut rest = &out[..];
    while let [t, _, _, _, len, ..] = rest {
        seen.push(*t as char);
        rest = &rest[1 + usize::from(*len)..];
    }
    (seen, undone)
}

#[test]
fn swallows_injected_replies_and_places_synthetic_ones() {
    let r = Registry::default();
    let s = r.intern(b"SELECT 1", vec![]);
    let mut p = Pipeline::default();
    p.push(Expect::ParseComplete);
    p.push(Expect::EvictClose(Arc::clone(&s)));
    p.push(Expect::InjectedParse(Arc::clone(&s)));
    p.push(Expect::Forward(BIND_DONE));
    p.push(Expect::CloseComplete);
    p.push(Expect::Forward(EXECUTE_DONE));
    p.client_sync();
    assert_eq!(
        feed(&mut p, b"312DCZ"),
        ("123DCZ".to_owned(), 0),
        "ParseComplete first, the injected replies gone, CloseComplete after BindComplete"
    );
    assert!(p.is_empty());
}

#[test]
fn an_error_skips_to_sync_and_returns_what_to_undo() {
    let r = Registry::default();
    let s = r.intern(b"SELECT 1", vec![]);
    let mut p = Pipeline::default();
    p.push(Expect::Forward(BIND_DONE));
    p.push(Expect::InjectedParse(Arc::clone(&s)));
    p.push(Expect::ParseComplete);
    p.push(Expect::Forward(EXECUTE_DONE));
    p.client_sync();
    p.push(Expect::Forward(BIND_DONE));
    p.client_sync();
    // The Bind fails; the injected Parse, the synthetic reply and the Execute are skipped.
    assert_eq!(feed(&mut p, b"EZ2Z"), ("EZ2Z".to_owned(), 4));
    assert!(p.is_empty());
}

#[test]
fn an_error_inside_a_simple_query_skips_nothing() {
    let mut p = Pipeline::default();
    p.push(Expect::Forward(QUERY_DONE));
    p.push(Expect::ParseComplete);
    p.client_sync();
    assert_eq!(feed(&mut p, b"CEZZ"), ("CEZ1Z".to_owned(), 0));
}

#[test]
fn syncs_sent_into_copy_in_draw_no_ready_for_query() {
    let mut p = Pipeline::default();
    p.push(Expect::Forward(BIND_DONE));
    p.push(Expect::Forward(EXECUTE_DONE));
    p.client_sync();
    assert_eq!(feed(&mut p, b"2G"), ("2G".to_owned(), 0));
    p.client_sync();
    p.client_copy_end();
    p.client_sync();
    assert_eq!(feed(&mut p, b"CZ"), ("CZ".to_owned(), 0));
    assert!(p.is_empty());
}
