//! A bounds-checked cursor over a message body, the one place views read fields from.
//!
//! Every read returns `DecodeError::Truncated` instead of panicking, so the views built on it are
//! safe on hostile input. Crate-private: views expose typed fields, not the cursor.

use super::DecodeError;

/// A cursor over the unread part of a message body, labelled with the message kind for errors.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    message: &'static str,
}

impl<'a> Reader<'a> {
    /// A reader over `buf`, which holds a `message` body.
    pub(crate) fn new(buf: &'a [u8], message: &'static str) -> Self {
        Self { buf, message }
    }

    fn truncated(&self) -> DecodeError {
        DecodeError::Truncated {
            message: self.message,
        }
    }

    /// An `InvalidField` error for this message.
    pub(crate) fn invalid(&self, field: &'static str) -> DecodeError {
        DecodeError::InvalidField {
            message: self.message,
            field,
        }
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let (head, rest) = self
            .buf
            .split_first_chunk::<N>()
            .ok_or_else(|| self.truncated())?;
        self.buf = rest;
        Ok(*head)
    }

    /// One byte.
    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        self.array::<1>().map(|[b]| b)
    }

    /// An Int16 read as a signed value (format codes).
    pub(crate) fn i16(&mut self) -> Result<i16, DecodeError> {
        self.array().map(i16::from_be_bytes)
    }

    /// An Int16 count, unsigned as PostgreSQL's `pq_getmsgint(msg, 2)` reads it.
    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        self.array().map(u16::from_be_bytes)
    }

    /// A signed Int32.
    pub(crate) fn i32(&mut self) -> Result<i32, DecodeError> {
        self.array().map(i32::from_be_bytes)
    }

    /// An Int32 read as unsigned (OIDs, codes).
    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        self.array().map(u32::from_be_bytes)
    }

    /// The next `n` bytes.
    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let (head, rest) = self
            .buf
            .split_at_checked(n)
            .ok_or_else(|| self.truncated())?;
        self.buf = rest;
        Ok(head)
    }

    /// `n` items of `size` bytes each, checked against what is left before multiplying out.
    pub(crate) fn items(&mut self, n: usize, size: usize) -> Result<&'a [u8], DecodeError> {
        let total = n.checked_mul(size).ok_or_else(|| self.truncated())?;
        self.bytes(total)
    }

    /// A NUL-terminated string, without its terminator.
    pub(crate) fn cstr(&mut self) -> Result<&'a [u8], DecodeError> {
        let end = self
            .buf
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| self.truncated())?;
        let (value, rest) = self
            .buf
            .split_at_checked(end)
            .ok_or_else(|| self.truncated())?;
        self.buf = rest.get(1..).unwrap_or_default();
        Ok(value)
    }

    /// An Int32 length followed by that many bytes; -1 means NULL.
    pub(crate) fn nullable(&mut self) -> Result<Option<&'a [u8]>, DecodeError> {
        match self.i32()? {
            -1 => Ok(None),
            len => match usize::try_from(len) {
                Ok(len) => self.bytes(len).map(Some),
                Err(_) => Err(self.invalid("value length")),
            },
        }
    }

    /// Everything not read yet.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }

    /// Everything not read yet, without consuming it.
    pub(crate) fn remaining(&self) -> &'a [u8] {
        self.buf
    }

    /// Succeeds only if the whole body was consumed.
    pub(crate) fn finish(&self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes {
                message: self.message,
            })
        }
    }
}

/// Big-endian Int16 from a 2-byte chunk (callers pass `chunks_exact(2)` items).
pub(crate) fn be_i16(chunk: &[u8]) -> i16 {
    chunk
        .first_chunk::<2>()
        .map_or(0, |c| i16::from_be_bytes(*c))
}

/// Big-endian Int32 from a 4-byte chunk (callers pass `chunks_exact(4)` items).
pub(crate) fn be_u32(chunk: &[u8]) -> u32 {
    chunk
        .first_chunk::<4>()
        .map_or(0, |c| u32::from_be_bytes(*c))
}
