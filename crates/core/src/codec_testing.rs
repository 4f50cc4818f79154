//! Test helpers for codecs built on [`crate::cgi_response::ResponseBodyUntilClose`]
//! (compiled for this crate's tests and, with the `testing` feature, for other crates'
//! tests): drive a codec the way the exchange driver does, and check that splitting the
//! input at every byte position yields the same events.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use crate::codec::{Decoded, ResponseHead, UpstreamCodec};
use crate::error::Error;
use bytes::BytesMut;

/// A comparable form of [`Decoded`]; consecutive `Data` events are merged, since how a
/// body is cut into pieces depends on how it arrived.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// Status and headers in order.
    Head(u16, Vec<(String, Vec<u8>)>),
    /// Body bytes.
    Data(Vec<u8>),
    /// Diagnostic bytes.
    Stderr(Vec<u8>),
    /// End of response, with `reusable`.
    End(bool),
}

impl Event {
    /// The `Event` of a response head.
    pub fn head(head: &ResponseHead) -> Event {
        Event::Head(
            head.status.as_u16(),
            head.headers
                .iter()
                .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
                .collect(),
        )
    }
}

fn push(events: &mut Vec<Event>, decoded: Decoded) {
    match decoded {
        Decoded::Head(head) => {
            assert!(events.is_empty(), "Head after other events: {events:?}");
            events.push(Event::head(&head));
        }
        Decoded::Data(data) => {
            assert!(!data.is_empty(), "empty Data event");
            match events.last_mut() {
                Some(Event::Data(prev)) => prev.extend_from_slice(&data),
                _ => events.push(Event::Data(data.to_vec())),
            }
        }
        Decoded::Stderr(text) => events.push(Event::Stderr(text.to_vec())),
        Decoded::End { reusable } => events.push(Event::End(reusable)),
    }
}

/// Feeds `chunks` to `codec` the way the driver does (after each read, `decode` until
/// `None`; at EOF, `decode_eof` until `None`) and returns the events or the first error.
pub fn drive<C: UpstreamCodec>(mut codec: C, chunks: &[&[u8]]) -> Result<Vec<Event>, Error> {
    let mut events = Vec::new();
    let mut buf = BytesMut::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        while let Some(decoded) = codec.decode(&mut buf)? {
            push(&mut events, decoded);
        }
    }
    for _ in 0..16 {
        match codec.decode_eof(&mut buf)? {
            Some(decoded) => push(&mut events, decoded),
            None => {
                assert!(
                    matches!(events.last(), Some(Event::End(_))),
                    "decode_eof finished without End: {events:?}"
                );
                return Ok(events);
            }
        }
    }
    panic!("decode_eof never returned None");
}

/// Asserts that `input` fed whole, split in two at every byte position, and fed one byte
/// at a time gives identical events (or errors of the same kind). Returns the events of
/// the whole input.
pub fn every_split<C: UpstreamCodec>(
    new: impl Fn() -> C,
    input: &[u8],
) -> Result<Vec<Event>, Error> {
    let whole = drive(new(), &[input]);
    let same = |other: &Result<Vec<Event>, Error>, what: &str| match (&whole, other) {
        (Ok(w), Ok(o)) => assert_eq!(w, o, "{what}"),
        (Err(w), Err(o)) => assert_eq!(w.kind(), o.kind(), "{what}"),
        _ => panic!("{what}: {whole:?} vs {other:?}"),
    };
    for cut in 0..=input.len() {
        let (a, b) = input.split_at(cut);
        same(&drive(new(), &[a, b]), &format!("split at {cut}"));
    }
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    same(&drive(new(), &bytes), "byte by byte");
    whole
}
