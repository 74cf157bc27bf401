//! The results bucket: JSON objects in, JSON objects out (reports, the Map's item lists, task
//! id lists too large for an execution input).
//!
//! Two requests of S3 are all this product makes (GetObject and PutObject of one object), and
//! it makes them itself: SigV4-signed HTTPS over the SDK's HTTP connector, path-style, with the
//! credentials, region, endpoint (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_S3`), attempt timeout
//! and attempt count of the SDK configuration. The S3 SDK client's endpoint rules and its
//! flexible-checksum machinery (CRC32/CRC32C/CRC64 in every SIMD variant) were a third of each
//! function's zip (BENCHMARKS.md); the payload is still protected by its SHA-256, which SigV4
//! signs (`x-amz-content-sha256`) and S3 verifies.

use crate::error::{is_transient_answer, ArcError, Result};
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_smithy_runtime_api::client::http::{HttpConnector, HttpConnectorSettings};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::byte_stream::ByteStream;
use serde::Serialize;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

/// The largest task id list read from S3 (10,000 ids of 100 characters are about 1.1 MB).
pub const MAX_LIST_BYTES: usize = 4 * 1024 * 1024;

/// The largest object [`get_text`] reads (a report of 10,000 tasks is a few MB).
pub const MAX_TEXT_BYTES: usize = 64 * 1024 * 1024;

/// A bucket and key, as the state machine's ItemReader takes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct ObjectRef {
    pub bucket: String,
    pub key: String,
}

impl ObjectRef {
    /// Parses `s3://bucket/key`.
    pub fn parse_uri(uri: &str) -> Option<Self> {
        let rest = uri.strip_prefix("s3://")?;
        let (bucket, key) = rest.split_once('/')?;
        (!bucket.is_empty() && !key.is_empty()).then(|| Self { bucket: bucket.to_owned(), key: key.to_owned() })
    }

    pub fn uri(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }
}

/// The S3 requests of this product: GetObject and PutObject, signed with SigV4.
#[derive(Clone)]
pub struct ObjectStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// Scheme and authority (and any path prefix) every request's path-style URI starts with.
    base: String,
    region: String,
    credentials: Option<SharedCredentialsProvider>,
    /// The last credentials resolved, reused until five minutes before they expire.
    cached: Mutex<Option<Credentials>>,
    attempt_timeout: Duration,
    max_attempts: u32,
    /// Built on the first request: its TLS configuration reads the platform's trust roots,
    /// which functions that never touch S3 need not pay for at cold start.
    connector: OnceLock<aws_smithy_http_client::Connector>,
}

impl std::fmt::Debug for ObjectStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStore")
            .field("base", &self.inner.base)
            .field("region", &self.inner.region)
            .field("attempt_timeout", &self.inner.attempt_timeout)
            .field("max_attempts", &self.inner.max_attempts)
            .finish_non_exhaustive()
    }
}

/// The S3 endpoint of `region` when no endpoint is configured (path-style addressing).
pub fn default_endpoint(region: &str) -> String {
    let suffix = if region.starts_with("cn-") { "amazonaws.com.cn" } else { "amazonaws.com" };
    format!("https://s3.{region}.{suffix}")
}

/// `key` as an S3 URI path: every byte but the unreserved ones and `/` percent-encoded (what
/// SigV4's canonical URI for S3 is, encoded once).
pub fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The `<Code>` of an S3 error document, when it has one.
fn error_code(body: &str) -> Option<&str> {
    let start = body.find("<Code>")? + "<Code>".len();
    let len = body.get(start..)?.find("</Code>")?;
    body.get(start..start + len)
}

/// One S3 request: the operation (for errors and logs), method, object, content type, body,
/// and how much of a successful answer's body to read.
#[derive(Clone, Copy)]
struct Call<'a> {
    operation: &'a str,
    method: &'a str,
    at: &'a ObjectRef,
    content_type: Option<&'a str>,
    body: &'a [u8],
    max: usize,
}

/// What one attempt ended with.
enum Attempt {
    Done(Answer),
    /// A failure worth another attempt (timeout, connection, 5xx, 429, throttling).
    Transient(String),
}

/// An HTTP answer: its status, error code (for errors) and body.
struct Answer {
    status: u16,
    code: Option<String>,
    body: Body,
}

/// What a bounded read of a body found.
enum Body {
    Missing,
    TooLarge,
    Bytes(Vec<u8>),
}

impl ObjectStore {
    /// The store of `conf`: its region, credentials, endpoint, attempt timeout and attempts.
    pub fn new(conf: &aws_config::SdkConfig) -> Self {
        let region = conf.region().map(|r| r.as_ref().to_owned()).unwrap_or_else(|| "us-east-1".to_owned());
        let endpoint = std::env::var("AWS_ENDPOINT_URL_S3")
            .ok()
            .filter(|v| !v.trim().is_empty())
            .or_else(|| conf.endpoint_url().map(str::to_owned));
        let base = endpoint.unwrap_or_else(|| default_endpoint(&region)).trim_end_matches('/').to_owned();
        let attempt_timeout =
            conf.timeout_config().and_then(|t| t.operation_attempt_timeout()).unwrap_or(super::ATTEMPT_TIMEOUT);
        let max_attempts = conf.retry_config().map(|r| r.max_attempts()).unwrap_or(3).max(1);
        Self {
            inner: Arc::new(Inner {
                base,
                region,
                credentials: conf.credentials_provider(),
                cached: Mutex::new(None),
                attempt_timeout,
                max_attempts,
                connector: OnceLock::new(),
            }),
        }
    }

    fn url(&self, at: &ObjectRef) -> String {
        format!("{}/{}/{}", self.inner.base, at.bucket, encode_key(&at.key))
    }

    fn connector(&self) -> &aws_smithy_http_client::Connector {
        use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
        self.inner.connector.get_or_init(|| {
            let settings = HttpConnectorSettings::builder()
                .connect_timeout(self.inner.attempt_timeout)
                .read_timeout(self.inner.attempt_timeout)
                .build();
            aws_smithy_http_client::Connector::builder()
                .connector_settings(settings)
                .sleep_impl(aws_smithy_async::rt::sleep::TokioSleep::new())
                .tls_provider(Provider::Rustls(CryptoMode::Ring))
                .build()
        })
    }

    async fn credentials(&self, operation: &str) -> Result<Credentials> {
        let fresh = |c: &Credentials| c.expiry().is_none_or(|e| e > SystemTime::now() + Duration::from_secs(300));
        if let Some(c) = self.inner.cached.lock().ok().and_then(|g| g.clone()).filter(fresh) {
            return Ok(c);
        }
        let provider = self.inner.credentials.as_ref().ok_or_else(|| ArcError::AwsRequestFailed {
            operation: operation.to_owned(),
            message: "no AWS credentials are configured".into(),
        })?;
        let creds = provider.provide_credentials().await.map_err(|e| ArcError::DependencyUnavailable {
            operation: operation.to_owned(),
            message: format!("no AWS credentials: {e}"),
        })?;
        if let Ok(mut g) = self.inner.cached.lock() {
            *g = Some(creds.clone());
        }
        Ok(creds)
    }

    /// `call` as a signed request.
    async fn signed(&self, call: &Call<'_>) -> Result<HttpRequest> {
        let Call { operation, method, at, content_type, body, .. } = *call;
        use aws_sigv4::http_request::{
            sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
            UriPathNormalizationMode,
        };
        let bad = |message: String| ArcError::AwsRequestFailed { operation: operation.to_owned(), message };
        let url = self.url(at);
        let identity = self.credentials(operation).await?.into();
        let mut settings = SigningSettings::default();
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.inner.region)
            .name("s3")
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|e| bad(format!("cannot sign: {e}")))?
            .into();
        let headers: Vec<(&str, &str)> = content_type.map(|t| ("content-type", t)).into_iter().collect();
        let signable = SignableRequest::new(method, url.as_str(), headers.iter().copied(), SignableBody::Bytes(body))
            .map_err(|e| bad(format!("cannot sign {url}: {e}")))?;
        let (instructions, _) = sign(signable, &params).map_err(|e| bad(format!("cannot sign: {e}")))?.into_parts();
        let mut req = HttpRequest::new(SdkBody::from(body.to_vec()));
        req.set_method(method).map_err(|e| bad(e.to_string()))?;
        req.set_uri(url.as_str()).map_err(|e| bad(format!("{url}: {e}")))?;
        let (signed_headers, _) = instructions.into_parts();
        for (k, v) in headers.iter().copied().chain(signed_headers.iter().map(|h| (h.name(), h.value()))) {
            req.headers_mut().try_insert(k.to_owned(), v.to_owned()).map_err(|e| bad(format!("header {k}: {e}")))?;
        }
        Ok(req)
    }

    /// One attempt: the request sent, the answer read (at most `max` bytes of a 2xx body).
    async fn attempt(&self, req: HttpRequest, max: usize) -> Attempt {
        let call = async {
            let res = match self.connector().call(req).await {
                Ok(res) => res,
                Err(e) => return Attempt::Transient(format!("no answer: {e}")),
            };
            let status = res.status().as_u16();
            let too_long =
                res.headers().get("content-length").and_then(|l| l.parse::<u64>().ok()).is_some_and(|l| l > max as u64);
            if (200..300).contains(&status) && too_long {
                return Attempt::Done(Answer { status, code: None, body: Body::TooLarge });
            }
            // An error document is short; read at most 64 KiB of one.
            let limit = if (200..300).contains(&status) { max } else { 64 * 1024 };
            let mut stream = ByteStream::new(res.into_body());
            let mut bytes = Vec::new();
            while let Some(chunk) = stream.next().await {
                match chunk {
                    Ok(c) if bytes.len() + c.len() > limit => {
                        if (200..300).contains(&status) {
                            return Attempt::Done(Answer { status, code: None, body: Body::TooLarge });
                        }
                        break;
                    }
                    Ok(c) => bytes.extend_from_slice(&c),
                    Err(e) => return Attempt::Transient(format!("HTTP {status}, body unreadable: {e}")),
                }
            }
            let code =
                (status >= 300).then(|| error_code(&String::from_utf8_lossy(&bytes)).map(str::to_owned)).flatten();
            if is_transient_answer(status, code.as_deref()) {
                return Attempt::Transient(
                    format!("HTTP {status} {}", code.as_deref().unwrap_or("")).trim_end().to_owned(),
                );
            }
            Attempt::Done(Answer { status, code, body: Body::Bytes(bytes) })
        };
        match tokio::time::timeout(self.inner.attempt_timeout, call).await {
            Ok(a) => a,
            Err(_) => Attempt::Transient(format!("no answer within {:?}", self.inner.attempt_timeout)),
        }
    }

    /// Sends `call` until it is answered or the attempts run out: transient failures are tried
    /// again (exponential backoff with jitter), as the SDK does.
    async fn send(&self, call: Call<'_>) -> Result<Answer> {
        let Call { operation, at, max, .. } = call;
        let mut attempt = 1;
        loop {
            // Signed per attempt: the signature carries its time.
            let req = self.signed(&call).await?;
            match self.attempt(req, max).await {
                Attempt::Done(a) => return Ok(a),
                Attempt::Transient(message) if attempt >= self.inner.max_attempts => {
                    return Err(ArcError::DependencyUnavailable {
                        operation: operation.to_owned(),
                        message: format!("{} after {attempt} attempt(s): {message}", at.uri()),
                    })
                }
                Attempt::Transient(message) => {
                    tracing::warn!(operation, object = at.uri(), attempt, message, "S3 request failed; trying again");
                    tokio::time::sleep(backoff(attempt)).await;
                    attempt += 1;
                }
            }
        }
    }

    /// Writes `value` as a JSON object at `at`.
    pub async fn put_json(&self, at: &ObjectRef, value: &impl Serialize) -> Result<()> {
        let body = serde_json::to_vec(value).map_err(|e| ArcError::Conflict(format!("not serializable: {e}")))?;
        let call = Call {
            operation: "PutObject",
            method: "PUT",
            at,
            content_type: Some("application/json"),
            body: &body,
            max: 64 * 1024,
        };
        let a = self.send(call).await?;
        match a.status {
            200..=299 => Ok(()),
            status => Err(refused("PutObject", at, status, a.code.as_deref())),
        }
    }

    /// GetObject `at`, reading at most `max` bytes of it.
    async fn get_bounded(&self, at: &ObjectRef, max: usize) -> Result<Body> {
        let a =
            self.send(Call { operation: "GetObject", method: "GET", at, content_type: None, body: &[], max }).await?;
        match (a.status, a.code.as_deref()) {
            (200..=299, _) => Ok(a.body),
            (404, Some("NoSuchKey")) => Ok(Body::Missing),
            (status, code) => Err(refused("GetObject", at, status, code)),
        }
    }

    /// The object at `at` as text, `None` when there is no such object. One larger than
    /// [`MAX_TEXT_BYTES`] or not UTF-8 is `CorruptItem`.
    pub async fn get_text(&self, at: &ObjectRef) -> Result<Option<String>> {
        let corrupt = |message: String| ArcError::CorruptItem { key: at.uri(), message };
        match self.get_bounded(at, MAX_TEXT_BYTES).await? {
            Body::Missing => Ok(None),
            Body::TooLarge => Err(corrupt(format!("larger than {MAX_TEXT_BYTES} bytes"))),
            Body::Bytes(b) => String::from_utf8(b).map(Some).map_err(|e| corrupt(format!("not UTF-8 text: {e}"))),
        }
    }

    /// Reads the JSON array of strings at `at` (an input's task id list); `field` names the
    /// input field in errors. A missing object or a body that is not such an array is
    /// `InvalidInput`.
    pub async fn get_string_list(&self, at: &ObjectRef, field: &str) -> Result<Vec<String>> {
        let bytes = match self.get_bounded(at, MAX_LIST_BYTES).await? {
            Body::Missing => return Err(ArcError::invalid(field, format!("{} does not exist", at.uri()))),
            Body::TooLarge => {
                return Err(ArcError::invalid(field, format!("{} is larger than {MAX_LIST_BYTES} bytes", at.uri())))
            }
            Body::Bytes(b) => b,
        };
        serde_json::from_slice::<Vec<String>>(&bytes)
            .map_err(|e| ArcError::invalid(field, format!("{} is not a JSON array of strings: {e}", at.uri())))
    }
}

/// An answer that is an error and not worth another attempt: `AwsRequestFailed`.
fn refused(operation: &str, at: &ObjectRef, status: u16, code: Option<&str>) -> ArcError {
    ArcError::AwsRequestFailed {
        operation: operation.to_owned(),
        message: format!("{}: HTTP {status} {}", at.uri(), code.unwrap_or("(no error code)")),
    }
}

/// The wait before attempt `attempt + 1`: 2^attempt × 50 ms (at most 5 s), full jitter.
fn backoff(attempt: u32) -> Duration {
    let cap = Duration::from_millis(50).saturating_mul(1 << attempt.min(10)).min(Duration::from_secs(5));
    let jitter = f64::from(uuid::Uuid::new_v4().as_u128() as u16) / f64::from(u16::MAX);
    cap.mul_f64(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_s3_uris() {
        let r = ObjectRef::parse_uri("s3://b/runs/x/ids.json").unwrap();
        assert_eq!((r.bucket.as_str(), r.key.as_str()), ("b", "runs/x/ids.json"));
        assert_eq!(r.uri(), "s3://b/runs/x/ids.json");
        for bad in ["b/k", "s3://b", "s3:///k", "s3://b/", "https://b/k"] {
            assert_eq!(ObjectRef::parse_uri(bad), None, "{bad}");
        }
    }

    #[test]
    fn keys_are_encoded_once_with_slashes_kept() {
        assert_eq!(encode_key("runs/r-1/results/aggregated.json"), "runs/r-1/results/aggregated.json");
        assert_eq!(encode_key("a b/c+d=é?#"), "a%20b/c%2Bd%3D%C3%A9%3F%23");
        assert_eq!(encode_key("x~y_z.%"), "x~y_z.%25");
    }

    #[test]
    fn endpoints_are_path_style_per_partition() {
        assert_eq!(default_endpoint("eu-west-1"), "https://s3.eu-west-1.amazonaws.com");
        assert_eq!(default_endpoint("cn-north-1"), "https://s3.cn-north-1.amazonaws.com.cn");
    }

    #[test]
    fn error_codes_are_read_from_the_error_document() {
        let doc = "<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code><Message>x</Message></Error>";
        assert_eq!(error_code(doc), Some("NoSuchKey"));
        assert_eq!(error_code("<Error><Code>Slow"), None);
        assert_eq!(error_code(""), None);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        for attempt in 1..40 {
            assert!(backoff(attempt) <= Duration::from_secs(5));
        }
        assert!(backoff(1) <= Duration::from_millis(100));
    }
}
