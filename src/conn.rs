//! Framed connection IO: one peer's byte stream turned into [`Frame`]s and back.
//!
//! `Conn<S>` owns a read buffer fed to the protocol decoder (check-then-parse, size-limited) and a
//! write buffer that batches outgoing messages until an explicit [`Conn::flush`]. It knows nothing
//! about pools, sessions or which side it talks to; it does not log. The inner stream is reachable
//! so TLS can be layered on after an SSLRequest.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::protocol::startup::{Startup, decode_startup};
use crate::protocol::{DEFAULT_MAX_MESSAGE_LEN, DecodeError, EncodeError, Frame, decode_frame};

// Both buffers start at what a login reads (startup packet, password) and writes (the
// authentication request, then AuthenticationOk, ParameterStatus, BackendKeyData,
// ReadyForQuery). Buffers this small come from the allocator's per-thread cache, where 8 KB
// ones cost a trip to its bins on every connection.

/// Initial capacity of the read buffer, and the room a read gets once less than half is free.
/// Larger messages reserve their own room; the relay grows a client's buffer when it needs more.
pub(crate) const READ_CAPACITY: usize = 1024;

/// Initial capacity of the write buffer; larger output (a SHOW) grows it.
const WRITE_CAPACITY: usize = 1024;

/// Why reading or writing a connection failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    /// The socket failed.
    #[error("connection IO failed: {0}")]
    Io(#[from] std::io::Error),
    /// The peer sent bytes that are not a valid message (or one over the size limit).
    #[error("malformed message from peer")]
    Decode(#[from] DecodeError),
    /// The peer closed the connection in the middle of a message.
    #[error("connection closed mid-message with {buffered} bytes pending")]
    UnexpectedEof {
        /// Bytes of the incomplete message that had arrived.
        buffered: usize,
    },
    /// A message could not be encoded (too large for its length field).
    #[error("message cannot be encoded")]
    Encode(#[from] EncodeError),
}

/// A framed connection over any byte stream (TCP, Unix socket, TLS, or an in-memory duplex).
#[derive(Debug)]
pub struct Conn<S> {
    stream: S,
    read_buf: BytesMut,
    write_buf: BytesMut,
    max_message_len: usize,
}

/// A connection taken apart, e.g. to wrap the stream in TLS and rebuild it.
#[derive(Debug)]
pub struct ConnParts<S> {
    /// The byte stream.
    pub stream: S,
    /// Bytes read but not yet decoded. Must be empty before a TLS handshake: bytes that arrived
    /// before it were not encrypted (CVE-2021-23222).
    pub read_buf: BytesMut,
    /// Bytes written but not yet flushed.
    pub write_buf: BytesMut,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    /// A connection with PgBouncer's default `max_packet_size`.
    pub fn new(stream: S) -> Self {
        Self::with_max_message_len(stream, DEFAULT_MAX_MESSAGE_LEN)
    }

    /// A connection refusing messages larger than `max_message_len` bytes (tag included).
    pub fn with_max_message_len(stream: S, max_message_len: usize) -> Self {
        Self {
            stream,
            read_buf: BytesMut::with_capacity(READ_CAPACITY),
            write_buf: BytesMut::with_capacity(WRITE_CAPACITY),
            max_message_len,
        }
    }

    /// Rebuilds a connection from its parts (after a TLS upgrade, for instance).
    pub fn from_parts(parts: ConnParts<S>, max_message_len: usize) -> Self {
        Self {
            stream: parts.stream,
            read_buf: parts.read_buf,
            write_buf: parts.write_buf,
            max_message_len,
        }
    }

    /// Reads the next tagged message. `Ok(None)` is a clean EOF between messages; EOF inside
    /// one is [`ConnError::UnexpectedEof`].
    ///
    /// Cancel-safe: bytes already read stay in the buffer, so this can race in `select!`.
    pub async fn read_frame(&mut self) -> Result<Option<Frame>, ConnError> {
        loop {
            if let Some(frame) = decode_frame(&mut self.read_buf, self.max_message_len)? {
                return Ok(Some(frame));
            }
            if !self.fill().await? {
                return self.eof();
            }
        }
    }

    /// Reads the next startup-phase message (StartupMessage, SSLRequest, GSSENCRequest or
    /// CancelRequest), capped at 10,000 bytes. `Ok(None)` is a clean EOF.
    pub async fn read_startup(&mut self) -> Result<Option<Startup>, ConnError> {
        loop {
            if let Some(startup) = decode_startup(&mut self.read_buf)? {
                return Ok(Some(startup));
            }
            if !self.fill().await? {
                return self.eof();
            }
        }
    }

    /// Reads more bytes into the read buffer; `false` on EOF.
    async fn fill(&mut self) -> Result<bool, ConnError> {
        if self.read_buf.capacity() - self.read_buf.len() < READ_CAPACITY / 2 {
            self.read_buf.reserve(READ_CAPACITY);
        }
        Ok(self.stream.read_buf(&mut self.read_buf).await? > 0)
    }

    fn eof<T>(&self) -> Result<Option<T>, ConnError> {
        if self.read_buf.is_empty() {
            Ok(None)
        } else {
            Err(ConnError::UnexpectedEof {
                buffered: self.read_buf.len(),
            })
        }
    }

    /// Queues a frame; nothing is sent until [`Conn::flush`].
    pub fn write_frame(&mut self, frame: &Frame) -> Result<(), ConnError> {
        frame.encode(&mut self.write_buf)?;
        Ok(())
    }

    /// Queues bytes that are already in wire format (a forwarded batch, an `S`/`N` SSL answer).
    pub fn write_raw(&mut self, bytes: &[u8]) {
        self.write_buf.extend_from_slice(bytes);
    }

    /// The write buffer, for the `protocol` builders to append to directly.
    pub fn write_buf_mut(&mut self) -> &mut BytesMut {
        &mut self.write_buf
    }

    /// Bytes queued and not yet flushed.
    pub fn buffered_write_len(&self) -> usize {
        self.write_buf.len()
    }

    /// Bytes received and not yet decoded (pipelined messages, or a partial one).
    pub fn buffered_read_len(&self) -> usize {
        self.read_buf.len()
    }

    /// Sends everything queued and flushes the stream. If cancelled, what was sent is gone from
    /// the buffer and the rest is sent by the next call.
    pub async fn flush(&mut self) -> Result<(), ConnError> {
        // Not `write_all_buf`: on a vectored stream it fills a 64-slot IoSlice array (1 KB of
        // stack) per call for what is always one contiguous chunk here.
        while !self.write_buf.is_empty() {
            let n = self.stream.write(&self.write_buf).await?;
            if n == 0 {
                return Err(std::io::Error::from(std::io::ErrorKind::WriteZero).into());
            }
            self.write_buf.advance(n);
        }
        self.stream.flush().await?;
        Ok(())
    }

    /// The message size limit in force.
    pub fn max_message_len(&self) -> usize {
        self.max_message_len
    }

    /// Changes the message size limit (after login, or on reload).
    pub fn set_max_message_len(&mut self, max_message_len: usize) {
        self.max_message_len = max_message_len;
    }

    /// The inner stream.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// The inner stream, mutably. Reading or writing it directly bypasses the buffers.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    /// Takes the connection apart, buffers included.
    pub fn into_parts(self) -> ConnParts<S> {
        ConnParts {
            stream: self.stream,
            read_buf: self.read_buf,
            write_buf: self.write_buf,
        }
    }
}

#[cfg(test)]
mod tests;
