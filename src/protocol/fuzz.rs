//! Fuzz entry points over the protocol layer, compiled only for cargo-fuzz (`cfg(fuzzing)`) and
//! tests. The `fuzz/fuzz_targets/*` shims call these; a unit test replays `fuzz/seeds/` through
//! them. Each one asserts the invariants the decoder promises, so a broken promise is a crash.
#![allow(
    clippy::panic,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used
)]

use bytes::BytesMut;

use super::backend::{Authentication, BackendMessage};
use super::frontend::{Bind, FrontendMessage, PasswordMessage, SaslInitialResponse, SaslResponse};
use super::startup::decode_startup;
use super::{DEFAULT_MAX_MESSAGE_LEN, DecodeError, Frame, decode_frame};

/// Bytes at the front of a frame-decoder input that steer the run rather than feed the stream.
pub const FRAME_DECODER_CONTROL_LEN: usize = 9;

/// Runs every target on the same input.
pub fn fuzz_entry(data: &[u8]) {
    fuzz_frame_decoder(data);
    fuzz_startup(data);
    fuzz_frontend(data);
    fuzz_backend(data);
}

/// Result of decoding a whole stream: the frames, the error that stopped it, the leftover bytes.
type Decoded = (Vec<Frame>, Option<DecodeError>, usize);

/// Feeds `stream` to the decoder in chunks whose sizes cycle through `splits` (+1 each; an empty
/// `splits` feeds everything at once).
fn decode_in_chunks(stream: &[u8], splits: &[u8], max: usize) -> Decoded {
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let (mut pos, mut i) = (0, 0);
    loop {
        match decode_frame(&mut buf, max) {
            Ok(Some(frame)) => frames.push(frame),
            Err(e) => return (frames, Some(e), buf.len()),
            Ok(None) if pos == stream.len() => return (frames, None, buf.len()),
            Ok(None) => {
                let n = match splits.get(i % splits.len().max(1)) {
                    Some(&s) => usize::from(s) + 1,
                    None => stream.len(),
                };
                i += 1;
                let end = (pos + n).min(stream.len());
                buf.extend_from_slice(&stream[pos..end]);
                pos = end;
            }
        }
    }
}

/// The frame decoder: byte 0 picks the size limit, bytes 1..9 the chunk sizes, the rest is the
/// stream. Every split must give the same frames and error, and the frames re-encode to exactly
/// the bytes they came from.
pub fn fuzz_frame_decoder(data: &[u8]) {
    let Some((control, stream)) = data.split_at_checked(FRAME_DECODER_CONTROL_LEN) else {
        return;
    };
    let max = match control[0] {
        u8::MAX => DEFAULT_MAX_MESSAGE_LEN,
        n => 5 + usize::from(n) * 8,
    };
    let whole = decode_in_chunks(stream, &[], max);
    let split = decode_in_chunks(stream, &control[1..], max);
    let bytewise = decode_in_chunks(stream, &[0], max);
    assert_eq!(whole.0, split.0);
    assert_eq!(whole.1, split.1);
    assert_eq!(whole.0, bytewise.0);
    assert_eq!(whole.1, bytewise.1);
    let mut reencoded = BytesMut::new();
    for frame in &whole.0 {
        frame
            .encode(&mut reencoded)
            .expect("a decoded frame re-encodes");
        view_frontend(frame.tag, &frame.body);
        view_backend(frame.tag, &frame.body);
    }
    assert_eq!(&reencoded[..], &stream[..reencoded.len()]);
    if whole.1.is_none() {
        assert_eq!(reencoded.len() + whole.2, stream.len());
    }
}

/// The startup decoder: whole and byte-by-byte give the same answer; accepted messages re-encode
/// to exactly the bytes they came from.
pub fn fuzz_startup(data: &[u8]) {
    let mut whole = BytesMut::from(data);
    let first = decode_startup(&mut whole);
    let mut bytewise = BytesMut::new();
    let mut second = Ok(None);
    for &b in data {
        bytewise.extend_from_slice(&[b]);
        second = decode_startup(&mut bytewise);
        if !matches!(second, Ok(None)) {
            break;
        }
    }
    assert_eq!(first, second);
    if let Ok(Some(startup)) = first {
        let consumed = data.len() - whole.len();
        let mut out = BytesMut::new();
        startup
            .encode(&mut out)
            .expect("a decoded startup message re-encodes");
        assert_eq!(&out[..], &data[..consumed]);
    }
}

/// Client message views: byte 0 is the tag, the rest the body.
pub fn fuzz_frontend(data: &[u8]) {
    if let Some((&tag, body)) = data.split_first() {
        view_frontend(tag, body);
    }
}

/// Server message views: byte 0 is the tag, the rest the body.
pub fn fuzz_backend(data: &[u8]) {
    if let Some((&tag, body)) = data.split_first() {
        view_backend(tag, body);
    }
}

fn view_frontend(tag: u8, body: &[u8]) {
    match FrontendMessage::parse(tag, body) {
        Ok(FrontendMessage::Parse(p)) => assert!(p.param_types().count() <= usize::from(u16::MAX)),
        Ok(FrontendMessage::Bind(b)) => check_bind(b),
        Ok(FrontendMessage::AuthResponse(body)) => {
            let _ = PasswordMessage::parse(body);
            let _ = SaslInitialResponse::parse(body);
            let _ = SaslResponse::parse(body);
        }
        _ => {}
    }
}

/// A Bind renamed keeps every other field.
fn check_bind(b: Bind<'_>) {
    assert_eq!(b.params().count(), b.param_count());
    let mut out = BytesMut::new();
    b.rewrite_statement(&mut out, "bouncectl_s1")
        .expect("rename");
    let renamed = Bind::parse(&out[5..]).expect("a renamed Bind parses");
    assert_eq!(renamed.statement, b"bouncectl_s1");
    assert_eq!(renamed.portal, b.portal);
    assert!(renamed.params().eq(b.params()));
    assert!(renamed.param_formats().eq(b.param_formats()));
    assert!(renamed.result_formats().eq(b.result_formats()));
}

fn view_backend(tag: u8, body: &[u8]) {
    match BackendMessage::parse(tag, body) {
        Ok(BackendMessage::Authentication(Authentication::Sasl(m))) => {
            assert!(m.iter().all(|m| !m.is_empty()));
        }
        Ok(BackendMessage::ErrorResponse(e) | BackendMessage::NoticeResponse(e)) => {
            let _ = (e.severity(), e.code(), e.message(), e.iter().count());
        }
        Ok(BackendMessage::RowDescription(r)) => assert_eq!(r.fields().count(), r.len()),
        Ok(BackendMessage::DataRow(r)) => assert_eq!(r.values().count(), r.len()),
        Ok(BackendMessage::ParameterDescription(p)) => {
            let _ = p.types().count();
        }
        Ok(BackendMessage::NegotiateProtocolVersion(n)) => {
            let _ = n.unrecognized_options().count();
        }
        _ => {}
    }
}
