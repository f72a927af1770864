//! Backend tests: golden bytes for every builder, round trips through the decoder and views.

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

fn fixed(f: impl FnOnce(&mut BytesMut)) -> BytesMut {
    let mut buf = BytesMut::new();
    f(&mut buf);
    buf
}

/// Decodes exactly one frame; leaked so views can borrow it inside one expression (tests only).
fn frame(wire: &[u8]) -> &'static Frame {
    let mut buf = BytesMut::from(wire);
    let f = decode_frame(&mut buf, 1 << 20).unwrap().unwrap();
    assert!(buf.is_empty());
    Box::leak(Box::new(f))
}

fn message(wire: &[u8]) -> BackendMessage<'static> {
    let f = frame(wire);
    BackendMessage::parse(f.tag, &f.body).unwrap()
}

fn auth(wire: &[u8]) -> Authentication<'static> {
    match message(wire) {
        BackendMessage::Authentication(a) => a,
        other => panic!("{other:?}"),
    }
}

#[test]
fn authentication_golden() {
    let ok = fixed(authentication_ok);
    assert_eq!(&ok[..], b"R\x00\x00\x00\x08\x00\x00\x00\x00");
    assert_eq!(auth(&ok), Authentication::Ok);
    let clear = fixed(authentication_cleartext_password);
    assert_eq!(&clear[..], b"R\x00\x00\x00\x08\x00\x00\x00\x03");
    assert_eq!(auth(&clear), Authentication::CleartextPassword);
    let md5 = fixed(|b| authentication_md5_password(b, [1, 2, 3, 4]));
    assert_eq!(
        &md5[..],
        b"R\x00\x00\x00\x0c\x00\x00\x00\x05\x01\x02\x03\x04"
    );
    assert_eq!(
        auth(&md5),
        Authentication::Md5Password { salt: [1, 2, 3, 4] }
    );
}

#[test]
fn authentication_sasl_golden() {
    let sasl = build(|b| authentication_sasl(b, ["SCRAM-SHA-256"]));
    assert_eq!(
        &sasl[..],
        b"R\x00\x00\x00\x17\x00\x00\x00\x0aSCRAM-SHA-256\x00\x00"
    );
    let Authentication::Sasl(m) = auth(&sasl) else {
        panic!()
    };
    assert_eq!(m.iter().collect::<Vec<_>>(), [b"SCRAM-SHA-256"]);
    let cont = build(|b| authentication_sasl_continue(b, b"r=abc"));
    assert_eq!(&cont[..], b"R\x00\x00\x00\x0d\x00\x00\x00\x0br=abc");
    assert_eq!(auth(&cont), Authentication::SaslContinue(b"r=abc"));
    let fin = build(|b| authentication_sasl_final(b, b"v=xyz"));
    assert_eq!(&fin[..], b"R\x00\x00\x00\x0d\x00\x00\x00\x0cv=xyz");
    assert_eq!(auth(&fin), Authentication::SaslFinal(b"v=xyz"));
}

#[test]
fn authentication_rejects_unknown_codes_and_bad_layouts() {
    assert!(Authentication::parse(b"\x00\x00\x00\x63").is_err());
    assert!(Authentication::parse(b"\x00\x00\x00\x05\x01\x02").is_err());
    assert!(Authentication::parse(b"\x00\x00\x00\x00\x00").is_err());
    assert!(Authentication::parse(b"\x00\x00\x00\x0aSCRAM").is_err());
}

#[test]
fn parameter_status_golden() {
    let wire = build(|b| parameter_status(b, "client_encoding", "UTF8"));
    assert_eq!(&wire[..], b"S\x00\x00\x00\x19client_encoding\x00UTF8\x00");
    let expected = ParameterStatus {
        name: b"client_encoding",
        value: b"UTF8",
    };
    assert_eq!(message(&wire), BackendMessage::ParameterStatus(expected));
}

#[test]
fn backend_key_data_golden() {
    let wire = build(|b| backend_key_data(b, 1234, &[0xde, 0xad, 0xbe, 0xef]));
    assert_eq!(
        &wire[..],
        b"K\x00\x00\x00\x0c\x00\x00\x04\xd2\xde\xad\xbe\xef"
    );
    let expected = BackendKeyData {
        process_id: 1234,
        secret_key: &[0xde, 0xad, 0xbe, 0xef],
    };
    assert_eq!(message(&wire), BackendMessage::BackendKeyData(expected));
    assert!(BackendKeyData::parse(b"\x00\x00\x04\xd2\x01").is_err());
    assert!(backend_key_data(&mut BytesMut::new(), 1, &[0; 257]).is_err());
}

#[test]
fn ready_for_query_golden() {
    for (status, byte) in [
        (TxStatus::Idle, b'I'),
        (TxStatus::InTransaction, b'T'),
        (TxStatus::InFailedTransaction, b'E'),
    ] {
        let wire = fixed(|b| ready_for_query(b, status));
        assert_eq!(&wire[..], &[b'Z', 0, 0, 0, 5, byte]);
        assert_eq!(
            message(&wire),
            BackendMessage::ReadyForQuery(ReadyForQuery { status })
        );
    }
    assert!(ReadyForQuery::parse(b"X").is_err());
    assert!(ReadyForQuery::parse(b"").is_err());
    assert!(ReadyForQuery::parse(b"II").is_err());
}

#[test]
fn error_response_golden_matches_pgbouncer() {
    let wire = build(|b| error_response(b, Severity::Fatal, "08P01", "bad"));
    assert_eq!(
        &wire[..],
        b"E\x00\x00\x00\x1fSFATAL\x00VFATAL\x00C08P01\x00Mbad\x00\x00"
    );
    let BackendMessage::ErrorResponse(e) = message(&wire) else {
        panic!()
    };
    assert_eq!(e.severity(), Some(&b"FATAL"[..]));
    assert_eq!(e.code(), Some(&b"08P01"[..]));
    assert_eq!(e.message(), Some(&b"bad"[..]));
    assert_eq!(e.get(error_field::HINT), None);
}

#[test]
fn notice_response_golden() {
    let wire = build(|b| notice_response(b, Severity::Warning, "01000", "w"));
    assert_eq!(
        &wire[..],
        b"N\x00\x00\x00\x21SWARNING\x00VWARNING\x00C01000\x00Mw\x00\x00"
    );
    assert!(matches!(message(&wire), BackendMessage::NoticeResponse(_)));
}

#[test]
fn error_fields_with_detail_and_hint() {
    let fields = [
        ErrorField {
            code: error_field::SEVERITY,
            value: b"ERROR",
        },
        ErrorField {
            code: error_field::DETAIL,
            value: b"d",
        },
        ErrorField {
            code: error_field::HINT,
            value: b"h",
        },
    ];
    let wire = build(|b| error_fields(b, tag::ERROR_RESPONSE, fields));
    assert_eq!(&wire[..], b"E\x00\x00\x00\x12SERROR\x00Dd\x00Hh\x00\x00");
    let e = ErrorFields::parse(&frame(&wire).body).unwrap();
    assert_eq!(e.iter().collect::<Vec<_>>(), fields);
    assert_eq!(e.severity(), Some(&b"ERROR"[..]));
    assert!(
        ErrorFields::parse(b"SERROR\x00").is_err(),
        "missing terminator"
    );
    assert!(
        ErrorFields::parse(b"\x00x").is_err(),
        "bytes after terminator"
    );
}

#[test]
fn row_description_golden() {
    let wire = build(|b| row_description(b, [RowField::text(b"a", type_oid::TEXT)]));
    assert_eq!(
        &wire[..],
        b"T\x00\x00\x00\x1a\x00\x01a\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x19\xff\xff\xff\xff\xff\xff\x00\x00"
    );
    let BackendMessage::RowDescription(r) = message(&wire) else {
        panic!()
    };
    assert_eq!(r.len(), 1);
    assert_eq!(
        r.fields().collect::<Vec<_>>(),
        [RowField::text(b"a", type_oid::TEXT)]
    );
    assert_eq!(RowField::text(b"n", type_oid::INT8).type_size, 8);
}

#[test]
fn data_row_golden() {
    let wire = build(|b| data_row(b, [Some(&b"1"[..]), None]));
    assert_eq!(
        &wire[..],
        b"D\x00\x00\x00\x0f\x00\x02\x00\x00\x00\x011\xff\xff\xff\xff"
    );
    let BackendMessage::DataRow(r) = message(&wire) else {
        panic!()
    };
    assert_eq!(r.values().collect::<Vec<_>>(), [Some(&b"1"[..]), None]);
    assert!(DataRow::parse(b"\x00\x01\x00\x00\x00\x05ab").is_err());
}

#[test]
fn command_complete_golden() {
    let wire = build(|b| command_complete(b, "SELECT 1"));
    assert_eq!(&wire[..], b"C\x00\x00\x00\x0dSELECT 1\x00");
    assert_eq!(
        message(&wire),
        BackendMessage::CommandComplete(CommandComplete { tag: b"SELECT 1" })
    );
}

#[test]
fn bodiless_messages_golden() {
    let cases: [(Fixed, &[u8]); 6] = [
        (empty_query_response, b"I\x00\x00\x00\x04"),
        (parse_complete, b"1\x00\x00\x00\x04"),
        (bind_complete, b"2\x00\x00\x00\x04"),
        (close_complete, b"3\x00\x00\x00\x04"),
        (no_data, b"n\x00\x00\x00\x04"),
        (portal_suspended, b"s\x00\x00\x00\x04"),
    ];
    for (builder, wire) in cases {
        let buf = fixed(builder);
        assert_eq!(&buf[..], wire);
        assert_eq!(message(&buf), BackendMessage::Empty(wire[0]));
    }
}

#[test]
fn parameter_description_golden() {
    let wire = build(|b| parameter_description(b, &[23, 25]));
    assert_eq!(
        &wire[..],
        b"t\x00\x00\x00\x0e\x00\x02\x00\x00\x00\x17\x00\x00\x00\x19"
    );
    let BackendMessage::ParameterDescription(p) = message(&wire) else {
        panic!()
    };
    assert_eq!(p.types().collect::<Vec<_>>(), [23, 25]);
}

#[test]
fn negotiate_protocol_version_golden() {
    let wire = build(|b| negotiate_protocol_version(b, 0, &["_pq_.x"]));
    assert_eq!(
        &wire[..],
        b"v\x00\x00\x00\x13\x00\x00\x00\x00\x00\x00\x00\x01_pq_.x\x00"
    );
    let BackendMessage::NegotiateProtocolVersion(n) = message(&wire) else {
        panic!()
    };
    assert_eq!(n.newest_minor, 0);
    assert_eq!(n.unrecognized_options().collect::<Vec<_>>(), [b"_pq_.x"]);
    // A huge claimed count is refused by the walk, not allocated.
    assert!(NegotiateProtocolVersion::parse(b"\x00\x00\x00\x00\xff\xff\xff\xff").is_err());
}

#[test]
fn notification_response_golden() {
    let wire = build(|b| notification_response(b, 7, "ch", "hi"));
    assert_eq!(&wire[..], b"A\x00\x00\x00\x0e\x00\x00\x00\x07ch\x00hi\x00");
    let expected = NotificationResponse {
        process_id: 7,
        channel: b"ch",
        payload: b"hi",
    };
    assert_eq!(
        message(&wire),
        BackendMessage::NotificationResponse(expected)
    );
}

#[test]
fn opaque_and_unknown_tags() {
    assert_eq!(
        BackendMessage::parse(tag::COPY_DATA, b"x"),
        Ok(BackendMessage::Opaque {
            tag: tag::COPY_DATA,
            body: b"x"
        })
    );
    assert_eq!(
        BackendMessage::parse(b'?', b""),
        Err(DecodeError::UnknownTag { tag: b'?' })
    );
}

fn cstr() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(1u8..=255, 0..24)
}

fn arb_field() -> impl Strategy<Value = (Vec<u8>, u32, i16, u32, i16, i32, i16)> {
    (
        cstr(),
        any::<u32>(),
        any::<i16>(),
        any::<u32>(),
        any::<i16>(),
        any::<i32>(),
        0i16..2,
    )
}

proptest! {
    #[test]
    fn auth_round_trip(salt in any::<[u8; 4]>(), data in proptest::collection::vec(any::<u8>(), 0..64),
                       mechs in proptest::collection::vec("[A-Z0-9-]{1,20}", 0..4)) {
        prop_assert_eq!(auth(&fixed(|b| authentication_md5_password(b, salt))), Authentication::Md5Password { salt });
        prop_assert_eq!(auth(&build(|b| authentication_sasl_continue(b, &data))), Authentication::SaslContinue(&data));
        prop_assert_eq!(auth(&build(|b| authentication_sasl_final(b, &data))), Authentication::SaslFinal(&data));
        let wire = build(|b| authentication_sasl(b, mechs.iter().map(String::as_str)));
        let Authentication::Sasl(m) = auth(&wire) else { panic!() };
        prop_assert!(m.iter().eq(mechs.iter().map(String::as_bytes)));
    }

    #[test]
    fn session_messages_round_trip(name in cstr(), value in cstr(), pid in any::<i32>(),
                                   key in proptest::collection::vec(any::<u8>(), 4..=256)) {
        let wire = build(|b| parameter_status(b, &name, &value));
        prop_assert_eq!(ParameterStatus::parse(&frame(&wire).body), Ok(ParameterStatus { name: &name, value: &value }));
        let wire = build(|b| backend_key_data(b, pid, &key));
        prop_assert_eq!(BackendKeyData::parse(&frame(&wire).body), Ok(BackendKeyData { process_id: pid, secret_key: &key }));
        let wire = build(|b| notification_response(b, pid, &name, &value));
        prop_assert_eq!(
            NotificationResponse::parse(&frame(&wire).body),
            Ok(NotificationResponse { process_id: pid, channel: &name, payload: &value })
        );
        let wire = build(|b| command_complete(b, &name));
        prop_assert_eq!(CommandComplete::parse(&frame(&wire).body), Ok(CommandComplete { tag: &name }));
    }

    #[test]
    fn error_fields_round_trip(fields in proptest::collection::vec((1u8..=255, cstr()), 0..8)) {
        let fields: Vec<ErrorField<'_>> = fields.iter().map(|(code, v)| ErrorField { code: *code, value: v }).collect();
        let wire = build(|b| error_fields(b, tag::NOTICE_RESPONSE, fields.iter().copied()));
        let BackendMessage::NoticeResponse(e) = message(&wire) else { panic!() };
        prop_assert_eq!(e.iter().collect::<Vec<_>>(), fields);
    }

    #[test]
    fn row_description_round_trip(raw in proptest::collection::vec(arb_field(), 0..6)) {
        let fields: Vec<RowField<'_>> = raw.iter().map(|(name, t, c, o, s, m, f)| RowField {
            name, table_oid: *t, column_id: *c, type_oid: *o, type_size: *s, type_modifier: *m, format: *f,
        }).collect();
        let wire = build(|b| row_description(b, fields.iter().copied()));
        let r = RowDescription::parse(&frame(&wire).body).unwrap();
        prop_assert_eq!(r.fields().collect::<Vec<_>>(), fields);
    }

    #[test]
    fn data_row_round_trip(cells in proptest::collection::vec(
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..16)), 0..10)) {
        let refs: Vec<Option<&[u8]>> = cells.iter().map(|c| c.as_deref()).collect();
        let wire = build(|b| data_row(b, refs.iter().copied()));
        let r = DataRow::parse(&frame(&wire).body).unwrap();
        prop_assert_eq!(r.values().collect::<Vec<_>>(), refs);
    }

    #[test]
    fn parameter_description_round_trip(types in proptest::collection::vec(any::<u32>(), 0..10)) {
        let wire = build(|b| parameter_description(b, &types));
        let p = ParameterDescription::parse(&frame(&wire).body).unwrap();
        prop_assert_eq!(p.types().collect::<Vec<_>>(), types);
    }

    #[test]
    fn negotiate_round_trip(minor in any::<i32>(), opts in proptest::collection::vec("_pq_\\.[a-z]{1,10}", 0..4)) {
        let refs: Vec<&str> = opts.iter().map(String::as_str).collect();
        let wire = build(|b| negotiate_protocol_version(b, minor, &refs));
        let n = NegotiateProtocolVersion::parse(&frame(&wire).body).unwrap();
        prop_assert_eq!(n.newest_minor, minor);
        prop_assert!(n.unrecognized_options().eq(opts.iter().map(String::as_bytes)));
    }
}
