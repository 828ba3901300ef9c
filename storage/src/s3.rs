//! S3-compatible object storage (AWS S3, MinIO, SeaweedFS): the `[storage.s3]` settings,
//! where the credentials come from, and the `object_store` client built from them.
//!
//! The bucket and key prefix come from `storage.url` (`s3://bucket/prefix`); the rest
//! (endpoint, region, addressing, timeouts) from `[storage.s3]`. Credentials are never
//! written in the config file itself: they come from the file `credentials_file` names
//! (the AWS shared-credentials format) or, without one, from `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`). With neither, opening fails: we
//! never fall back to an instance-metadata lookup.
//!
//! Objects of `multipart_threshold` bytes or more (large merged segments) are uploaded
//! as multipart uploads of `multipart_part_size` parts, a few parts at a time
//! ([`MultipartPuts`]): one request per part instead of one long request that a
//! timeout would restart from the beginning.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{
    BackoffConfig, ClientOptions, CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload,
    ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutMultipartOptions, PutOptions, PutPayload,
    PutResult, RenameOptions, RetryConfig,
};
use proto::{ByteSize, HumanDuration};
use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::{Error, Result};

/// How bucket names go into request URLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum S3Addressing {
    /// `https://endpoint/bucket/key`: what MinIO and SeaweedFS expect.
    Path,
    /// `https://bucket.endpoint/key`: what AWS S3 expects of new buckets.
    VirtualHosted,
}

/// The `[storage.s3]` section: how to reach the bucket `storage.url` names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    /// URL of the S3 API (`http://minio.storage:9000`); unset means AWS S3 in `region`.
    pub endpoint: Option<String>,
    /// Region the requests are signed for.
    pub region: String,
    /// `path` (`endpoint/bucket/key`) or `virtual_hosted` (`bucket.endpoint/key`).
    pub addressing: S3Addressing,
    /// Allow a plain-HTTP endpoint (a gateway on loopback or inside the cluster).
    pub allow_http: bool,
    /// File with the credentials, in the AWS shared-credentials format (its `[default]`
    /// profile). Unset means the `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` variables.
    pub credentials_file: Option<PathBuf>,
    /// Longest one request may take, retries excluded.
    pub request_timeout: HumanDuration,
    /// Retries of a request that failed with a server error or a timeout.
    pub max_retries: u32,
    /// Objects at least this large are uploaded in parts (S3 multipart upload).
    pub multipart_threshold: ByteSize,
    /// Size of each part of a multipart upload but the last (S3 needs at least 5MiB).
    pub multipart_part_size: ByteSize,
}

/// The smallest part S3 (and SeaweedFS, MinIO) accept, but for the last one.
const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// The largest part S3 accepts.
const MAX_PART_SIZE: u64 = 5 * 1024 * 1024 * 1024;
/// The most parts one S3 multipart upload may have.
const MAX_PARTS: u64 = 10_000;
/// Parts of one upload in flight at once.
const PART_CONCURRENCY: usize = 4;

impl Default for S3Config {
    fn default() -> Self {
        S3Config {
            endpoint: None,
            region: "us-east-1".to_string(),
            addressing: S3Addressing::Path,
            allow_http: false,
            credentials_file: None,
            request_timeout: HumanDuration::secs(30),
            max_retries: 3,
            multipart_threshold: ByteSize::mib(64),
            multipart_part_size: ByteSize::mib(16),
        }
    }
}

impl S3Config {
    /// Checks the values serde cannot.
    pub(crate) fn validate(&self) -> Result<()> {
        let invalid = |message: String| Err(Error::InvalidConfig(message));
        if let Some(endpoint) = &self.endpoint {
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                return invalid(format!(
                    "storage.s3.endpoint {endpoint:?} must start with http:// or https://"
                ));
            }
            if endpoint.starts_with("http://") && !self.allow_http {
                return invalid(format!(
                    "storage.s3.endpoint {endpoint:?} is plain HTTP: set storage.s3.allow_http = true to use it"
                ));
            }
        }
        if self.region.is_empty() {
            return invalid("storage.s3.region must not be empty".to_string());
        }
        if self.request_timeout.get().is_zero() {
            return invalid("storage.s3.request_timeout must be greater than zero".to_string());
        }
        let part = self.multipart_part_size.bytes();
        if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&part) {
            return invalid(format!(
                "storage.s3.multipart_part_size must be within 5MiB..=5GiB (what S3 accepts), got {}",
                self.multipart_part_size
            ));
        }
        if self.multipart_threshold.bytes() == 0 {
            return invalid("storage.s3.multipart_threshold must be greater than zero".to_string());
        }
        Ok(())
    }
}

/// The bucket and key prefix of an `s3://bucket/prefix` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct S3Location {
    pub bucket: String,
    /// Key prefix without leading or trailing slashes; empty for the bucket root.
    pub prefix: String,
}

impl S3Location {
    /// Parses `s3://bucket[/prefix]`; `None` when `url` is not an `s3://` URL.
    pub fn parse(url: &str) -> Option<Result<S3Location>> {
        let rest = url.strip_prefix("s3://")?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !valid_bucket {
            return Some(Err(Error::InvalidConfig(format!(
                "storage.url {url:?}: {bucket:?} is not a bucket name (3 to 63 lowercase letters, digits, '-' or '.')"
            ))));
        }
        let prefix = prefix.trim_matches('/');
        if prefix.split('/').any(|part| part == "." || part == "..") || prefix.contains("//") {
            return Some(Err(Error::InvalidConfig(format!(
                "storage.url {url:?}: the key prefix {prefix:?} has an empty, '.' or '..' part"
            ))));
        }
        Some(Ok(S3Location {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        }))
    }
}

/// Static credentials and where they were found (for error messages; never the secret).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct S3Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    pub source: String,
}

impl fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl S3Credentials {
    /// Reads the credentials from `config.credentials_file`, or else from the environment
    /// (looked up through `env`, so tests need not touch the process environment).
    pub fn resolve(
        config: &S3Config,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<S3Credentials> {
        if let Some(path) = &config.credentials_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                Error::InvalidConfig(format!(
                    "storage.s3.credentials_file {}: cannot read it: {e}",
                    path.display()
                ))
            })?;
            return parse_credentials_file(&text, &path.display().to_string());
        }
        let non_empty = |name: &str| env(name).filter(|value| !value.is_empty());
        match (
            non_empty("AWS_ACCESS_KEY_ID"),
            non_empty("AWS_SECRET_ACCESS_KEY"),
        ) {
            (Some(access_key_id), Some(secret_access_key)) => Ok(S3Credentials {
                access_key_id,
                secret_access_key,
                session_token: non_empty("AWS_SESSION_TOKEN"),
                source: "the AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY variables".to_string(),
            }),
            _ => Err(Error::InvalidConfig(
                "storage.url is an s3:// URL but no credentials were given: set storage.s3.credentials_file or the AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY variables".to_string(),
            )),
        }
    }
}

/// Parses the `[default]` profile (or the keys before any section) of an AWS
/// shared-credentials file.
fn parse_credentials_file(text: &str, name: &str) -> Result<S3Credentials> {
    let mut in_default = true;
    let (mut access_key_id, mut secret_access_key, mut session_token) = (None, None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_default = section.trim() == "default";
            continue;
        }
        if !in_default {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(Error::InvalidConfig(format!(
                "storage.s3.credentials_file {name}: {line:?} is not `key = value`"
            )));
        };
        let value = value.trim().to_string();
        match key.trim() {
            "aws_access_key_id" => access_key_id = Some(value),
            "aws_secret_access_key" => secret_access_key = Some(value),
            "aws_session_token" => session_token = Some(value),
            _ => {}
        }
    }
    match (access_key_id, secret_access_key) {
        (Some(access_key_id), Some(secret_access_key))
            if !access_key_id.is_empty() && !secret_access_key.is_empty() =>
        {
            Ok(S3Credentials {
                access_key_id,
                secret_access_key,
                session_token,
                source: format!("storage.s3.credentials_file {name}"),
            })
        }
        _ => Err(Error::InvalidConfig(format!(
            "storage.s3.credentials_file {name}: the [default] profile needs aws_access_key_id and aws_secret_access_key"
        ))),
    }
}

/// Builds the client of `location`, rooted at its prefix.
pub(crate) fn build_store(
    location: &S3Location,
    config: &S3Config,
    credentials: &S3Credentials,
) -> Result<Arc<dyn ObjectStore>> {
    let timeout = config.request_timeout.get();
    let client = ClientOptions::new()
        .with_timeout(timeout)
        .with_connect_timeout(timeout.min(Duration::from_secs(5)))
        .with_allow_http(config.allow_http);
    let retry = RetryConfig {
        backoff: BackoffConfig::default(),
        max_retries: config.max_retries as usize,
        retry_timeout: timeout.saturating_mul(config.max_retries + 1),
    };
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(&location.bucket)
        .with_region(&config.region)
        .with_access_key_id(&credentials.access_key_id)
        .with_secret_access_key(&credentials.secret_access_key)
        .with_virtual_hosted_style_request(config.addressing == S3Addressing::VirtualHosted)
        .with_client_options(client)
        .with_retry(retry);
    if let Some(token) = &credentials.session_token {
        builder = builder.with_token(token);
    }
    if let Some(endpoint) = &config.endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    let s3 = builder
        .build()
        .map_err(|e| Error::object_store(format!("s3://{}", location.bucket), e))?;
    let s3 = MultipartPuts {
        inner: s3,
        threshold: config.multipart_threshold.bytes(),
        part_size: config.multipart_part_size.bytes(),
    };
    Ok(if location.prefix.is_empty() {
        Arc::new(s3)
    } else {
        Arc::new(PrefixStore::new(s3, location.prefix.as_str()))
    })
}

/// Makes one cheap request so that a wrong endpoint, bucket or credentials fail at
/// start-up with a message that says which, not at the first flush.
pub(crate) async fn check_access(
    store: &dyn ObjectStore,
    url: &str,
    config: &S3Config,
    credentials: &S3Credentials,
) -> Result<()> {
    let endpoint = config.endpoint.as_deref().unwrap_or("AWS S3");
    // A HEAD maps 401/403 to typed errors (a failed list does not); a missing key is fine.
    match store.head(&ObjectPath::from("manifest.json")).await {
        Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
        Err(
            e @ (object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. }),
        ) => {
            return Err(Error::InvalidConfig(format!(
                "storage.url {url}: {endpoint} refused the credentials from {} (access key id {:?}): {e}",
                credentials.source, credentials.access_key_id
            )));
        }
        Err(e) => return Err(Error::object_store(url, e)),
    }
    // A HEAD answers 404 for a missing bucket too; a list tells the two apart.
    match store.list_with_delimiter(None).await {
        Ok(_) => Ok(()),
        Err(e) if e.to_string().contains("NoSuchBucket") => Err(Error::InvalidConfig(format!(
            "storage.url {url}: the bucket does not exist at {endpoint}"
        ))),
        Err(e) => Err(Error::object_store(url, e)),
    }
}

/// An object store that uploads large puts as multipart uploads: a put of `threshold`
/// bytes or more (without a precondition, which a multipart upload cannot carry) is
/// split into parts of `part_size` bytes, [`PART_CONCURRENCY`] uploaded at a time, then
/// completed; on any failure the upload is aborted, so no parts are left behind.
/// Everything else goes to the inner store unchanged.
#[derive(Debug)]
pub(crate) struct MultipartPuts<T> {
    inner: T,
    threshold: u64,
    part_size: u64,
}

impl<T: fmt::Display> fmt::Display for MultipartPuts<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MultipartPuts({})", self.inner)
    }
}

impl<T: ObjectStore> MultipartPuts<T> {
    async fn put_in_parts(
        &self,
        location: &ObjectPath,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let PutOptions {
            tags,
            attributes,
            extensions,
            ..
        } = opts;
        let options = PutMultipartOptions {
            tags,
            attributes,
            extensions,
        };
        let mut upload = self.inner.put_multipart_opts(location, options).await?;
        let length = payload.content_length() as u64;
        // A part size that keeps the upload within S3's part count.
        let part_size = self.part_size.max(length.div_ceil(MAX_PARTS));
        let parts: Vec<_> = split_payload(payload, part_size as usize)
            .into_iter()
            .map(|part| upload.put_part(part))
            .collect();
        let uploaded: object_store::Result<()> = futures::stream::iter(parts)
            .buffer_unordered(PART_CONCURRENCY)
            .try_collect()
            .await;
        let outcome = match uploaded {
            Ok(()) => upload.complete().await,
            Err(e) => Err(e),
        };
        if outcome.is_err()
            && let Err(e) = upload.abort().await
        {
            warn!(path = %location, error = %e, "cannot abort a failed multipart upload; the bucket's lifecycle rules must remove its parts");
        }
        outcome
    }
}

/// Splits a payload into parts of `part_size` bytes (the last one shorter), without
/// copying.
fn split_payload(payload: PutPayload, part_size: usize) -> Vec<PutPayload> {
    let part_size = part_size.max(1);
    let mut parts = Vec::new();
    let (mut current, mut length) = (Vec::<Bytes>::new(), 0);
    for mut chunk in payload {
        while !chunk.is_empty() {
            let take = (part_size - length).min(chunk.len());
            current.push(chunk.split_to(take));
            length += take;
            if length == part_size {
                parts.push(current.drain(..).collect());
                length = 0;
            }
        }
    }
    if !current.is_empty() {
        parts.push(current.into_iter().collect());
    }
    parts
}

#[async_trait::async_trait]
impl<T: ObjectStore> ObjectStore for MultipartPuts<T> {
    async fn put_opts(
        &self,
        location: &ObjectPath,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let large = payload.content_length() as u64 >= self.threshold;
        if large && opts.mode == PutMode::Overwrite {
            self.put_in_parts(location, payload, opts).await
        } else {
            self.inner.put_opts(location, payload, opts).await
        }
    }

    async fn put_multipart_opts(
        &self,
        location: &ObjectPath,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &ObjectPath,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &ObjectPath,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<ObjectPath>>,
    ) -> BoxStream<'static, object_store::Result<ObjectPath>> {
        self.inner.delete_stream(locations)
    }

    fn list(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&ObjectPath>,
        offset: &ObjectPath,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &ObjectPath,
        to: &ObjectPath,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(
        &self,
        from: &ObjectPath,
        to: &ObjectPath,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_split_into_parts_without_losing_a_byte() {
        let payload: PutPayload = [
            Bytes::from(vec![1u8; 7]),
            Bytes::from(vec![2u8; 3]),
            Bytes::from(vec![3u8; 5]),
        ]
        .into_iter()
        .collect();
        let parts = split_payload(payload, 4);
        let lengths: Vec<usize> = parts.iter().map(PutPayload::content_length).collect();
        assert_eq!(lengths, [4, 4, 4, 3]);
        let bytes: Vec<u8> = parts
            .iter()
            .flat_map(|part| part.iter().flat_map(|b| b.to_vec()).collect::<Vec<u8>>())
            .collect();
        let mut expected = vec![1u8; 7];
        expected.extend([2u8; 3]);
        expected.extend([3u8; 5]);
        assert_eq!(bytes, expected);
        assert_eq!(split_payload(PutPayload::from_static(b"ab"), 4).len(), 1);
        assert!(split_payload(PutPayload::new(), 4).is_empty());
    }

    #[test]
    fn parts_are_at_least_what_s3_accepts() {
        let config = S3Config {
            multipart_part_size: ByteSize::mib(1),
            ..S3Config::default()
        };
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("multipart_part_size"), "{error}");
        S3Config {
            multipart_part_size: ByteSize::mib(5),
            ..S3Config::default()
        }
        .validate()
        .unwrap();
    }

    #[test]
    fn urls_name_a_bucket_and_a_prefix() {
        let parse = |url| S3Location::parse(url).unwrap();
        assert_eq!(
            parse("s3://sightline/prod/eu/").unwrap(),
            S3Location {
                bucket: "sightline".into(),
                prefix: "prod/eu".into()
            }
        );
        assert_eq!(parse("s3://sightline").unwrap().prefix, "");
        assert!(parse("s3://Bad_Bucket/x").is_err());
        assert!(parse("s3://bucket/a/../b").is_err());
        assert!(S3Location::parse("file:///tmp").is_none());
    }

    #[test]
    fn credentials_come_from_the_file_or_the_environment() {
        let config = S3Config::default();
        let env = |name: &str| match name {
            "AWS_ACCESS_KEY_ID" => Some("id".to_string()),
            "AWS_SECRET_ACCESS_KEY" => Some("secret".to_string()),
            _ => None,
        };
        let from_env = S3Credentials::resolve(&config, env).unwrap();
        assert_eq!(from_env.access_key_id, "id");
        assert_eq!(from_env.session_token, None);
        let error = S3Credentials::resolve(&config, |_| None).unwrap_err();
        assert!(error.to_string().contains("AWS_ACCESS_KEY_ID"), "{error}");

        let text = "# sightline\n[other]\naws_access_key_id = no\n[default]\naws_access_key_id = key\naws_secret_access_key = s3cr=t\n";
        let from_file = parse_credentials_file(text, "creds").unwrap();
        assert_eq!(from_file.access_key_id, "key");
        assert_eq!(from_file.secret_access_key, "s3cr=t");
        assert!(!format!("{from_file:?}").contains("s3cr=t"));
        let error = parse_credentials_file("[default]\naws_access_key_id = key\n", "creds");
        assert!(
            error
                .unwrap_err()
                .to_string()
                .contains("aws_secret_access_key")
        );
    }

    #[test]
    fn plain_http_needs_allow_http() {
        let config = S3Config {
            endpoint: Some("http://127.0.0.1:8333".into()),
            ..S3Config::default()
        };
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("allow_http")
        );
        S3Config {
            allow_http: true,
            ..config
        }
        .validate()
        .unwrap();
    }
}
