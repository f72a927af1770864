//! Startup-phase tests: golden bytes, round trips, the 10,000-byte cap and malformed packets.

use bytes::BytesMut;
use proptest::prelude::*;

use super::*;

fn decode(bytes: &[u8]) -> Result<Option<Startup>, DecodeError> {
    decode_startup(&mut BytesMut::from(bytes))
}

#[test]
fn ssl_request_golden() {
    let mut buf = BytesMut::new();
    ssl_request(&mut buf);
    assert_eq!(&buf[..], b"\x00\x00\x00\x08\x04\xd2\x16\x2f");
    assert_eq!(decode(&buf), Ok(Some(Startup::SslRequest)));
}

#[test]
fn gssenc_request_golden() {
    let mut buf = BytesMut::new();
    gssenc_request(&mut buf);
    assert_eq!(&buf[..], b"\x00\x00\x00\x08\x04\xd2\x16\x30");
    assert_eq!(decode(&buf), Ok(Some(Startup::GssEncRequest)));
}

#[test]
fn cancel_request_golden() {
    let mut buf = BytesMut::new();
    cancel_request(&mut buf, 1234, &[1, 2, 3, 4]).unwrap();
    assert_eq!(
        &buf[..],
        b"\x00\x00\x00\x10\x04\xd2\x16\x2e\x00\x00\x04\xd2\x01\x02\x03\x04"
    );
    let expected = CancelRequest {
        process_id: 1234,
        secret_key: Bytes::from_static(&[1, 2, 3, 4]),
    };
    assert_eq!(decode(&buf), Ok(Some(Startup::CancelRequest(expected))));
}

#[test]
fn cancel_request_long_key_of_protocol_3_2() {
    let key = [7u8; MAX_CANCEL_KEY_LEN];
    let mut buf = BytesMut::new();
    cancel_request(&mut buf, -5, &key).unwrap();
    let Ok(Some(Startup::CancelRequest(c))) = decode(&buf) else {
        panic!()
    };
    assert_eq!((c.process_id, &c.secret_key[..]), (-5, &key[..]));
    assert!(cancel_request(&mut buf, 1, &[0; 3]).is_err());
    assert!(cancel_request(&mut buf, 1, &[0; MAX_CANCEL_KEY_LEN + 1]).is_err());
}

#[test]
fn cancel_request_key_length_is_checked_on_decode() {
    let short = b"\x00\x00\x00\x0f\x04\xd2\x16\x2e\x00\x00\x04\xd2\x01\x02\x03";
    assert!(matches!(
        decode(short),
        Err(DecodeError::InvalidField { .. })
    ));
}

#[test]
fn startup_message_golden() {
    let mut buf = BytesMut::new();
    startup_message(
        &mut buf,
        PROTOCOL_3_0,
        [("user", "bob"), ("database", "db")],
    )
    .unwrap();
    assert_eq!(
        &buf[..],
        b"\x00\x00\x00\x1e\x00\x03\x00\x00user\x00bob\x00database\x00db\x00\x00"
    );
    let Ok(Some(Startup::StartupMessage(m))) = decode(&buf) else {
        panic!()
    };
    assert_eq!(m.protocol_version, PROTOCOL_3_0);
    assert_eq!(
        (m.user(), m.user_and_database().1, m.param("options")),
        (Some("bob"), Some("db"), None)
    );
}

#[test]
fn startup_message_without_params() {
    assert_eq!(
        decode(b"\x00\x00\x00\x09\x00\x03\x00\x02\x00"),
        Ok(Some(Startup::StartupMessage(
            StartupMessage::new(PROTOCOL_3_2, []).unwrap()
        )))
    );
}

#[test]
fn startup_cap_is_10000_bytes_after_the_length_word() {
    let at_cap = |extra: usize| {
        // version (4) + "a\0" (2) + value + "\0" (1) + terminator (1) = 10,000 + extra
        let value = "v".repeat(MAX_STARTUP_PACKET_LENGTH - 8 + extra);
        let mut buf = BytesMut::new();
        let built = startup_message(&mut buf, PROTOCOL_3_0, [("a", value.as_str())]);
        (built, buf)
    };
    let (built, buf) = at_cap(0);
    built.unwrap();
    assert_eq!(buf.len(), MAX_STARTUP_PACKET_LENGTH + 4);
    assert!(matches!(decode(&buf), Ok(Some(Startup::StartupMessage(_)))));
    let (built, buf) = at_cap(1);
    assert!(matches!(built, Err(EncodeError::TooLarge { .. })));
    assert!(buf.is_empty());
    // A header claiming one byte more is refused before any body arrives.
    let header = ((MAX_STARTUP_PACKET_LENGTH + 5) as u32).to_be_bytes();
    let mut buf = BytesMut::from(&header[..]);
    assert!(matches!(
        decode_startup(&mut buf),
        Err(DecodeError::TooLarge { tag: None, .. })
    ));
    let huge = BytesMut::from(&b"\x7f\xff\xff\xff"[..]);
    assert!(matches!(
        decode_startup(&mut huge.clone()),
        Err(DecodeError::TooLarge { .. })
    ));
}

#[test]
fn short_and_incomplete_packets() {
    assert_eq!(decode(b"\x00\x00\x00"), Ok(None));
    assert_eq!(decode(b"\x00\x00\x00\x08\x04\xd2"), Ok(None));
    for len in [0u8, 4, 7] {
        assert_eq!(
            decode(&[0, 0, 0, len, 0, 3, 0, 0]),
            Err(DecodeError::LengthTooShort {
                tag: None,
                len: u32::from(len)
            })
        );
    }
}

#[test]
fn malformed_startup_messages() {
    // SSLRequest with a trailing byte.
    assert!(decode(b"\x00\x00\x00\x09\x04\xd2\x16\x2f\x00").is_err());
    // Protocol 2.0.
    assert_eq!(
        decode(b"\x00\x00\x00\x09\x00\x02\x00\x00\x00"),
        Err(DecodeError::UnsupportedProtocol { major: 2, minor: 0 })
    );
    // No terminator, value without NUL, bytes after the terminator, invalid UTF-8.
    assert!(decode(b"\x00\x00\x00\x0d\x00\x03\x00\x00user\x00").is_err());
    assert!(decode(b"\x00\x00\x00\x0d\x00\x03\x00\x00u\x00bob").is_err());
    assert!(decode(b"\x00\x00\x00\x0e\x00\x03\x00\x00u\x00b\x00\x00x").is_err());
    assert_eq!(
        decode(b"\x00\x00\x00\x0d\x00\x03\x00\x00u\x00\xff\x00\x00"),
        Err(DecodeError::InvalidUtf8 {
            message: "StartupMessage"
        })
    );
}

#[test]
fn builder_refuses_empty_names_and_nul() {
    let mut buf = BytesMut::new();
    assert!(startup_message(&mut buf, PROTOCOL_3_0, [("", "x")]).is_err());
    assert!(startup_message(&mut buf, PROTOCOL_3_0, [("a", "x\0")]).is_err());
    assert!(buf.is_empty());
}

fn arb_param() -> impl Strategy<Value = (String, String)> {
    ("[a-z_]{1,12}", "[^\u{0}]{0,20}")
}

proptest! {
    #[test]
    fn startup_message_round_trip(
        minor in 0u32..4,
        params in proptest::collection::vec(arb_param(), 0..8),
    ) {
        let m = StartupMessage::new(
            PROTOCOL_3_0 | minor,
            params.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        )
        .unwrap();
        prop_assert!(m.params().eq(params.iter().map(|(k, v)| (k.as_str(), v.as_str()))));
        let mut buf = BytesMut::new();
        m.encode(&mut buf).unwrap();
        prop_assert_eq!(decode_startup(&mut buf), Ok(Some(Startup::StartupMessage(m))));
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn cancel_request_round_trip(
        process_id in any::<i32>(),
        key in proptest::collection::vec(any::<u8>(), MIN_CANCEL_KEY_LEN..=MAX_CANCEL_KEY_LEN),
    ) {
        let c = Startup::CancelRequest(CancelRequest { process_id, secret_key: key.into() });
        let mut buf = BytesMut::new();
        c.encode(&mut buf).unwrap();
        prop_assert_eq!(decode_startup(&mut buf), Ok(Some(c)));
    }
}

#[test]
fn empty_values_are_read_in_place_in_the_clients_order() {
    let Ok(Some(Startup::StartupMessage(m))) =
        decode(b"\x00\x00\x00\x1c\x00\x03\x00\x00user\x00\x00a\x00b\x00options\x00\x00\x00")
    else {
        panic!()
    };
    assert_eq!(
        m.params().collect::<Vec<_>>(),
        [("user", ""), ("a", "b"), ("options", "")]
    );
    assert_eq!(m.param("a"), Some("b"));
    assert_eq!(m.user(), Some(""));
}
