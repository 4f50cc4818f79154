//! FastCGI 1.0 records (spec §3.3, §5, §8) and the client side of one request.
//!
//! Every record is an 8-byte header — version (1), type, request id (u16 BE), content
//! length (u16 BE), padding length, reserved — then the content, then padding. We pad
//! every record we write to a multiple of 8 bytes, and accept any padding we read.

use crate::head::HeadCollector;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use junction_core::cgi::{Framing, Params};
use junction_core::codec::{Decoded, UpstreamCodec};
use junction_core::error::{Error, ErrorKind};

/// Length of a record header.
pub const HEADER_LEN: usize = 8;

/// `FCGI_VERSION_1`, the only version there is.
pub const VERSION_1: u8 = 1;

/// Largest record content (the content length is a u16).
pub const MAX_CONTENT_LEN: usize = u16::MAX as usize;

/// Largest record padding (the padding length is a u8).
pub const MAX_PADDING_LEN: usize = u8::MAX as usize;

/// Largest record on the wire: what a peer can make us wait for at most.
pub const MAX_RECORD_LEN: usize = HEADER_LEN + MAX_CONTENT_LEN + MAX_PADDING_LEN;

/// Records we write are padded to a multiple of this.
pub const ALIGN: usize = 8;

/// `FCGI_NULL_REQUEST_ID`: management records (GET_VALUES, UNKNOWN_TYPE) use it.
pub const NULL_REQUEST_ID: u16 = 0;

/// `FCGI_RESPONDER`, the role of a request nginx (and Junction) makes.
pub const ROLE_RESPONDER: u16 = 1;

/// `FCGI_KEEP_CONN`: the application must not close the connection after the request.
pub const FLAG_KEEP_CONN: u8 = 1;

/// Length of the BEGIN_REQUEST and END_REQUEST bodies.
pub const BODY_LEN: usize = 8;

/// Longest name or value a 4-byte length can describe (bit 31 marks the long form).
pub const MAX_PARAM_LEN: usize = 0x7FFF_FFFF;

/// Names and values shorter than this use the 1-byte length form.
const SHORT_PARAM_LEN: usize = 0x80;

/// Bit 31 of a 4-byte name or value length.
const LONG_PARAM_FLAG: u32 = 0x8000_0000;

/// Source of padding bytes.
static ZEROS: [u8; ALIGN] = [0; ALIGN];

/// Record types (spec §8).
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordType {
    /// `FCGI_BEGIN_REQUEST`: client → application, starts a request.
    BeginRequest = 1,
    /// `FCGI_ABORT_REQUEST`: client → application.
    AbortRequest = 2,
    /// `FCGI_END_REQUEST`: application → client, ends a request.
    EndRequest = 3,
    /// `FCGI_PARAMS`: client → application, the CGI environment as a stream.
    Params = 4,
    /// `FCGI_STDIN`: client → application, the request body as a stream.
    Stdin = 5,
    /// `FCGI_STDOUT`: application → client, the CGI response as a stream.
    Stdout = 6,
    /// `FCGI_STDERR`: application → client, diagnostics as a stream.
    Stderr = 7,
    /// `FCGI_DATA`: client → application (FILTER role only).
    Data = 8,
    /// `FCGI_GET_VALUES`: management query.
    GetValues = 9,
    /// `FCGI_GET_VALUES_RESULT`: management answer.
    GetValuesResult = 10,
    /// `FCGI_UNKNOWN_TYPE`: management answer to a record type the peer does not know.
    UnknownType = 11,
}

impl TryFrom<u8> for RecordType {
    /// The unknown type byte.
    type Error = u8;

    fn try_from(value: u8) -> Result<Self, u8> {
        Ok(match value {
            1 => RecordType::BeginRequest,
            2 => RecordType::AbortRequest,
            3 => RecordType::EndRequest,
            4 => RecordType::Params,
            5 => RecordType::Stdin,
            6 => RecordType::Stdout,
            7 => RecordType::Stderr,
            8 => RecordType::Data,
            9 => RecordType::GetValues,
            10 => RecordType::GetValuesResult,
            11 => RecordType::UnknownType,
            other => return Err(other),
        })
    }
}

/// `protocolStatus` of an END_REQUEST record (spec §5.5).
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolStatus {
    /// `FCGI_REQUEST_COMPLETE`: normal end.
    RequestComplete = 0,
    /// `FCGI_CANT_MPX_CONN`: the application does not multiplex connections.
    CantMpxConn = 1,
    /// `FCGI_OVERLOADED`: the application ran out of some resource.
    Overloaded = 2,
    /// `FCGI_UNKNOWN_ROLE`: the application does not play the requested role.
    UnknownRole = 3,
}

impl TryFrom<u8> for ProtocolStatus {
    /// The unknown status byte.
    type Error = u8;

    fn try_from(value: u8) -> Result<Self, u8> {
        Ok(match value {
            0 => ProtocolStatus::RequestComplete,
            1 => ProtocolStatus::CantMpxConn,
            2 => ProtocolStatus::Overloaded,
            3 => ProtocolStatus::UnknownRole,
            other => return Err(other),
        })
    }
}

/// A record header as it is on the wire. The type is kept as a byte: an unknown type
/// is still a well-framed record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    /// Protocol version (1).
    pub version: u8,
    /// Record type byte (see [`RecordType`]).
    pub record_type: u8,
    /// Request id (0 for management records).
    pub request_id: u16,
    /// Content length.
    pub content_length: u16,
    /// Padding length.
    pub padding_length: u8,
}

impl RecordHeader {
    /// A version-1 header for `content_length` bytes, padded to a multiple of 8.
    pub fn new(record_type: RecordType, request_id: u16, content_length: u16) -> Self {
        RecordHeader {
            version: VERSION_1,
            record_type: record_type as u8,
            request_id,
            content_length,
            padding_length: padding_for(usize::from(content_length)),
        }
    }

    /// Reads a header from the first [`HEADER_LEN`] bytes of `buf`, without consuming
    /// them; `None` when fewer are buffered.
    pub fn peek(buf: &[u8]) -> Option<Self> {
        let &[version, record_type, id_hi, id_lo, len_hi, len_lo, padding_length, _reserved] =
            buf.first_chunk::<HEADER_LEN>()?;
        Some(RecordHeader {
            version,
            record_type,
            request_id: u16::from_be_bytes([id_hi, id_lo]),
            content_length: u16::from_be_bytes([len_hi, len_lo]),
            padding_length,
        })
    }

    /// The wire bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let [id_hi, id_lo] = self.request_id.to_be_bytes();
        let [len_hi, len_lo] = self.content_length.to_be_bytes();
        [
            self.version,
            self.record_type,
            id_hi,
            id_lo,
            len_hi,
            len_lo,
            self.padding_length,
            0,
        ]
    }
}

/// Padding that brings `content_len` to a multiple of 8 (0..=7).
fn padding_for(content_len: usize) -> u8 {
    // `% ALIGN` keeps it below 8, so the cast cannot truncate.
    ((ALIGN - content_len % ALIGN) % ALIGN) as u8
}

/// At most [`MAX_CONTENT_LEN`] of `len`, as a record content length.
fn record_len(len: usize) -> u16 {
    u16::try_from(len).unwrap_or(u16::MAX)
}

/// Appends one whole record (`content` ≤ [`MAX_CONTENT_LEN`] bytes) to `out`.
fn put_record(out: &mut BytesMut, record_type: RecordType, request_id: u16, content: &[u8]) {
    let header = RecordHeader::new(record_type, request_id, record_len(content.len()));
    out.put_slice(&header.to_bytes());
    out.put_slice(content);
    out.put_bytes(0, usize::from(header.padding_length));
}

/// Appends a name or value length: 1 byte below 128, else 4 bytes BE with bit 31 set.
fn put_param_len(out: &mut impl BufMut, len: usize) {
    match u8::try_from(len) {
        Ok(short) if len < SHORT_PARAM_LEN => out.put_u8(short),
        // Callers keep `len` ≤ MAX_PARAM_LEN, so it fits in 31 bits.
        _ => out.put_u32(u32::try_from(len).unwrap_or(u32::MAX) | LONG_PARAM_FLAG),
    }
}

/// Room at the start of framed params: the BEGIN_REQUEST record and the header of the
/// PARAMS record the pairs follow.
const HEAD_ROOM: usize = HEADER_LEN + BODY_LEN + HEADER_LEN;

/// The params framed for [`encode_request_head`]: room for the BEGIN_REQUEST record and
/// the PARAMS header first, and each pair after room for its two 1-byte lengths (grown
/// for a name or value of 128 bytes or more).
#[derive(Debug)]
pub struct Pairs;

impl Framing for Pairs {
    const NAME: &'static str = "fastcgi";
    const HEAD: usize = HEAD_ROOM;
    const BEFORE_NAME: usize = 2;
    const BETWEEN: usize = 0;
    const AFTER: usize = 0;

    /// Writes the pair's two lengths into its room, growing the room (the pair moves up)
    /// when one of them takes 4 bytes.
    fn frame(buf: &mut BytesMut, start: usize, name: usize, value: usize) -> bool {
        if !fits(name, value) {
            too_long(buf.get(start + 2..start + 2 + name).unwrap_or_default());
            return false;
        }
        let need = len_size(name) + len_size(value);
        if need > 2 {
            buf.put_bytes(0, need - 2);
            if let Some(pair) = buf.get_mut(start + 2..) {
                pair.rotate_right(need - 2);
            }
        }
        if let Some(mut room) = buf.get_mut(start..start + need) {
            put_param_len(&mut room, name);
            put_param_len(&mut room, value);
        }
        true
    }
}

/// Whether a pair's name and value can be encoded (lengths of 31 bits at most).
fn fits(name: usize, value: usize) -> bool {
    name <= MAX_PARAM_LEN && value <= MAX_PARAM_LEN
}

/// Size of a name or value length: 1 byte below 128, else 4.
fn len_size(n: usize) -> usize {
    if n < SHORT_PARAM_LEN {
        1
    } else {
        4
    }
}

/// The warning for a pair too long to encode.
fn too_long(name: &[u8]) {
    tracing::warn!(
        name = %String::from_utf8_lossy(name.get(..64).unwrap_or(name)),
        "FastCGI param too long to encode, left out"
    );
}

/// The BEGIN_REQUEST record (`FCGI_KEEP_CONN` when `keep_conn`).
fn begin_request(request_id: u16, keep_conn: bool) -> [u8; HEADER_LEN + BODY_LEN] {
    let h = RecordHeader::new(RecordType::BeginRequest, request_id, BODY_LEN as u16).to_bytes();
    let flags = if keep_conn { FLAG_KEEP_CONN } else { 0 };
    let [role_hi, role_lo] = ROLE_RESPONDER.to_be_bytes();
    let [a, b, c, d, e, f, g, x] = h;
    [
        a, b, c, d, e, f, g, x, role_hi, role_lo, flags, 0, 0, 0, 0, 0,
    ]
}

/// Encodes the head of a RESPONDER request: BEGIN_REQUEST (`FCGI_KEEP_CONN` when
/// `keep_conn`), `params` as a stream of PARAMS records, then the empty PARAMS record
/// that ends the stream. Params built with [`Pairs`] that fit one record are the head
/// already: only the two record headers and the end are written.
///
/// A name or value longer than [`MAX_PARAM_LEN`] cannot be encoded; such a pair is left
/// out (with a warning) rather than sent corrupted.
pub fn encode_request_head(request_id: u16, keep_conn: bool, params: Params) -> Bytes {
    let params = match params.into_framed::<Pairs>() {
        Ok(mut buf) => {
            let stream_len = buf.len().saturating_sub(HEAD_ROOM);
            if stream_len > MAX_CONTENT_LEN {
                // Several PARAMS records: the framed pairs are the stream.
                let stream = buf.split_off(HEAD_ROOM.min(buf.len()));
                return encode_stream(request_id, keep_conn, &stream);
            }
            let begin = begin_request(request_id, keep_conn);
            if let Some(room) = buf.get_mut(..begin.len()) {
                room.copy_from_slice(&begin);
            }
            if stream_len == 0 {
                buf.truncate(begin.len());
            } else {
                let header =
                    RecordHeader::new(RecordType::Params, request_id, record_len(stream_len));
                if let Some(room) = buf.get_mut(begin.len()..HEAD_ROOM) {
                    room.copy_from_slice(&header.to_bytes());
                }
                buf.put_bytes(0, usize::from(header.padding_length));
            }
            put_record(&mut buf, RecordType::Params, request_id, &[]);
            return buf.freeze();
        }
        Err(params) => params,
    };
    // The exact size of the PARAMS stream, so that it is written once, in place.
    let stream_len: usize = params
        .iter()
        .filter(|(n, v)| fits(n.len(), v.len()))
        .map(|(n, v)| len_size(n.len()) + len_size(v.len()) + n.len() + v.len())
        .sum();
    let mut stream = BytesMut::with_capacity(stream_len);
    for (name, value) in params.iter() {
        if !fits(name.len(), value.len()) {
            too_long(name);
            continue;
        }
        put_param_len(&mut stream, name.len());
        put_param_len(&mut stream, value.len());
        stream.put_slice(name);
        stream.put_slice(value);
    }
    encode_stream(request_id, keep_conn, &stream)
}

/// BEGIN_REQUEST, the PARAMS stream `stream` (encoded pairs) in as many records as it
/// needs, and the empty PARAMS record.
fn encode_stream(request_id: u16, keep_conn: bool, stream: &[u8]) -> Bytes {
    let records = stream.len().div_ceil(MAX_CONTENT_LEN);
    let mut out = BytesMut::with_capacity(
        (HEADER_LEN + BODY_LEN) + stream.len() + records * (HEADER_LEN + ALIGN) + HEADER_LEN,
    );
    out.put_slice(&begin_request(request_id, keep_conn));
    let mut rest = stream;
    while !rest.is_empty() {
        let (content, tail) = rest.split_at(usize::from(record_len(rest.len())));
        put_record(&mut out, RecordType::Params, request_id, content);
        rest = tail;
    }
    put_record(&mut out, RecordType::Params, request_id, &[]);
    out.freeze()
}

/// What the content of the record being read is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Content {
    /// STDOUT: the CGI header, then the body.
    Stdout,
    /// STDERR: for the error log.
    Stderr,
    /// END_REQUEST body: read whole, with its padding.
    EndRequest,
    /// A management record: read and dropped.
    Skip,
}

/// The record whose header has been read.
#[derive(Debug)]
struct Record {
    content: Content,
    content_left: usize,
    padding_left: usize,
}

/// Where the exchange stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading records.
    Running,
    /// END_REQUEST (complete) was returned.
    Done,
    /// An error was returned; the connection is unusable.
    Failed,
}

/// The [`UpstreamCodec`] of one FastCGI request: frames the body as STDIN records and
/// decodes the STDOUT / STDERR / END_REQUEST records of the response.
///
/// STDOUT and STDERR content is returned as soon as it is buffered, without waiting
/// for the rest of its record (a record may be 64 KiB, more than the driver lets the
/// read buffer hold before the head); only record headers and the END_REQUEST body are
/// read whole.
#[derive(Debug)]
pub struct FastcgiCodec {
    request_id: u16,
    keep_conn: bool,
    head: Option<HeadCollector>,
    record: Option<Record>,
    phase: Phase,
}

impl FastcgiCodec {
    /// A codec for request `request_id` (the id given to [`encode_request_head`]),
    /// `keep_conn` as sent in BEGIN_REQUEST, and a cap of `head_limit` bytes on the CGI
    /// response header (`fastcgi_buffer_size`).
    pub fn new(request_id: u16, keep_conn: bool, head_limit: usize) -> Self {
        FastcgiCodec {
            request_id,
            keep_conn,
            head: Some(HeadCollector::new(head_limit)),
            record: None,
            phase: Phase::Running,
        }
    }

    /// Checks a record header and decides what its content is for.
    fn start_record(&self, header: RecordHeader) -> Result<Record, Error> {
        if header.version != VERSION_1 {
            return Err(Error::invalid(format!(
                "upstream sent unsupported FastCGI protocol version: {}",
                header.version
            )));
        }
        let record_type = RecordType::try_from(header.record_type);
        let content = match record_type {
            Ok(RecordType::GetValuesResult | RecordType::UnknownType)
                if header.request_id == NULL_REQUEST_ID =>
            {
                tracing::debug!(?record_type, "skipping FastCGI management record");
                Content::Skip
            }
            _ if header.request_id != self.request_id => {
                return Err(Error::invalid(format!(
                    "upstream sent unexpected FastCGI request id {}, expected {}",
                    header.request_id, self.request_id
                )));
            }
            Ok(RecordType::Stdout) => Content::Stdout,
            Ok(RecordType::Stderr) => Content::Stderr,
            Ok(RecordType::EndRequest) if usize::from(header.content_length) >= BODY_LEN => {
                Content::EndRequest
            }
            Ok(RecordType::EndRequest) => {
                return Err(Error::invalid(format!(
                    "upstream sent FastCGI END_REQUEST with a {}-byte body",
                    header.content_length
                )));
            }
            _ => {
                return Err(Error::invalid(format!(
                    "upstream sent invalid FastCGI record type: {}",
                    header.record_type
                )));
            }
        };
        Ok(Record {
            content,
            content_left: usize::from(header.content_length),
            padding_left: usize::from(header.padding_length),
        })
    }

    /// Acts on an END_REQUEST body. `drained`: nothing follows the record in the buffer.
    fn end_request(&mut self, body: &[u8], drained: bool) -> Result<Decoded, Error> {
        let Some(&[a0, a1, a2, a3, protocol_status, ..]) = body.first_chunk::<BODY_LEN>() else {
            return Err(Error::invalid("upstream sent a short FastCGI END_REQUEST"));
        };
        let app_status = u32::from_be_bytes([a0, a1, a2, a3]);
        match ProtocolStatus::try_from(protocol_status) {
            Ok(ProtocolStatus::RequestComplete) if self.head.is_some() => Err(Error::invalid(
                "upstream prematurely closed FastCGI stdout",
            )),
            Ok(ProtocolStatus::RequestComplete) => {
                self.phase = Phase::Done;
                Ok(Decoded::End {
                    reusable: self.keep_conn && drained,
                })
            }
            Ok(ProtocolStatus::Overloaded) => Err(Error::new(
                ErrorKind::Overloaded,
                format!("upstream is overloaded (FastCGI FCGI_OVERLOADED, app status {app_status})"),
            )),
            Ok(ProtocolStatus::CantMpxConn) => Err(Error::invalid(format!(
                "upstream rejected the request: FastCGI FCGI_CANT_MPX_CONN (app status {app_status})"
            ))),
            Ok(ProtocolStatus::UnknownRole) => Err(Error::invalid(format!(
                "upstream rejected the request: FastCGI FCGI_UNKNOWN_ROLE, the responder role is not supported (app status {app_status})"
            ))),
            Err(other) => Err(Error::invalid(format!(
                "upstream sent unknown FastCGI protocol status {other} (app status {app_status})"
            ))),
        }
    }

    /// `decode` without the bookkeeping of failures.
    fn decode_records(&mut self, buf: &mut BytesMut) -> Result<Option<Decoded>, Error> {
        loop {
            let Some(record) = self.record.as_mut() else {
                let Some(header) = RecordHeader::peek(buf) else {
                    return Ok(None);
                };
                let record = self.start_record(header)?;
                buf.advance(HEADER_LEN);
                self.record = Some(record);
                continue;
            };

            if record.content_left > 0 {
                let avail = record.content_left.min(buf.len());
                match record.content {
                    Content::EndRequest => {
                        if buf.len() < record.content_left + record.padding_left {
                            return Ok(None);
                        }
                        let body = buf.split_to(record.content_left);
                        buf.advance(record.padding_left);
                        self.record = None;
                        return self.end_request(&body, buf.is_empty()).map(Some);
                    }
                    _ if avail == 0 => return Ok(None),
                    Content::Skip => {
                        buf.advance(avail);
                        record.content_left -= avail;
                    }
                    Content::Stderr => {
                        record.content_left -= avail;
                        return Ok(Some(Decoded::Stderr(buf.split_to(avail).freeze())));
                    }
                    Content::Stdout => match self.head.as_mut() {
                        None => {
                            record.content_left -= avail;
                            return Ok(Some(Decoded::Data(buf.split_to(avail).freeze())));
                        }
                        Some(collector) => {
                            let (taken, head) = collector.feed(buf, avail)?;
                            record.content_left -= taken;
                            if let Some(head) = head {
                                self.head = None;
                                return Ok(Some(Decoded::Head(head)));
                            }
                        }
                    },
                }
                continue;
            }

            if record.padding_left > 0 {
                let n = record.padding_left.min(buf.len());
                buf.advance(n);
                record.padding_left -= n;
                if record.padding_left > 0 {
                    return Ok(None);
                }
            }
            self.record = None;
        }
    }
}

/// Appends one STDIN record carrying `data` (≤ [`MAX_CONTENT_LEN`] bytes) as separate
/// header, data and padding pieces.
fn push_stdin(out: &mut Vec<Bytes>, request_id: u16, data: Bytes) {
    let header = RecordHeader::new(RecordType::Stdin, request_id, record_len(data.len()));
    out.push(Bytes::copy_from_slice(&header.to_bytes()));
    if !data.is_empty() {
        out.push(data);
    }
    let padding = usize::from(header.padding_length);
    if padding > 0 {
        out.push(Bytes::from_static(&ZEROS).slice(..padding));
    }
}

impl UpstreamCodec for FastcgiCodec {
    fn encode_body(&mut self, mut chunk: Bytes, out: &mut Vec<Bytes>) {
        // An empty STDIN record would end the body: empty chunks write nothing.
        while !chunk.is_empty() {
            let data = chunk.split_to(usize::from(record_len(chunk.len())));
            push_stdin(out, self.request_id, data);
        }
    }

    fn encode_end(&mut self, out: &mut Vec<Bytes>) {
        push_stdin(out, self.request_id, Bytes::new());
    }

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Decoded>, Error> {
        match self.phase {
            Phase::Running => {}
            Phase::Done => return Ok(None),
            Phase::Failed => {
                return Err(Error::invalid(
                    "FastCGI response read after an earlier error",
                ))
            }
        }
        let decoded = self.decode_records(buf);
        if decoded.is_err() {
            self.phase = Phase::Failed;
        }
        decoded
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Decoded>, Error> {
        if let Some(event) = self.decode(buf)? {
            return Ok(Some(event));
        }
        if self.phase == Phase::Done {
            return Ok(None);
        }
        self.phase = Phase::Failed;
        // The driver adds "while reading upstream <peer>" to body-phase errors.
        let msg = if self.head.is_some() {
            "upstream prematurely closed connection while reading response header from upstream"
        } else {
            "upstream prematurely closed connection"
        };
        Err(Error::new(ErrorKind::UpstreamClosed, msg))
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod tests {
    use super::*;

    /// The head of `pairs`, checked to be the same from plain and framed params.
    fn encoded(id: u16, keep_conn: bool, pairs: &[(Bytes, Bytes)]) -> Bytes {
        let plain = Params::from_pairs(pairs.iter().map(|(k, v)| (&k[..], &v[..])));
        let framed =
            Params::framed_from_pairs::<super::Pairs>(pairs.iter().map(|(k, v)| (&k[..], &v[..])));
        assert_eq!(
            framed.iter().collect::<Vec<_>>(),
            plain.iter().collect::<Vec<_>>()
        );
        let head = encode_request_head(id, keep_conn, plain);
        assert_eq!(encode_request_head(id, keep_conn, framed), head);
        head
    }
    use http::StatusCode;

    const ID: u16 = 1;
    const LIMIT: usize = 4096;

    /// One record as a peer would write it, with explicit padding.
    fn rec(record_type: u8, request_id: u16, content: &[u8], padding: u8) -> Vec<u8> {
        let len = u16::try_from(content.len()).unwrap();
        let mut v = vec![VERSION_1, record_type];
        v.extend_from_slice(&request_id.to_be_bytes());
        v.extend_from_slice(&len.to_be_bytes());
        v.extend_from_slice(&[padding, 0]);
        v.extend_from_slice(content);
        v.extend(std::iter::repeat_n(0xAA, usize::from(padding)));
        v
    }

    fn stdout(content: &[u8]) -> Vec<u8> {
        rec(
            RecordType::Stdout as u8,
            ID,
            content,
            padding_for(content.len()),
        )
    }

    fn stderr(content: &[u8]) -> Vec<u8> {
        rec(
            RecordType::Stderr as u8,
            ID,
            content,
            padding_for(content.len()),
        )
    }

    fn end(protocol_status: u8) -> Vec<u8> {
        rec(
            RecordType::EndRequest as u8,
            ID,
            &[0, 0, 0, 0, protocol_status, 0, 0, 0],
            0,
        )
    }

    /// A decoded event in comparable form.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Ev {
        Head(u16, Vec<(String, Vec<u8>)>),
        Data(Vec<u8>),
        Stderr(Vec<u8>),
        End(bool),
    }

    fn ev(d: Decoded) -> Ev {
        match d {
            Decoded::Head(h) => Ev::Head(
                h.status.as_u16(),
                h.headers
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
                    .collect(),
            ),
            Decoded::Data(b) => Ev::Data(b.to_vec()),
            Decoded::Stderr(b) => Ev::Stderr(b.to_vec()),
            Decoded::End { reusable } => Ev::End(reusable),
        }
    }

    /// Drains `decode` until it needs more bytes.
    fn drain(codec: &mut FastcgiCodec, buf: &mut BytesMut, evs: &mut Vec<Ev>) -> Result<(), Error> {
        while let Some(d) = codec.decode(buf)? {
            evs.push(ev(d));
        }
        Ok(())
    }

    /// Feeds `input` in the given pieces, then EOF; the events, or the first error.
    fn run(codec: &mut FastcgiCodec, pieces: &[&[u8]]) -> Result<Vec<Ev>, Error> {
        let mut buf = BytesMut::new();
        let mut evs = Vec::new();
        for piece in pieces {
            buf.extend_from_slice(piece);
            drain(codec, &mut buf, &mut evs)?;
        }
        while let Some(d) = codec.decode_eof(&mut buf)? {
            evs.push(ev(d));
        }
        Ok(evs)
    }

    fn run_whole(input: &[u8]) -> Result<Vec<Ev>, Error> {
        run(&mut FastcgiCodec::new(ID, true, LIMIT), &[input])
    }

    /// Merges adjacent Data and adjacent Stderr events (how they are cut depends on reads).
    fn merged(evs: Vec<Ev>) -> Vec<Ev> {
        let mut out: Vec<Ev> = Vec::new();
        for e in evs {
            match (out.last_mut(), e) {
                (Some(Ev::Data(a)), Ev::Data(b)) | (Some(Ev::Stderr(a)), Ev::Stderr(b)) => {
                    a.extend_from_slice(&b)
                }
                (_, e) => out.push(e),
            }
        }
        out
    }

    type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

    /// Test-only decoder of a request head: checks the BEGIN_REQUEST and every PARAMS
    /// record's framing; returns (role, flags, params).
    fn decode_request_head(mut b: &[u8]) -> (u16, u8, Pairs) {
        let mut records = Vec::new();
        while !b.is_empty() {
            let h = RecordHeader::peek(b).unwrap();
            assert_eq!(h.version, VERSION_1);
            assert_eq!(h.request_id, 7);
            let clen = usize::from(h.content_length);
            let plen = usize::from(h.padding_length);
            assert_eq!((clen + plen) % ALIGN, 0, "records are padded to 8");
            assert!(plen < ALIGN);
            records.push((h.record_type, b[HEADER_LEN..HEADER_LEN + clen].to_vec()));
            b = &b[HEADER_LEN + clen + plen..];
        }
        let (t, begin) = &records[0];
        assert_eq!(*t, RecordType::BeginRequest as u8);
        assert_eq!(begin.len(), BODY_LEN);
        let role = u16::from_be_bytes([begin[0], begin[1]]);
        let flags = begin[2];
        let (last_t, last) = records.last().unwrap();
        assert_eq!(*last_t, RecordType::Params as u8);
        assert!(
            last.is_empty(),
            "the PARAMS stream ends with an empty record"
        );
        let mut stream = Vec::new();
        for (t, content) in &records[1..records.len() - 1] {
            assert_eq!(*t, RecordType::Params as u8);
            assert!(!content.is_empty(), "no empty PARAMS record before the end");
            stream.extend_from_slice(content);
        }
        fn len(s: &mut &[u8]) -> usize {
            if s[0] & 0x80 == 0 {
                let n = usize::from(s[0]);
                *s = &s[1..];
                n
            } else {
                let n = u32::from_be_bytes([s[0], s[1], s[2], s[3]]) & 0x7FFF_FFFF;
                *s = &s[4..];
                n as usize
            }
        }
        let mut s = &stream[..];
        let mut params = Vec::new();
        while !s.is_empty() {
            let nl = len(&mut s);
            let vl = len(&mut s);
            params.push((s[..nl].to_vec(), s[nl..nl + vl].to_vec()));
            s = &s[nl + vl..];
        }
        (role, flags, params)
    }

    #[test]
    fn record_type_try_from() {
        for b in 1..=11u8 {
            assert_eq!(RecordType::try_from(b).unwrap() as u8, b);
        }
        assert_eq!(RecordType::try_from(0), Err(0));
        assert_eq!(RecordType::try_from(12), Err(12));
        assert_eq!(RecordType::try_from(0xFF), Err(0xFF));
        for b in 0..=3u8 {
            assert_eq!(ProtocolStatus::try_from(b).unwrap() as u8, b);
        }
        assert_eq!(ProtocolStatus::try_from(4), Err(4));
    }

    #[test]
    fn record_header_bytes() {
        let h = RecordHeader::new(RecordType::Stdin, 0x0102, 0x0305);
        assert_eq!(h.to_bytes(), [1, 5, 0x01, 0x02, 0x03, 0x05, 3, 0]);
        assert_eq!(RecordHeader::peek(&h.to_bytes()), Some(h));
        assert_eq!(RecordHeader::peek(&[1, 5, 0, 1, 0, 0, 0]), None);
        assert_eq!(padding_for(0), 0);
        assert_eq!(padding_for(1), 7);
        assert_eq!(padding_for(8), 0);
        assert_eq!(padding_for(MAX_CONTENT_LEN), 1);
    }

    #[test]
    fn begin_request_exact_bytes() {
        // Spec §5.1: {FCGI_BEGIN_REQUEST, 1, {FCGI_RESPONDER, FCGI_KEEP_CONN}}, then the
        // empty PARAMS record.
        let head = encoded(1, true, &[]);
        assert_eq!(
            &head[..],
            &[
                1, 1, 0, 1, 0, 8, 0, 0, // version, BEGIN_REQUEST, id 1, length 8, no padding
                0, 1, 1, 0, 0, 0, 0, 0, // role RESPONDER, flags KEEP_CONN, reserved
                1, 4, 0, 1, 0, 0, 0, 0, // empty PARAMS
            ][..]
        );
        let head = encoded(0x1234, false, &[]);
        assert_eq!(
            &head[..16],
            &[1, 1, 0x12, 0x34, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn param_lengths_short_and_long() {
        let value = vec![b'v'; 200];
        let params = [(
            Bytes::from_static(b"SCRIPT_FILENAME"),
            Bytes::from(value.clone()),
        )];
        let head = encoded(1, false, &params);
        let params_rec = &head[16..];
        // 1 + 4 + 15 + 200 = 220 bytes of content, 4 of padding.
        assert_eq!(&params_rec[..HEADER_LEN], &[1, 4, 0, 1, 0, 220, 4, 0]);
        let content = &params_rec[HEADER_LEN..];
        assert_eq!(content[0], 15, "name < 128: one byte");
        assert_eq!(
            &content[1..5],
            &[0x80, 0x00, 0x00, 200],
            "value ≥ 128: bit 31 set"
        );
        assert_eq!(&content[5..20], b"SCRIPT_FILENAME");
        assert_eq!(&content[20..220], &value[..]);
        assert_eq!(&content[220..224], &[0, 0, 0, 0]);
        assert_eq!(&content[224..], &[1, 4, 0, 1, 0, 0, 0, 0]);

        // The boundary: 127 is short, 128 is long; bit 15 is never the flag.
        let mut out = BytesMut::new();
        put_param_len(&mut out, 127);
        put_param_len(&mut out, 128);
        put_param_len(&mut out, 0x1_0000);
        put_param_len(&mut out, MAX_PARAM_LEN);
        assert_eq!(
            &out[..],
            &[0x7F, 0x80, 0, 0, 0x80, 0x80, 1, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF][..]
        );
    }

    #[test]
    fn params_round_trip_spanning_records() {
        let params: Vec<(Bytes, Bytes)> = vec![
            (
                Bytes::from_static(b"REQUEST_METHOD"),
                Bytes::from_static(b"GET"),
            ),
            (Bytes::from_static(b"EMPTY"), Bytes::new()),
            (
                Bytes::from(vec![b'N'; 300]),
                Bytes::from(vec![b'x'; 100_000]),
            ),
            (
                Bytes::from_static(b"HTTP_X"),
                Bytes::from(vec![0xFFu8, 0, b'\n']),
            ),
            (Bytes::from_static(b"A"), Bytes::from(vec![b'y'; 65_535])),
        ];
        let head = encoded(7, true, &params);
        let (role, flags, decoded) = decode_request_head(&head);
        assert_eq!(role, ROLE_RESPONDER);
        assert_eq!(flags, FLAG_KEEP_CONN);
        let expected: Vec<(Vec<u8>, Vec<u8>)> = params
            .iter()
            .map(|(n, v)| (n.to_vec(), v.to_vec()))
            .collect();
        assert_eq!(decoded, expected);
        // The big pair needed several records: every one but the last is full.
        let mut b = &head[16..];
        let mut sizes = Vec::new();
        while !b.is_empty() {
            let h = RecordHeader::peek(b).unwrap();
            sizes.push(usize::from(h.content_length));
            b = &b[HEADER_LEN + usize::from(h.content_length) + usize::from(h.padding_length)..];
        }
        assert!(sizes.len() >= 4, "{sizes:?}");
        assert!(sizes[..sizes.len() - 2]
            .iter()
            .all(|&s| s == MAX_CONTENT_LEN));
        assert_eq!(sizes.last(), Some(&0));
    }

    #[test]
    fn stdin_splits_big_chunk_zero_copy() {
        let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let chunk = Bytes::from(body.clone());
        let base = chunk.as_ptr() as usize;
        let mut codec = FastcgiCodec::new(3, false, LIMIT);
        let mut out = Vec::new();
        codec.encode_body(chunk, &mut out);

        let mut sizes = Vec::new();
        let mut reassembled = Vec::new();
        let mut pieces = out.iter();
        while let Some(header) = pieces.next() {
            assert_eq!(header.len(), HEADER_LEN);
            let h = RecordHeader::peek(header).unwrap();
            assert_eq!(h.version, VERSION_1);
            assert_eq!(h.record_type, RecordType::Stdin as u8);
            assert_eq!(h.request_id, 3);
            let clen = usize::from(h.content_length);
            let data = pieces.next().unwrap();
            assert_eq!(data.len(), clen);
            let at = data.as_ptr() as usize;
            assert!(
                at >= base && at + clen <= base + 200_000,
                "data is a slice of the chunk"
            );
            reassembled.extend_from_slice(data);
            let plen = usize::from(h.padding_length);
            assert_eq!((clen + plen) % ALIGN, 0);
            if plen > 0 {
                let padding = pieces.next().unwrap();
                assert_eq!(&padding[..], &vec![0; plen][..]);
            }
            sizes.push((clen, plen));
        }
        assert_eq!(
            sizes,
            vec![
                (65_535, 1),
                (65_535, 1),
                (65_535, 1),
                (200_000 - 3 * 65_535, 5)
            ]
        );
        assert_eq!(reassembled, body);
        assert_eq!(out.len(), 4 * 3);

        // Empty chunks write nothing; the end is one empty STDIN record.
        let mut out = Vec::new();
        codec.encode_body(Bytes::new(), &mut out);
        assert!(out.is_empty());
        codec.encode_end(&mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(&out[0][..], &[1, 5, 0, 3, 0, 0, 0, 0]);

        // A small chunk: header, data, padding.
        let mut out = Vec::new();
        codec.encode_body(Bytes::from_static(b"abc"), &mut out);
        let lens: Vec<usize> = out.iter().map(Bytes::len).collect();
        assert_eq!(lens, vec![8, 3, 5]);
        assert_eq!(&out[0][..], &[1, 5, 0, 3, 0, 3, 5, 0]);
    }

    /// STDOUT header + start of body in one record, body across records with odd
    /// padding, STDERR in between, an empty STDOUT, END_REQUEST.
    fn full_response() -> Vec<u8> {
        let mut r = Vec::new();
        r.extend(stdout(b"Status: 201 Created\r\nSet-Cookie: a=1\r\nContent-Type: text/plain\r\nSet-Cookie: b=2\r\n\r\nhello "));
        r.extend(stderr(b"PHP Notice: something"));
        r.extend(rec(RecordType::Stdout as u8, ID, b"wor", 3));
        r.extend(rec(RecordType::Stdout as u8, ID, b"ld", 255));
        r.extend(stdout(b""));
        r.extend(end(0));
        r
    }

    fn full_response_events() -> Vec<Ev> {
        vec![
            Ev::Head(
                201,
                vec![
                    ("set-cookie".into(), b"a=1".to_vec()),
                    ("set-cookie".into(), b"b=2".to_vec()),
                    ("content-type".into(), b"text/plain".to_vec()),
                ],
            ),
            Ev::Data(b"hello ".to_vec()),
            Ev::Stderr(b"PHP Notice: something".to_vec()),
            Ev::Data(b"wor".to_vec()),
            Ev::Data(b"ld".to_vec()),
            Ev::End(true),
        ]
    }

    #[test]
    fn full_response_whole() {
        assert_eq!(run_whole(&full_response()).unwrap(), full_response_events());
    }

    #[test]
    fn full_response_split_at_every_byte() {
        let input = full_response();
        let expected = merged(full_response_events());
        for split in 0..=input.len() {
            let mut codec = FastcgiCodec::new(ID, true, LIMIT);
            let evs = run(&mut codec, &[&input[..split], &input[split..]]).unwrap();
            assert_eq!(merged(evs), expected, "split at {split}");
        }
        // And one byte at a time.
        let pieces: Vec<&[u8]> = input.chunks(1).collect();
        let evs = run(&mut FastcgiCodec::new(ID, true, LIMIT), &pieces).unwrap();
        assert_eq!(merged(evs), expected);
    }

    #[test]
    fn header_split_across_records() {
        let mut input = stdout(b"Status: 4");
        input.extend(stdout(b"04 Not Found\r"));
        input.extend(stdout(b"\n"));
        input.extend(stdout(b"\r\nbody"));
        input.extend(end(0));
        assert_eq!(
            run_whole(&input).unwrap(),
            vec![
                Ev::Head(404, vec![]),
                Ev::Data(b"body".to_vec()),
                Ev::End(true)
            ]
        );
    }

    #[test]
    fn body_is_not_copied() {
        let mut input = stdout(b"X: y\n\nfirst");
        input.extend(stdout(b"second"));
        let mut buf = BytesMut::from(&input[..]);
        let start = buf.as_ptr() as usize;
        let range = start..start + input.len();
        let mut codec = FastcgiCodec::new(ID, true, LIMIT);
        assert!(matches!(
            codec.decode(&mut buf).unwrap(),
            Some(Decoded::Head(_))
        ));
        for want in [&b"first"[..], b"second"] {
            match codec.decode(&mut buf).unwrap() {
                Some(Decoded::Data(d)) => {
                    assert_eq!(&d[..], want);
                    assert!(
                        range.contains(&(d.as_ptr() as usize)),
                        "data split off the buffer"
                    );
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(codec.decode(&mut buf).unwrap().is_none());
    }

    #[test]
    fn location_means_302_and_status_is_dropped() {
        let mut input = stdout(b"Location: /login\r\n\r\n");
        input.extend(end(0));
        assert_eq!(
            run_whole(&input).unwrap(),
            vec![
                Ev::Head(302, vec![("location".into(), b"/login".to_vec())]),
                Ev::End(true)
            ]
        );
        let mut input = stdout(b"Status: 200\nLocation: /x\n\n");
        input.extend(end(0));
        assert_eq!(
            run_whole(&input).unwrap()[0],
            Ev::Head(200, vec![("location".into(), b"/x".to_vec())])
        );
    }

    #[test]
    fn invalid_header_is_invalid_response() {
        let mut input = stdout(b"this is not a header\r\n\r\n");
        input.extend(end(0));
        let err = run_whole(&input).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidResponse);
        assert_eq!(err.status(), StatusCode::BAD_GATEWAY);
    }

    #[test]
    fn too_big_header() {
        let line = b"X-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
        let mut header = Vec::new();
        while header.len() < 200 {
            header.extend_from_slice(line);
        }
        let mut input = stdout(&header);
        input.extend(stdout(b"\r\nbody"));
        input.extend(end(0));
        // Limit below the header: TooBigHeader, whole or byte by byte.
        let err = run(&mut FastcgiCodec::new(ID, false, 100), &[&input]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TooBigHeader);
        assert_eq!(err.message(), "upstream sent too big header");
        let pieces: Vec<&[u8]> = input.chunks(1).collect();
        let err = run(&mut FastcgiCodec::new(ID, false, 100), &pieces).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TooBigHeader);
        // Limit at the header's size: fine, and the body does not count.
        let limit = header.len() + 2;
        let evs = run(&mut FastcgiCodec::new(ID, false, limit), &[&input]).unwrap();
        assert_eq!(evs.len(), 3);
        let err = run(&mut FastcgiCodec::new(ID, false, limit - 1), &[&input]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TooBigHeader);
    }

    #[test]
    fn big_body_record_after_small_header() {
        let mut content = b"Content-Type: a/b\r\n\r\n".to_vec();
        content.extend(vec![b'z'; 65_000]);
        let mut input = stdout(&content);
        input.extend(end(0));
        let evs = merged(run(&mut FastcgiCodec::new(ID, true, 64), &[&input]).unwrap());
        assert_eq!(evs.len(), 3);
        assert_eq!(evs[1], Ev::Data(vec![b'z'; 65_000]));
    }

    #[test]
    fn head_returned_before_record_is_whole() {
        // The driver caps the read buffer before the head: the head must come out of a
        // partly buffered record.
        let mut content = b"A: b\r\n\r\n".to_vec();
        content.extend(vec![b'z'; 30_000]);
        let input = stdout(&content);
        let mut codec = FastcgiCodec::new(ID, true, LIMIT);
        let mut buf = BytesMut::from(&input[..100]);
        assert!(matches!(
            codec.decode(&mut buf).unwrap(),
            Some(Decoded::Head(_))
        ));
        assert!(
            matches!(codec.decode(&mut buf).unwrap(), Some(Decoded::Data(d)) if d.len() == 100 - 8 - 8)
        );
        assert!(codec.decode(&mut buf).unwrap().is_none());
    }

    #[test]
    fn wrong_version_is_an_error() {
        let mut input = stdout(b"A: b\r\n\r\n");
        input[0] = 2;
        let err = run_whole(&input).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidResponse);
        assert!(err.message().contains("version"), "{}", err.message());
        let err = run_whole(b"HTTP/1.1 200 OK\r\n\r\n").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidResponse);
    }

    #[test]
    fn unexpected_records() {
        // Another request id.
        let mut input = rec(RecordType::Stdout as u8, 2, b"A: b\r\n\r\n", 0);
        input.extend(end(0));
        assert_eq!(
            run_whole(&input).unwrap_err().kind(),
            ErrorKind::InvalidResponse
        );
        // A type the application never sends, and an unknown type.
        for t in [
            RecordType::Stdin as u8,
            RecordType::BeginRequest as u8,
            12,
            0,
            200,
        ] {
            let input = rec(t, ID, b"xx", 6);
            assert_eq!(
                run_whole(&input).unwrap_err().kind(),
                ErrorKind::InvalidResponse
            );
        }
        // Management records are skipped.
        let mut input = rec(
            RecordType::GetValuesResult as u8,
            0,
            b"\x0e\x01FCGI_MPXS_CONNS0",
            7,
        );
        input.extend(stdout(b"A: b\r\n\r\nok"));
        input.extend(rec(
            RecordType::UnknownType as u8,
            0,
            &[42, 0, 0, 0, 0, 0, 0, 0],
            0,
        ));
        input.extend(end(0));
        let evs = run_whole(&input).unwrap();
        assert_eq!(evs.len(), 3, "{evs:?}");
        // END_REQUEST with a short body.
        let mut input = stdout(b"A: b\r\n\r\n");
        input.extend(rec(RecordType::EndRequest as u8, ID, &[0, 0, 0, 0], 4));
        assert_eq!(
            run_whole(&input).unwrap_err().kind(),
            ErrorKind::InvalidResponse
        );
    }

    #[test]
    fn end_request_statuses() {
        let mut input = stdout(b"A: b\r\n\r\n");
        input.extend(end(ProtocolStatus::Overloaded as u8));
        let err = run_whole(&input).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Overloaded);
        assert_eq!(err.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(err.message().contains("FCGI_OVERLOADED"));
        // Overloaded before any STDOUT (the usual case) too.
        let err = run_whole(&end(ProtocolStatus::Overloaded as u8)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Overloaded);

        for status in [
            ProtocolStatus::CantMpxConn as u8,
            ProtocolStatus::UnknownRole as u8,
            9,
        ] {
            let err = run_whole(&end(status)).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidResponse);
            assert_eq!(err.status(), StatusCode::BAD_GATEWAY);
        }

        // Complete, but the header never came (or never finished).
        let err = run_whole(&end(0)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidResponse);
        assert_eq!(err.message(), "upstream prematurely closed FastCGI stdout");
        let mut input = stdout(b"A: b\r\n");
        input.extend(end(0));
        let err = run_whole(&input).unwrap_err();
        assert_eq!(err.message(), "upstream prematurely closed FastCGI stdout");
    }

    #[test]
    fn reusable_only_with_keep_conn_and_clean_end() {
        let mut input = stdout(b"A: b\r\n\r\n");
        input.extend(end(0));
        let evs = run(&mut FastcgiCodec::new(ID, false, LIMIT), &[&input]).unwrap();
        assert_eq!(evs.last(), Some(&Ev::End(false)));
        // Bytes after END_REQUEST: the connection is not clean.
        input.extend_from_slice(b"junk");
        let evs = run(&mut FastcgiCodec::new(ID, true, LIMIT), &[&input]).unwrap();
        assert_eq!(evs.last(), Some(&Ev::End(false)));
    }

    #[test]
    fn eof_before_end_request() {
        let input = full_response();
        let end_at = input.len() - HEADER_LEN - BODY_LEN;
        // Every cut before END_REQUEST is complete is an UpstreamClosed error.
        for cut in 0..input.len() {
            let err = run(&mut FastcgiCodec::new(ID, true, LIMIT), &[&input[..cut]]).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::UpstreamClosed, "cut at {cut}");
            if cut >= end_at {
                assert_eq!(err.message(), "upstream prematurely closed connection");
            }
        }
        let err = run(&mut FastcgiCodec::new(ID, true, LIMIT), &[b""]).unwrap_err();
        assert!(err.message().contains("response header"));
        // After END_REQUEST, EOF is fine.
        let mut codec = FastcgiCodec::new(ID, true, LIMIT);
        run(&mut codec, &[&input]).unwrap();
        assert!(codec.decode_eof(&mut BytesMut::new()).unwrap().is_none());
    }

    #[test]
    fn error_is_sticky() {
        let mut codec = FastcgiCodec::new(ID, true, LIMIT);
        let mut buf = BytesMut::from(&b"\x09garbage-garbage"[..]);
        assert!(codec.decode(&mut buf).is_err());
        let mut buf = BytesMut::from(&full_response()[..]);
        assert!(codec.decode(&mut buf).is_err());
    }

    /// A small deterministic generator for the no-panic tests.
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            self.0 >> 33
        }
    }

    fn no_panic(input: &[u8], piece: usize) {
        let mut codec = FastcgiCodec::new(ID, true, 256);
        let pieces: Vec<&[u8]> = input.chunks(piece.max(1)).collect();
        let _ = run(&mut codec, &pieces);
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = Lcg(42);
        for _ in 0..2_000 {
            let len = (rng.next() % 300) as usize;
            let mut input: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            if let Some(first) = input.first_mut() {
                // Half the time a valid version, to get past the first check.
                if rng.next() & 1 == 0 {
                    *first = VERSION_1;
                }
            }
            no_panic(&input, (rng.next() % 17) as usize);
        }
        // Every single-byte corruption of a valid response.
        let valid = full_response();
        for i in 0..valid.len() {
            for b in [0u8, 1, 3, 6, 7, 0x7F, 0x80, 0xFF] {
                let mut input = valid.clone();
                input[i] = b;
                no_panic(&input, 1 + i % 7);
            }
        }
    }
}
