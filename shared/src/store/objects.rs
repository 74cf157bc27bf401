//! The results bucket: JSON objects in, JSON objects out (reports, the Map's item lists, task
//! id lists too large for an execution input).

use crate::error::{ArcError, Result};
use aws_sdk_s3::Client;
use serde::Serialize;

/// The largest task id list read from S3 (10,000 ids of 100 characters are about 1.1 MB).
pub const MAX_LIST_BYTES: usize = 4 * 1024 * 1024;

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

/// Writes `value` as a JSON object at `at`.
pub async fn put_json(s3: &Client, at: &ObjectRef, value: &impl Serialize) -> Result<()> {
    let body = serde_json::to_vec(value).map_err(|e| ArcError::Conflict(format!("not serializable: {e}")))?;
    s3.put_object()
        .bucket(&at.bucket)
        .key(&at.key)
        .content_type("application/json")
        .body(body.into())
        .send()
        .await
        .map_err(|e| ArcError::from_sdk("PutObject", e))?;
    Ok(())
}

/// The largest object [`get_text`] reads (a report of 10,000 tasks is a few MB).
pub const MAX_TEXT_BYTES: usize = 64 * 1024 * 1024;

/// What a bounded GetObject found.
enum Body {
    Missing,
    TooLarge,
    Bytes(Vec<u8>),
}

/// GetObject `at`, reading at most `max` bytes of it.
async fn get_bounded(s3: &Client, at: &ObjectRef, max: usize) -> Result<Body> {
    let out = match s3.get_object().bucket(&at.bucket).key(&at.key).send().await {
        Ok(out) => out,
        Err(e) if e.as_service_error().is_some_and(|se| se.is_no_such_key()) => return Ok(Body::Missing),
        Err(e) => return Err(ArcError::from_sdk("GetObject", e)),
    };
    if out.content_length().is_some_and(|l| l > max as i64) {
        return Ok(Body::TooLarge);
    }
    let bytes = out
        .body
        .collect()
        .await
        .map_err(|e| ArcError::DependencyUnavailable { operation: "GetObject".into(), message: e.to_string() })?
        .into_bytes();
    Ok(if bytes.len() > max { Body::TooLarge } else { Body::Bytes(bytes.to_vec()) })
}

/// The object at `at` as text, `None` when there is no such object. One larger than
/// [`MAX_TEXT_BYTES`] or not UTF-8 is `CorruptItem`.
pub async fn get_text(s3: &Client, at: &ObjectRef) -> Result<Option<String>> {
    let corrupt = |message: String| ArcError::CorruptItem { key: at.uri(), message };
    match get_bounded(s3, at, MAX_TEXT_BYTES).await? {
        Body::Missing => Ok(None),
        Body::TooLarge => Err(corrupt(format!("larger than {MAX_TEXT_BYTES} bytes"))),
        Body::Bytes(b) => String::from_utf8(b).map(Some).map_err(|e| corrupt(format!("not UTF-8 text: {e}"))),
    }
}

/// Reads the JSON array of strings at `at` (an input's task id list); `field` names the input
/// field in errors. A missing object or a body that is not such an array is `InvalidInput`.
pub async fn get_string_list(s3: &Client, at: &ObjectRef, field: &str) -> Result<Vec<String>> {
    let bytes = match get_bounded(s3, at, MAX_LIST_BYTES).await? {
        Body::Missing => return Err(ArcError::invalid(field, format!("{} does not exist", at.uri()))),
        Body::TooLarge => {
            return Err(ArcError::invalid(field, format!("{} is larger than {MAX_LIST_BYTES} bytes", at.uri())))
        }
        Body::Bytes(b) => b,
    };
    serde_json::from_slice::<Vec<String>>(&bytes)
        .map_err(|e| ArcError::invalid(field, format!("{} is not a JSON array of strings: {e}", at.uri())))
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
}
