//! Decoder and encoder tests: limits, chunk splits, back-patching, and the fuzz seed replay.

use bytes::{BufMut, BytesMut};
use proptest::prelude::*;

use super::*;

fn decode_all(buf: &mut BytesMut, max: usize) -> Vec<Frame> {
    let mut frames = Vec::new();
    while let Some(f) = decode_frame(buf, max).unwrap() {
        frames.push(f);
    }
    frames
}

#[test]
fn decodes_one_frame_and_keeps_the_rest() {
    let mut buf = BytesMut::from(&b"Z\x00\x00\x00\x05IQ\x00\x00"[..]);
    let f = decode_frame(&mut buf, 1024).unwrap().unwrap();
    assert_eq!(f, Frame::new(tag::backend::READY_FOR_QUERY, &b"I"[..]));
    assert_eq!(&buf[..], b"Q\x00\x00");
    assert_eq!(decode_frame(&mut buf, 1024).unwrap(), None);
    assert_eq!(&buf[..], b"Q\x00\x00", "incomplete input is left untouched");
}

#[test]
fn empty_and_partial_header_are_incomplete() {
    for input in [&b""[..], b"Q", b"Q\x00\x00\x00"] {
        let mut buf = BytesMut::from(input);
        assert_eq!(decode_frame(&mut buf, 1024).unwrap(), None);
        assert_eq!(&buf[..], input);
    }
}

#[test]
fn bodiless_frame() {
    let mut buf = BytesMut::from(&b"S\x00\x00\x00\x04"[..]);
    let f = decode_frame(&mut buf, 5).unwrap().unwrap();
    assert_eq!(f.tag, tag::frontend::SYNC);
    assert!(f.body.is_empty());
    assert!(buf.is_empty());
}

#[test]
fn length_below_four_is_rejected() {
    for len in 0u8..4 {
        let mut buf = BytesMut::from(&[b'Q', 0, 0, 0, len][..]);
        assert_eq!(
            decode_frame(&mut buf, 1024),
            Err(DecodeError::LengthTooShort {
                tag: Some(b'Q'),
                len: u32::from(len)
            })
        );
    }
}

#[test]
fn oversize_is_rejected_before_the_body_arrives_and_without_reserving_it() {
    // Claims 1 GiB; only the header is present.
    let mut buf = BytesMut::from(&b"D\x40\x00\x00\x00"[..]);
    let err = decode_frame(&mut buf, 8192).unwrap_err();
    assert_eq!(
        err,
        DecodeError::TooLarge {
            tag: Some(b'D'),
            len: 0x4000_0001,
            max: 8192
        }
    );
    assert!(buf.capacity() < 1024 * 1024);
}

#[test]
fn limit_counts_the_whole_message() {
    let mut buf = BytesMut::from(&b"Q\x00\x00\x00\x06a\x00"[..]);
    assert!(decode_frame(&mut buf.clone(), 6).is_err());
    assert!(decode_frame(&mut buf, 7).unwrap().is_some());
}

#[test]
fn negative_length_is_too_large_even_without_a_limit() {
    let mut buf = BytesMut::from(&b"Q\xff\xff\xff\xff"[..]);
    assert!(matches!(
        decode_frame(&mut buf, usize::MAX),
        Err(DecodeError::TooLarge { .. })
    ));
}

#[test]
fn incomplete_large_frame_reserves_only_a_bounded_amount() {
    let mut buf = BytesMut::from(&b"d\x01\x00\x00\x00"[..]);
    assert_eq!(
        decode_frame(&mut buf, DEFAULT_MAX_MESSAGE_LEN).unwrap(),
        None
    );
    assert!(buf.capacity() <= 2 * RESERVE_AHEAD);
}

#[test]
fn put_message_back_patches_the_length() {
    let mut buf = BytesMut::from(&b"prefix"[..]);
    put_message(&mut buf, b'Q', |b| {
        b.put_slice(b"SELECT 1\0");
        Ok(())
    })
    .unwrap();
    assert_eq!(&buf[..], b"prefixQ\x00\x00\x00\x0dSELECT 1\x00");
}

#[test]
fn failed_builder_leaves_the_buffer_as_it_was() {
    let mut buf = BytesMut::from(&b"keep"[..]);
    let err = frontend::query(&mut buf, "SELECT \0 1").unwrap_err();
    assert_eq!(err, EncodeError::NulInString { field: "query" });
    assert_eq!(&buf[..], b"keep");
}

#[test]
fn frame_encode_is_byte_identical() {
    let wire = b"T\x00\x00\x00\x06\x00\x00";
    let mut buf = BytesMut::from(&wire[..]);
    let f = decode_frame(&mut buf, 100).unwrap().unwrap();
    assert_eq!(f.wire_len(), wire.len());
    let mut out = BytesMut::new();
    f.encode(&mut out).unwrap();
    assert_eq!(&out[..], wire);
}

fn arb_frame() -> impl Strategy<Value = Frame> {
    (any::<u8>(), proptest::collection::vec(any::<u8>(), 0..80)).prop_map(|(t, b)| Frame::new(t, b))
}

proptest! {
    #[test]
    fn any_chunk_split_yields_the_same_frames(
        frames in proptest::collection::vec(arb_frame(), 0..12),
        splits in proptest::collection::vec(1usize..40, 1..20),
    ) {
        let mut wire = BytesMut::new();
        for f in &frames {
            f.encode(&mut wire).unwrap();
        }
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        let mut pos = 0;
        for n in splits.iter().cycle() {
            let end = (pos + n).min(wire.len());
            buf.extend_from_slice(&wire[pos..end]);
            pos = end;
            got.extend(decode_all(&mut buf, 1024));
            if pos == wire.len() {
                break;
            }
        }
        prop_assert_eq!(got, frames);
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn decoder_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut control = vec![16u8, 0, 3, 7, 1, 0, 200, 2, 5];
        control.extend_from_slice(&data);
        fuzz_entry(&control);
        fuzz_entry(&data);
    }
}

/// Every committed seed goes through the same entry points cargo-fuzz uses.
#[test]
fn fuzz_seeds_replay() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    type Entry = fn(&[u8]);
    let targets: [(&str, Entry); 4] = [
        ("frame_decoder", fuzz_frame_decoder),
        ("startup", fuzz_startup),
        ("frontend", fuzz_frontend),
        ("backend", fuzz_backend),
    ];
    let mut replayed = 0;
    for (target, entry) in targets {
        let dir = root.join(target);
        let mut seeds: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        seeds.sort();
        assert!(!seeds.is_empty(), "no seeds for {target}");
        for seed in seeds {
            entry(&std::fs::read(&seed).unwrap());
            replayed += 1;
        }
    }
    assert!(replayed >= 8);
}

/// The recorded-session seeds are valid traffic, so the decoders must accept them outright.
#[test]
fn message_seeds_are_accepted() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    for target in ["startup", "frontend", "backend"] {
        for entry in std::fs::read_dir(root.join(target)).unwrap() {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let ok = match target {
                "startup" => matches!(
                    startup::decode_startup(&mut BytesMut::from(&data[..])),
                    Ok(Some(_))
                ),
                "frontend" => frontend::FrontendMessage::parse(data[0], &data[1..]).is_ok(),
                _ => backend::BackendMessage::parse(data[0], &data[1..]).is_ok(),
            };
            assert!(ok, "{} was rejected", path.display());
        }
    }
    let stream = std::fs::read(root.join("frame_decoder/psql_server_stream")).unwrap();
    let mut buf = BytesMut::from(&stream[fuzz::FRAME_DECODER_CONTROL_LEN..]);
    let frames = decode_all(&mut buf, DEFAULT_MAX_MESSAGE_LEN);
    assert!(buf.is_empty());
    assert_eq!(frames.len(), 13);
}
