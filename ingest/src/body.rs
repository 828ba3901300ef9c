//! Request bodies: size caps, decompression with a cap on the output, and the tenant.
//!
//! Every receiver reads its body through [`decode_body`], so no request can make the
//! server allocate more than `ingest.max_decompressed_size`.

use std::io::Read;

use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, CONTENT_ENCODING};
use bytes::Bytes;
use proto::TenantId;

use crate::{Config, Error, Result};

/// A body compression the receivers understand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// No compression.
    Identity,
    /// gzip (RFC 1952).
    Gzip,
    /// zlib-wrapped deflate (RFC 1950), as HTTP's `deflate` means.
    Deflate,
    /// Snappy block format (Prometheus remote_write, Loki push).
    Snappy,
    /// zstd frames.
    Zstd,
}

impl Encoding {
    /// Reads `Content-Encoding`; an unknown encoding is a 400 naming it.
    pub fn from_headers(headers: &HeaderMap) -> Result<Encoding> {
        let Some(value) = headers.get(CONTENT_ENCODING) else {
            return Ok(Encoding::Identity);
        };
        let value = value
            .to_str()
            .map_err(|_| Error::BadRequest("content-encoding is not ascii".to_string()))?;
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "identity" => Ok(Encoding::Identity),
            "gzip" | "x-gzip" => Ok(Encoding::Gzip),
            "deflate" => Ok(Encoding::Deflate),
            "snappy" => Ok(Encoding::Snappy),
            "zstd" => Ok(Encoding::Zstd),
            other => Err(Error::BadRequest(format!(
                "unsupported content-encoding {other:?} (use gzip, deflate, snappy, zstd or none)"
            ))),
        }
    }
}

fn too_large(limit: u64) -> Error {
    Error::PayloadTooLarge(format!(
        "request body decompresses to more than {limit} bytes"
    ))
}

fn read_capped(mut reader: impl Read, limit: u64) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let read = reader
        .by_ref()
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| Error::BadRequest(format!("cannot decompress request body: {e}")))?;
    if read as u64 > limit {
        return Err(too_large(limit));
    }
    Ok(out)
}

/// Decompresses `body` as `encoding` says, refusing output larger than `limit` bytes.
pub fn decompress(encoding: Encoding, body: Bytes, limit: u64) -> Result<Bytes> {
    match encoding {
        Encoding::Identity => {
            if body.len() as u64 > limit {
                return Err(too_large(limit));
            }
            Ok(body)
        }
        Encoding::Gzip => {
            read_capped(flate2::read::MultiGzDecoder::new(&body[..]), limit).map(Bytes::from)
        }
        Encoding::Deflate => {
            read_capped(flate2::read::ZlibDecoder::new(&body[..]), limit).map(Bytes::from)
        }
        Encoding::Zstd => {
            let decoder = zstd::stream::read::Decoder::new(&body[..])
                .map_err(|e| Error::BadRequest(format!("cannot decompress request body: {e}")))?;
            read_capped(decoder, limit).map(Bytes::from)
        }
        Encoding::Snappy => {
            let length = snap::raw::decompress_len(&body)
                .map_err(|e| Error::BadRequest(format!("invalid snappy body: {e}")))?;
            if length as u64 > limit {
                return Err(too_large(limit));
            }
            snap::raw::Decoder::new()
                .decompress_vec(&body)
                .map(Bytes::from)
                .map_err(|e| Error::BadRequest(format!("invalid snappy body: {e}")))
        }
    }
}

/// Decompresses a request body according to its `Content-Encoding` header, within the limits.
pub fn decode_body(headers: &HeaderMap, body: Bytes, config: &Config) -> Result<Bytes> {
    if body.len() as u64 > config.max_request_size.bytes() {
        return Err(Error::PayloadTooLarge(format!(
            "request body of {} bytes is over the {} limit",
            body.len(),
            config.max_request_size
        )));
    }
    decompress(
        Encoding::from_headers(headers)?,
        body,
        config.max_decompressed_size.bytes(),
    )
}

/// The tenant of a write: from its bearer token when tokens are configured (and the
/// tenant header, if present, must agree), else from the tenant header, else the default.
pub fn tenant(headers: &HeaderMap, config: &Config) -> Result<TenantId> {
    let named = match headers.get(config.tenant_header.as_str()) {
        None => None,
        Some(value) => {
            let name = value.to_str().map_err(|_| {
                Error::BadRequest(format!("{} header is not ascii", config.tenant_header))
            })?;
            Some(
                TenantId::new(name)
                    .map_err(|e| Error::BadRequest(format!("{}: {e}", config.tenant_header)))?,
            )
        }
    };
    if config.tenant_tokens.is_empty() {
        return match named {
            Some(tenant) => Ok(tenant),
            None => TenantId::new(config.default_tenant.as_str())
                .map_err(|e| Error::InvalidConfig(e.to_string())),
        };
    }
    let presented = headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            let (scheme, token) = value.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .ok_or_else(|| Error::Unauthenticated("missing bearer token".to_string()))?;
    // Compare every configured token in full so timing does not reveal which prefix matched.
    let mut owner = None;
    for entry in &config.tenant_tokens {
        if constant_time_eq(entry.token.as_bytes(), presented.as_bytes()) {
            owner = Some(entry.tenant.as_str());
        }
    }
    let owner = owner.ok_or_else(|| Error::Unauthenticated("unknown bearer token".to_string()))?;
    let owner = TenantId::new(owner).map_err(|e| Error::InvalidConfig(e.to_string()))?;
    match named {
        Some(tenant) if tenant != owner => Err(Error::PermissionDenied(format!(
            "this token may not write to tenant {tenant}"
        ))),
        _ => Ok(owner),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn bombs_are_refused_by_output_size() {
        let zeros = vec![0u8; 1 << 20];
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gzip.write_all(&zeros).unwrap();
        let body = Bytes::from(gzip.finish().unwrap());
        assert!(matches!(
            decompress(Encoding::Gzip, body.clone(), 1000),
            Err(Error::PayloadTooLarge(_))
        ));
        assert_eq!(
            decompress(Encoding::Gzip, body, 1 << 20).unwrap().len(),
            1 << 20
        );
        let snappy = Bytes::from(snap::raw::Encoder::new().compress_vec(&zeros).unwrap());
        assert!(matches!(
            decompress(Encoding::Snappy, snappy, 1000),
            Err(Error::PayloadTooLarge(_))
        ));
        let zstd = Bytes::from(zstd::bulk::compress(&zeros, 1).unwrap());
        assert!(matches!(
            decompress(Encoding::Zstd, zstd, 1000),
            Err(Error::PayloadTooLarge(_))
        ));
    }

    #[test]
    fn garbage_is_a_bad_request() {
        let body = Bytes::from_static(b"not gzip at all");
        assert!(matches!(
            decompress(Encoding::Gzip, body, 1000),
            Err(Error::BadRequest(_))
        ));
    }

    #[test]
    fn tokens_bind_writes_to_their_tenant() {
        let config = Config {
            tenant_tokens: vec![
                crate::config::TenantToken {
                    tenant: "team-a".into(),
                    token: "a".repeat(20),
                },
                crate::config::TenantToken {
                    tenant: "team-b".into(),
                    token: "b".repeat(20),
                },
            ],
            ..Config::default()
        };
        let mut headers = HeaderMap::new();
        assert!(matches!(
            tenant(&headers, &config),
            Err(Error::Unauthenticated(_))
        ));
        headers.insert(
            AUTHORIZATION,
            format!("Bearer {}", "c".repeat(20)).parse().unwrap(),
        );
        assert!(matches!(
            tenant(&headers, &config),
            Err(Error::Unauthenticated(_))
        ));
        headers.insert(
            AUTHORIZATION,
            format!("Bearer {}", "b".repeat(20)).parse().unwrap(),
        );
        assert_eq!(tenant(&headers, &config).unwrap().as_str(), "team-b");
        headers.insert("X-Scope-OrgID", "team-b".parse().unwrap());
        assert_eq!(tenant(&headers, &config).unwrap().as_str(), "team-b");
        headers.insert("X-Scope-OrgID", "team-a".parse().unwrap());
        assert!(matches!(
            tenant(&headers, &config),
            Err(Error::PermissionDenied(_))
        ));
    }

    #[test]
    fn tenant_header_is_validated() {
        let config = Config::default();
        let mut headers = HeaderMap::new();
        assert_eq!(tenant(&headers, &config).unwrap().as_str(), "default");
        headers.insert("X-Scope-OrgID", "team-a".parse().unwrap());
        assert_eq!(tenant(&headers, &config).unwrap().as_str(), "team-a");
        headers.insert("X-Scope-OrgID", "../etc".parse().unwrap());
        assert!(matches!(
            tenant(&headers, &config),
            Err(Error::BadRequest(_))
        ));
    }
}
