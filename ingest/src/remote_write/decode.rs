//! HTTP envelope of a remote_write request: which message (`Content-Type`), the snappy
//! body within the size limits, and the protobuf decode.

use std::cell::RefCell;

use axum::http::HeaderMap;
use axum::http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use prost::Message;

use super::Rejection;
use crate::{Config, Error};

/// The remote_write protocol version a request speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    /// 1.0: `prometheus.WriteRequest`.
    V1,
    /// 2.0: `io.prometheus.write.v2.Request`.
    V2,
}

/// The `proto=` parameter that names the 1.0 message.
const PROTO_V1: &str = "prometheus.WriteRequest";
/// The `proto=` parameter that names the 2.0 message.
const PROTO_V2: &str = "io.prometheus.write.v2.Request";

/// Picks the message from `Content-Type`: `application/x-protobuf` without `proto=` (or
/// no header at all) is 1.0; an unknown media type or `proto=` is a 415 naming it.
pub(crate) fn version(headers: &HeaderMap) -> Result<Version, Rejection> {
    let Some(value) = headers.get(CONTENT_TYPE) else {
        return Ok(Version::V1);
    };
    let text = value
        .to_str()
        .map_err(|_| Rejection::UnsupportedMediaType("content-type is not ascii".to_string()))?;
    let mut parts = text.split(';');
    let media_type = parts.next().unwrap_or("").trim();
    if !media_type.eq_ignore_ascii_case("application/x-protobuf") {
        return Err(Rejection::UnsupportedMediaType(format!(
            "unsupported content-type {text:?}: remote write expects application/x-protobuf"
        )));
    }
    let mut version = Version::V1;
    for parameter in parts {
        let Some((key, raw)) = parameter.split_once('=') else {
            continue;
        };
        if !key.trim().eq_ignore_ascii_case("proto") {
            continue;
        }
        let message = raw.trim().trim_matches('"');
        version = match message {
            PROTO_V1 => Version::V1,
            PROTO_V2 => Version::V2,
            other => {
                return Err(Rejection::UnsupportedMediaType(format!(
                    "unsupported remote write message proto={other:?} (use {PROTO_V1} or {PROTO_V2})"
                )));
            }
        };
    }
    Ok(version)
}

thread_local! {
    /// Each worker thread's decompression buffer, reused from request to request (the
    /// body is converted into owned data before the handler awaits anything).
    static SNAPPY_OUT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A reused buffer larger than this is given back after the request.
const KEEP_BUFFER_BYTES: usize = 16 << 20;

/// Checks the size limits, decompresses the snappy body into this thread's reused
/// buffer and runs `convert` on it. `Content-Encoding` may be `snappy` or absent
/// (Prometheus always compresses); anything else is a 415 naming it.
pub(crate) fn with_body<R>(
    headers: &HeaderMap,
    body: &[u8],
    config: &Config,
    convert: impl FnOnce(&[u8]) -> Result<R, Error>,
) -> Result<R, Rejection> {
    if let Some(value) = headers.get(CONTENT_ENCODING) {
        let text = value.to_str().unwrap_or("<not ascii>").trim();
        if !text.eq_ignore_ascii_case("snappy") {
            return Err(Rejection::UnsupportedMediaType(format!(
                "unsupported content-encoding {text:?}: remote write bodies are snappy-compressed"
            )));
        }
    }
    if body.len() as u64 > config.max_request_size.bytes() {
        return Err(Error::PayloadTooLarge(format!(
            "request body of {} bytes is over the {} limit",
            body.len(),
            config.max_request_size
        ))
        .into());
    }
    let length = snap::raw::decompress_len(body)
        .map_err(|e| Error::BadRequest(format!("invalid snappy body: {e}")))?;
    let limit = config.max_decompressed_size.bytes();
    if length as u64 > limit {
        return Err(Error::PayloadTooLarge(format!(
            "request body decompresses to more than {limit} bytes"
        ))
        .into());
    }
    SNAPPY_OUT.with(|cell| {
        // A re-entrant call (none today) gets a buffer of its own.
        let mut own = Vec::new();
        let mut borrowed = cell.try_borrow_mut();
        let buffer = match borrowed.as_mut() {
            Ok(buffer) => &mut **buffer,
            Err(_) => &mut own,
        };
        if buffer.len() < length {
            // Zero-filled only when it grows; later requests overwrite in place.
            buffer.resize(length, 0);
        }
        let result = snap::raw::Decoder::new()
            .decompress(body, &mut buffer[..length])
            .map_err(|e| Error::BadRequest(format!("invalid snappy body: {e}")))
            .and_then(|written| convert(&buffer[..written]));
        if buffer.len() > KEEP_BUFFER_BYTES {
            *buffer = Vec::new();
        }
        result.map_err(Rejection::from)
    })
}

fn malformed(reason: &str) -> Error {
    Error::BadRequest(format!("invalid remote write protobuf: {reason}"))
}

fn read_varint(buf: &mut &[u8]) -> Result<u64, Error> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let Some((&byte, rest)) = buf.split_first() else {
            return Err(malformed("truncated varint"));
        };
        *buf = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(malformed("varint longer than 10 bytes"))
}

fn skip<'a>(buf: &mut &'a [u8], length: u64) -> Result<&'a [u8], Error> {
    let length = usize::try_from(length).map_err(|_| malformed("field length overflows"))?;
    if length > buf.len() {
        return Err(malformed("field runs past the end of the body"));
    }
    let (field, rest) = buf.split_at(length);
    *buf = rest;
    Ok(field)
}

/// The top-level fields of one protobuf message, without decoding them: `(field number,
/// payload of a length-delimited field)`. Lets the receiver decode one series at a time,
/// so a request never holds the whole decoded message and the converted write at once.
pub(crate) struct WireFields<'a> {
    rest: &'a [u8],
}

impl<'a> WireFields<'a> {
    pub(crate) fn new(message: &'a [u8]) -> Self {
        WireFields { rest: message }
    }

    fn read(&mut self) -> Result<(u32, Option<&'a [u8]>), Error> {
        let key = read_varint(&mut self.rest)?;
        let number = u32::try_from(key >> 3).map_err(|_| malformed("field number overflows"))?;
        if number == 0 {
            return Err(malformed("field number 0"));
        }
        let payload = match key & 7 {
            0 => {
                read_varint(&mut self.rest)?;
                None
            }
            1 => {
                skip(&mut self.rest, 8)?;
                None
            }
            2 => {
                let length = read_varint(&mut self.rest)?;
                Some(skip(&mut self.rest, length)?)
            }
            5 => {
                skip(&mut self.rest, 4)?;
                None
            }
            other => return Err(malformed(&format!("unsupported wire type {other}"))),
        };
        Ok((number, payload))
    }
}

impl<'a> Iterator for WireFields<'a> {
    type Item = Result<(u32, Option<&'a [u8]>), Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let item = self.read();
        if item.is_err() {
            self.rest = &[];
        }
        Some(item)
    }
}

/// Decodes one embedded message with prost; `what` names it in the error.
pub(crate) fn decode_message<M: Message + Default>(
    payload: &[u8],
    what: &str,
    index: usize,
) -> Result<M, Error> {
    M::decode(payload).map_err(|e| {
        Error::BadRequest(format!(
            "invalid remote write protobuf in {what} {index}: {e}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(content_type: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, content_type.parse().unwrap());
        headers
    }

    #[test]
    fn content_type_picks_the_version() {
        assert_eq!(version(&HeaderMap::new()).unwrap(), Version::V1);
        assert_eq!(
            version(&headers("application/x-protobuf")).unwrap(),
            Version::V1
        );
        assert_eq!(
            version(&headers(
                "application/x-protobuf;proto=prometheus.WriteRequest"
            ))
            .unwrap(),
            Version::V1
        );
        assert_eq!(
            version(&headers(
                "application/x-protobuf; proto=io.prometheus.write.v2.Request"
            ))
            .unwrap(),
            Version::V2
        );
        assert!(matches!(
            version(&headers("application/json")),
            Err(Rejection::UnsupportedMediaType(m)) if m.contains("application/json")
        ));
        assert!(matches!(
            version(&headers("application/x-protobuf;proto=foo.Bar")),
            Err(Rejection::UnsupportedMediaType(m)) if m.contains("foo.Bar")
        ));
    }

    #[test]
    fn wire_fields_walk_and_reject_truncation() {
        // field 1 varint 150, field 2 "hi", field 3 fixed64, field 4 fixed32
        let message = [
            0x08, 0x96, 0x01, 0x12, 0x02, b'h', b'i', 0x19, 0, 0, 0, 0, 0, 0, 0, 0, 0x25, 0, 0, 0,
            0,
        ];
        let fields: Vec<_> = WireFields::new(&message).collect::<Result<_, _>>().unwrap();
        assert_eq!(
            fields,
            vec![(1, None), (2, Some(&b"hi"[..])), (3, None), (4, None)]
        );
        for bad in [
            &[0x12, 0x05, b'a'][..],
            &[0x08][..],
            &[0x0b][..],
            &[0x00, 0x00][..],
            &[0xff; 11][..],
        ] {
            let result: Result<Vec<_>, _> = WireFields::new(bad).collect();
            assert!(
                matches!(result, Err(Error::BadRequest(m)) if m.contains("protobuf")),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn body_must_be_snappy() {
        let config = Config::default();
        let copy = |bytes: &[u8]| Ok(bytes.to_vec());
        let payload = snap::raw::Encoder::new().compress_vec(b"hello").unwrap();
        assert_eq!(
            with_body(&HeaderMap::new(), &payload, &config, copy).unwrap(),
            b"hello"
        );
        let mut snappy = HeaderMap::new();
        snappy.insert(CONTENT_ENCODING, "snappy".parse().unwrap());
        assert_eq!(
            with_body(&snappy, &payload, &config, copy).unwrap(),
            b"hello"
        );
        // The reused buffer is longer now: a shorter body still reads exactly its bytes.
        let long = snap::raw::Encoder::new()
            .compress_vec(&[7u8; 5000])
            .unwrap();
        assert_eq!(
            with_body(&snappy, &long, &config, copy).unwrap(),
            vec![7u8; 5000]
        );
        assert_eq!(
            with_body(&snappy, &payload, &config, copy).unwrap(),
            b"hello"
        );
        assert!(matches!(
            with_body(&snappy, b"\xff\xff\xff\xff\xff", &config, copy),
            Err(Rejection::Ingest(Error::BadRequest(_)))
        ));
        let small = Config {
            max_decompressed_size: "1KiB".parse().unwrap(),
            ..Config::default()
        };
        assert!(matches!(
            with_body(&snappy, &long, &small, copy),
            Err(Rejection::Ingest(Error::PayloadTooLarge(_)))
        ));
        let mut gzip = HeaderMap::new();
        gzip.insert(CONTENT_ENCODING, "gzip".parse().unwrap());
        assert!(matches!(
            with_body(&gzip, &[], &config, copy),
            Err(Rejection::UnsupportedMediaType(m)) if m.contains("gzip")
        ));
    }
}
