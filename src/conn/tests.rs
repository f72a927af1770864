//! Tests for framed connection IO over in-memory duplex streams.

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

use super::*;
use crate::protocol::backend::{self, TxStatus};
use crate::protocol::startup::{self, PROTOCOL_3_0};
use crate::protocol::tag;

#[tokio::test]
async fn reads_frames_split_across_writes_then_clean_eof() {
    let (client, mut server) = duplex(64);
    let mut conn = Conn::new(client);
    let writer = tokio::spawn(async move {
        let wire = b"Z\x00\x00\x00\x05IC\x00\x00\x00\x0dSELECT 1\x00";
        for chunk in wire.chunks(3) {
            server.write_all(chunk).await.unwrap();
            tokio::task::yield_now().await;
        }
    });
    let f = conn.read_frame().await.unwrap().unwrap();
    assert_eq!(
        (f.tag, &f.body[..]),
        (tag::backend::READY_FOR_QUERY, &b"I"[..])
    );
    let f = conn.read_frame().await.unwrap().unwrap();
    assert_eq!(
        (f.tag, &f.body[..]),
        (tag::backend::COMMAND_COMPLETE, &b"SELECT 1\x00"[..])
    );
    writer.await.unwrap();
    assert!(conn.read_frame().await.unwrap().is_none());
}

#[tokio::test]
async fn eof_mid_frame_is_an_error() {
    let (client, mut server) = duplex(64);
    server.write_all(b"Q\x00\x00\x00\x0dSEL").await.unwrap();
    drop(server);
    let mut conn = Conn::new(client);
    match conn.read_frame().await {
        Err(ConnError::UnexpectedEof { buffered }) => assert_eq!(buffered, 8),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn oversize_message_is_refused_from_its_header() {
    let (client, mut server) = duplex(64);
    server.write_all(b"D\x00\x10\x00\x00").await.unwrap();
    let mut conn = Conn::with_max_message_len(client, 1024);
    assert!(matches!(
        conn.read_frame().await,
        Err(ConnError::Decode(DecodeError::TooLarge { max: 1024, .. }))
    ));
}

#[tokio::test]
async fn large_frame_arrives_intact() {
    let (client, mut server) = duplex(4096);
    let body: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
    let frame = Frame::new(tag::frontend::COPY_DATA, body.clone());
    let writer = tokio::spawn(async move {
        let mut wire = BytesMut::new();
        frame.encode(&mut wire).unwrap();
        server.write_all(&wire).await.unwrap();
    });
    let mut conn = Conn::new(client);
    let got = conn.read_frame().await.unwrap().unwrap();
    assert_eq!(&got.body[..], &body[..]);
    writer.await.unwrap();
}

#[tokio::test]
async fn writes_are_batched_until_flush() {
    let (client, mut server) = duplex(1024);
    let mut conn = Conn::new(client);
    backend::ready_for_query(conn.write_buf_mut(), TxStatus::Idle);
    conn.write_frame(&Frame::new(b'Z', &b"T"[..])).unwrap();
    conn.write_raw(b"N");
    assert_eq!(conn.buffered_write_len(), 13);
    conn.flush().await.unwrap();
    assert_eq!(conn.buffered_write_len(), 0);
    let mut got = [0u8; 13];
    server.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"Z\x00\x00\x00\x05IZ\x00\x00\x00\x05TN");
}

#[tokio::test]
async fn a_flush_larger_than_the_pipe_arrives_whole() {
    // A 64-byte pipe takes each flush in many partial writes.
    let (client, mut server) = duplex(64);
    let mut conn = Conn::new(client);
    let body: Vec<u8> = (0..5_000u32).map(|i| i as u8).collect();
    conn.write_frame(&Frame::new(tag::frontend::COPY_DATA, body.clone()))
        .unwrap();
    let reader = tokio::spawn(async move {
        let mut got = vec![0u8; 5 + body.len()];
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(&got[5..], &body[..]);
    });
    conn.flush().await.unwrap();
    assert_eq!(conn.buffered_write_len(), 0);
    reader.await.unwrap();
}

#[tokio::test]
async fn a_flush_to_a_closed_peer_fails() {
    let (client, server) = duplex(64);
    drop(server);
    let mut conn = Conn::new(client);
    conn.write_raw(b"N");
    assert!(matches!(conn.flush().await, Err(ConnError::Io(_))));
}

#[tokio::test]
async fn startup_then_frames_on_the_same_connection() {
    let (client, mut server) = duplex(1024);
    let mut wire = BytesMut::new();
    startup::ssl_request(&mut wire);
    startup::startup_message(&mut wire, PROTOCOL_3_0, [("user", "u"), ("database", "d")]).unwrap();
    crate::protocol::frontend::query(&mut wire, "SELECT 1").unwrap();
    server.write_all(&wire).await.unwrap();
    drop(server);
    let mut conn = Conn::new(client);
    assert_eq!(
        conn.read_startup().await.unwrap(),
        Some(Startup::SslRequest)
    );
    assert!(
        conn.buffered_read_len() > 0,
        "pipelined bytes before a TLS upgrade are visible"
    );
    let Some(Startup::StartupMessage(m)) = conn.read_startup().await.unwrap() else {
        panic!()
    };
    assert_eq!(m.user(), Some("u"));
    let q = conn.read_frame().await.unwrap().unwrap();
    assert_eq!(q.tag, tag::frontend::QUERY);
    assert!(conn.read_frame().await.unwrap().is_none());
    assert!(conn.read_startup().await.unwrap().is_none());
}

#[tokio::test]
async fn oversize_startup_packet_is_refused() {
    let (client, mut server) = duplex(64);
    server.write_all(&20_000u32.to_be_bytes()).await.unwrap();
    let mut conn = Conn::new(client);
    assert!(matches!(
        conn.read_startup().await,
        Err(ConnError::Decode(DecodeError::TooLarge { .. }))
    ));
}

#[tokio::test]
async fn parts_round_trip_keeps_buffers() {
    let (client, mut server) = duplex(64);
    server.write_all(b"S\x00\x00\x00\x04X\x00").await.unwrap();
    let mut conn = Conn::with_max_message_len(client, 100);
    assert_eq!(
        conn.read_frame().await.unwrap().unwrap().tag,
        tag::frontend::SYNC
    );
    conn.write_raw(b"x");
    let parts = conn.into_parts();
    assert_eq!(
        (&parts.read_buf[..], &parts.write_buf[..]),
        (&b"X\x00"[..], &b"x"[..])
    );
    let conn = Conn::from_parts(parts, 100);
    assert_eq!(
        (
            conn.buffered_read_len(),
            conn.buffered_write_len(),
            conn.max_message_len()
        ),
        (2, 1, 100)
    );
    let _stream: &tokio::io::DuplexStream = conn.get_ref();
}
