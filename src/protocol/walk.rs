//! Zero-copy walk over the complete tagged messages at the front of a buffer, for the relay: it
//! finds message boundaries and the few tags that change the pooler's state, and forwards the rest
//! as one slice. Lengths are checked here before anything is reserved.

/// A complete message inside the walked buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    /// The tag byte.
    pub tag: u8,
    /// The body (without tag and length).
    pub body: &'a [u8],
}

/// The length field announced a message that is too short or longer than allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WalkError {
    /// Length field below 4 (it counts itself).
    #[error("invalid message length {0}")]
    BadLength(u32),
    /// Message longer than `max_packet_size`.
    #[error("message of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Announced length.
        len: u32,
        /// The limit in force.
        max: usize,
    },
}

/// Iterates the complete messages at the front of `buf`; [`Walk::consumed`] tells where they end.
#[derive(Debug)]
pub struct Walk<'a> {
    buf: &'a [u8],
    pos: usize,
    max: usize,
    /// Total size (tag + length + body) of an incomplete message at `pos`, once its header is in.
    pending: Option<usize>,
}

impl<'a> Walk<'a> {
    /// Walks `buf`, rejecting any message longer than `max` bytes.
    pub fn new(buf: &'a [u8], max: usize) -> Self {
        Walk {
            buf,
            pos: 0,
            max,
            pending: None,
        }
    }

    /// Bytes taken by the complete messages returned so far.
    pub fn consumed(&self) -> usize {
        self.pos
    }

    /// When the walk stopped at an incomplete message whose header is in: its full size (already
    /// checked against the limit). Only a hint: it is what the peer claims, so callers reserve
    /// toward it in bounded steps.
    pub fn incomplete_len(&self) -> Option<usize> {
        self.pending
    }

    /// The next complete message, `Ok(None)` at the end of the complete ones.
    pub fn next_message(&mut self) -> Result<Option<Message<'a>>, WalkError> {
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        let Some(&[tag, a, b, c, d]) = rest.get(..5) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes([a, b, c, d]);
        if len < 4 {
            return Err(WalkError::BadLength(len));
        }
        let total = 1 + len as usize;
        if total > self.max {
            return Err(WalkError::TooLarge { len, max: self.max });
        }
        let Some(body) = rest.get(5..total) else {
            self.pending = Some(total);
            return Ok(None);
        };
        self.pos += total;
        Ok(Some(Message { tag, body }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        v.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn walks_complete_messages_and_stops_at_a_partial_one() {
        let mut buf = msg(b'C', b"SELECT 1\0");
        buf.extend(msg(b'Z', b"I"));
        let partial = msg(b'D', &[7; 20]);
        buf.extend(&partial[..9]);
        let mut walk = Walk::new(&buf, 1 << 20);
        assert_eq!(walk.next_message().unwrap().unwrap().tag, b'C');
        let z = walk.next_message().unwrap().unwrap();
        assert_eq!((z.tag, z.body), (b'Z', &b"I"[..]));
        assert_eq!(walk.next_message().unwrap(), None);
        assert_eq!(walk.consumed(), buf.len() - 9);
        assert_eq!(walk.incomplete_len(), Some(partial.len()));
    }

    #[test]
    fn rejects_bad_and_oversized_lengths_before_reading_the_body() {
        let mut walk = Walk::new(&[b'Q', 0, 0, 0, 3], 100);
        assert_eq!(walk.next_message(), Err(WalkError::BadLength(3)));
        let mut walk = Walk::new(&[b'Q', 0x7f, 0xff, 0xff, 0xff], 1 << 20);
        assert!(matches!(
            walk.next_message(),
            Err(WalkError::TooLarge { .. })
        ));
    }

    proptest::proptest! {
        #[test]
        fn any_split_yields_the_same_messages(bodies in proptest::collection::vec(proptest::collection::vec(0u8..=255, 0..40), 1..10), cut in 0usize..400) {
            let mut stream = Vec::new();
            for (i, body) in bodies.iter().enumerate() {
                stream.extend(msg(b'A' + i as u8, body));
            }
            let cut = cut.min(stream.len());
            let mut seen = Vec::new();
            let mut walk = Walk::new(&stream[..cut], 1 << 20);
            while let Some(m) = walk.next_message().unwrap() {
                seen.push((m.tag, m.body.to_vec()));
            }
            let rest = stream[walk.consumed()..].to_vec();
            let mut walk = Walk::new(&rest, 1 << 20);
            while let Some(m) = walk.next_message().unwrap() {
                seen.push((m.tag, m.body.to_vec()));
            }
            let expected: Vec<_> = bodies.iter().enumerate().map(|(i, b)| (b'A' + i as u8, b.clone())).collect();
            proptest::prop_assert_eq!(seen, expected);
        }
    }
}
