//! Frontend tests: golden bytes for every builder, round trips through the decoder and views.

use bytes::BytesMut;
use proptest::prelude::*;

use super::*;
use crate::protocol::{Frame, decode_frame};

/// A builder that cannot fail.
type Fixed = fn(&mut BytesMut);

fn build(f: impl FnOnce(&mut BytesMut) -> Result<(), EncodeError>) -> BytesMut {
    let mut buf = BytesMut::new();
    f(&mut buf).unwrap();
    buf
}

/// Decodes exactly one frame; leaked so views can borrow it inside one expression (tests only).
fn frame(wire: &[u8]) -> &'static Frame {
    let mut buf = BytesMut::from(wire);
    let f = decode_frame(&mut buf, 1 << 20).unwrap().unwrap();
    assert!(buf.is_empty());
    Box::leak(Box::new(f))
}

#[test]
fn query_golden() {
    let wire = build(|b| query(b, "SELECT 1"));
    assert_eq!(&wire[..], b"Q\x00\x00\x00\x0dSELECT 1\x00");
    assert_eq!(Query::parse(&frame(&wire).body).unwrap().query, b"SELECT 1");
}

#[test]
fn parse_golden() {
    let wire = build(|b| parse(b, "s1", "SELECT $1", &[23]));
    assert_eq!(
        &wire[..],
        b"P\x00\x00\x00\x17s1\x00SELECT $1\x00\x00\x01\x00\x00\x00\x17"
    );
    let f = frame(&wire);
    let p = Parse::parse(&f.body).unwrap();
    assert_eq!((p.name, p.query), (&b"s1"[..], &b"SELECT $1"[..]));
    assert_eq!(p.param_types().collect::<Vec<_>>(), [23]);
}

const BIND_WIRE: &[u8] =
    b"B\x00\x00\x00\x1c\x00s1\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00\x0242\xff\xff\xff\xff\x00\x01\x00\x01";

#[test]
fn bind_golden() {
    let wire = build(|b| bind(b, "", "s1", &[0], &[Some(b"42"), None], &[1]));
    assert_eq!(&wire[..], BIND_WIRE);
    let f = frame(&wire);
    let b = Bind::parse(&f.body).unwrap();
    assert_eq!((b.portal, b.statement), (&b""[..], &b"s1"[..]));
    assert_eq!(b.param_formats().collect::<Vec<_>>(), [0]);
    assert_eq!(b.param_count(), 2);
    assert_eq!(b.params().collect::<Vec<_>>(), [Some(&b"42"[..]), None]);
    assert_eq!(b.result_formats().collect::<Vec<_>>(), [1]);
}

#[test]
fn bind_rewrite_statement_keeps_the_rest() {
    let f = frame(BIND_WIRE);
    let mut out = BytesMut::new();
    Bind::parse(&f.body)
        .unwrap()
        .rewrite_statement(&mut out, "S_1")
        .unwrap();
    assert_eq!(
        &out[..],
        b"B\x00\x00\x00\x1d\x00S_1\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00\x0242\xff\xff\xff\xff\x00\x01\x00\x01"
    );
}

#[test]
fn bind_rejects_bad_lengths() {
    // Parameter length -2, a length past the end, a missing result format count.
    let bodies: [&[u8]; 3] = [
        b"\x00\x00\x00\x00\x00\x01\xff\xff\xff\xfe\x00\x00",
        b"\x00\x00\x00\x00\x00\x01\x00\x00\x00\x09ab\x00\x00",
        b"\x00\x00\x00\x00\x00\x00",
    ];
    for body in bodies {
        assert!(Bind::parse(body).is_err(), "{body:?}");
    }
}

#[test]
fn describe_and_close_golden() {
    let wire = build(|b| describe(b, Target::Statement, "s1"));
    assert_eq!(&wire[..], b"D\x00\x00\x00\x08Ss1\x00");
    let d = Describe::parse(&frame(&wire).body).unwrap();
    assert_eq!((d.target, d.name), (Target::Statement, &b"s1"[..]));
    let wire = build(|b| close(b, Target::Portal, ""));
    assert_eq!(&wire[..], b"C\x00\x00\x00\x06P\x00");
    let c = Close::parse(&frame(&wire).body).unwrap();
    assert_eq!((c.target, c.name), (Target::Portal, &b""[..]));
    assert!(Describe::parse(b"Xs1\x00").is_err());
}

#[test]
fn execute_golden() {
    let wire = build(|b| execute(b, "", 0));
    assert_eq!(&wire[..], b"E\x00\x00\x00\x09\x00\x00\x00\x00\x00");
    let e = Execute::parse(&frame(&wire).body).unwrap();
    assert_eq!((e.portal, e.max_rows), (&b""[..], 0));
}

#[test]
fn bodiless_messages_golden() {
    let cases: [(Fixed, &[u8]); 4] = [
        (sync, b"S\x00\x00\x00\x04"),
        (flush, b"H\x00\x00\x00\x04"),
        (terminate, b"X\x00\x00\x00\x04"),
        (copy_done, b"c\x00\x00\x00\x04"),
    ];
    for (builder, wire) in cases {
        let mut buf = BytesMut::new();
        builder(&mut buf);
        assert_eq!(&buf[..], wire);
        let f = frame(&buf);
        assert!(FrontendMessage::parse(f.tag, &f.body).is_ok());
    }
    assert!(FrontendMessage::parse(tag::SYNC, b"x").is_err());
}

#[test]
fn copy_golden() {
    assert_eq!(
        &build(|b| copy_data(b, b"a\tb\n"))[..],
        b"d\x00\x00\x00\x08a\tb\n"
    );
    let wire = build(|b| copy_fail(b, "oops"));
    assert_eq!(&wire[..], b"f\x00\x00\x00\x09oops\x00");
    assert_eq!(
        CopyFail::parse(&frame(&wire).body).unwrap().message,
        b"oops"
    );
}

#[test]
fn password_and_sasl_golden() {
    let wire = build(|b| password_message(b, b"md5abc"));
    assert_eq!(&wire[..], b"p\x00\x00\x00\x0bmd5abc\x00");
    assert_eq!(
        PasswordMessage::parse(&frame(&wire).body).unwrap().password,
        b"md5abc"
    );
    assert!(
        !format!(
            "{:?}",
            PasswordMessage {
                password: b"secret"
            }
        )
        .contains("secret")
    );

    let wire = build(|b| sasl_initial_response(b, "SCRAM-SHA-256", Some(b"n,,n=,r=x")));
    assert_eq!(
        &wire[..],
        b"p\x00\x00\x00\x1fSCRAM-SHA-256\x00\x00\x00\x00\x09n,,n=,r=x"
    );
    let s = SaslInitialResponse::parse(&frame(&wire).body).unwrap();
    assert_eq!(
        (s.mechanism, s.data),
        (&b"SCRAM-SHA-256"[..], Some(&b"n,,n=,r=x"[..]))
    );

    let wire = build(|b| sasl_initial_response(b, "SCRAM-SHA-256", None));
    assert_eq!(
        &wire[..],
        b"p\x00\x00\x00\x16SCRAM-SHA-256\x00\xff\xff\xff\xff"
    );
    assert_eq!(
        SaslInitialResponse::parse(&frame(&wire).body).unwrap().data,
        None
    );

    let wire = build(|b| sasl_response(b, b"c=biws"));
    assert_eq!(&wire[..], b"p\x00\x00\x00\x0ac=biws");
    assert_eq!(SaslResponse::parse(&frame(&wire).body).data, b"c=biws");
}

#[test]
fn unknown_tag_and_truncation() {
    assert_eq!(
        FrontendMessage::parse(b'!', b""),
        Err(DecodeError::UnknownTag { tag: b'!' })
    );
    assert_eq!(
        Query::parse(b"SELECT"),
        Err(DecodeError::Truncated { message: "Query" })
    );
    assert_eq!(
        Query::parse(b"a\x00b"),
        Err(DecodeError::TrailingBytes { message: "Query" })
    );
    assert!(Parse::parse(b"s\x00q\x00\x00\x02\x00\x00\x00\x17").is_err());
}

fn cstr() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(1u8..=255, 0..24)
}

fn values() -> impl Strategy<Value = Vec<Option<Vec<u8>>>> {
    proptest::collection::vec(
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..16)),
        0..6,
    )
}

proptest! {
    #[test]
    fn query_round_trip(q in cstr()) {
        let wire = build(|b| query(b, &q));
        let f = frame(&wire);
        prop_assert_eq!(FrontendMessage::parse(f.tag, &f.body), Ok(FrontendMessage::Query(Query { query: &q })));
    }

    #[test]
    fn parse_round_trip(name in cstr(), q in cstr(), types in proptest::collection::vec(any::<u32>(), 0..8)) {
        let wire = build(|b| parse(b, &name, &q, &types));
        let f = frame(&wire);
        let p = Parse::parse(&f.body).unwrap();
        prop_assert_eq!((p.name, p.query), (&name[..], &q[..]));
        prop_assert_eq!(p.param_types().collect::<Vec<_>>(), types);
    }

    #[test]
    fn bind_round_trip(
        portal in cstr(), stmt in cstr(), new_name in cstr(),
        pf in proptest::collection::vec(0i16..2, 0..4),
        params in values(),
        rf in proptest::collection::vec(0i16..2, 0..4),
    ) {
        let refs: Vec<Option<&[u8]>> = params.iter().map(|p| p.as_deref()).collect();
        let wire = build(|b| bind(b, &portal, &stmt, &pf, &refs, &rf));
        let f = frame(&wire);
        let b = Bind::parse(&f.body).unwrap();
        prop_assert_eq!((b.portal, b.statement), (&portal[..], &stmt[..]));
        prop_assert_eq!(b.param_formats().collect::<Vec<_>>(), pf.clone());
        prop_assert_eq!(b.params().collect::<Vec<_>>(), refs.clone());
        prop_assert_eq!(b.result_formats().collect::<Vec<_>>(), rf.clone());
        let mut renamed = BytesMut::new();
        b.rewrite_statement(&mut renamed, &new_name).unwrap();
        prop_assert_eq!(renamed, build(|b| bind(b, &portal, &new_name, &pf, &refs, &rf)));
    }

    #[test]
    fn describe_close_execute_round_trip(name in cstr(), portal_target in any::<bool>(), max_rows in any::<i32>()) {
        let target = if portal_target { Target::Portal } else { Target::Statement };
        let d = build(|b| describe(b, target, &name));
        prop_assert_eq!(Describe::parse(&frame(&d).body), Ok(Describe { target, name: &name }));
        let c = build(|b| close(b, target, &name));
        prop_assert_eq!(Close::parse(&frame(&c).body), Ok(Close { target, name: &name }));
        let e = build(|b| execute(b, &name, max_rows));
        prop_assert_eq!(Execute::parse(&frame(&e).body), Ok(Execute { portal: &name, max_rows }));
    }

    #[test]
    fn auth_responses_round_trip(
        pw in cstr(), mech in cstr(),
        data in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
    ) {
        let p = build(|b| password_message(b, &pw));
        prop_assert_eq!(PasswordMessage::parse(&frame(&p).body), Ok(PasswordMessage { password: &pw }));
        let s = build(|b| sasl_initial_response(b, &mech, data.as_deref()));
        let parsed = SaslInitialResponse::parse(&frame(&s).body).unwrap();
        prop_assert_eq!((parsed.mechanism, parsed.data), (&mech[..], data.as_deref()));
        let raw = data.clone().unwrap_or_default();
        let r = build(|b| sasl_response(b, &raw));
        prop_assert_eq!(SaslResponse::parse(&frame(&r).body).data, &raw[..]);
    }

    #[test]
    fn copy_round_trip(data in proptest::collection::vec(any::<u8>(), 0..64), msg in cstr()) {
        let d = build(|b| copy_data(b, &data));
        let f = frame(&d);
        prop_assert_eq!(FrontendMessage::parse(f.tag, &f.body), Ok(FrontendMessage::CopyData(&data)));
        let c = build(|b| copy_fail(b, &msg));
        prop_assert_eq!(CopyFail::parse(&frame(&c).body), Ok(CopyFail { message: &msg }));
    }
}
