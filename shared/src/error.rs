//! The one error type of every function, with the stable `errorType` names that the state
//! machine's `Retry`/`Catch` match on (docs/ARCHITECTURE.md, "Errors").

use aws_runtime::retries::classifiers::{THROTTLING_ERRORS, TRANSIENT_ERRORS};
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use lambda_runtime::Diagnostic;

#[derive(Debug, thiserror::Error)]
pub enum ArcError {
    /// A bad event: the named field is missing or wrong; nothing was written.
    #[error("{field}: {message}")]
    InvalidInput { field: String, message: String },
    #[error("run {0} not found")]
    RunNotFound(String),
    #[error("task {run_id}/{task_id} not found")]
    TaskNotFound { run_id: String, task_id: String },
    /// AWS throttled us or could not be reached: retryable.
    #[error("{operation}: AWS unavailable: {message}")]
    DependencyUnavailable { operation: String, message: String },
    /// The stored state does not allow the request, or kept changing under us.
    #[error("conflict: {0}")]
    Conflict(String),
    /// An AWS call failed for a reason retrying will not fix (permissions, missing table…).
    #[error("{operation}: AWS request failed: {message}")]
    AwsRequestFailed { operation: String, message: String },
    /// A stored item has an attribute this product cannot read.
    #[error("stored item {key}: {message}")]
    CorruptItem { key: String, message: String },
    /// A table lacks a GSI the code queries (a tasks table created by the Python set's
    /// definitions has no `status-index`): an operator adds it once; retrying will not help.
    #[error("table {table} has no index {index} (tables created by the Python set have none); to add it, run: arcctl migrate status-index")]
    IndexMissing { table: String, index: String },
}

impl ArcError {
    /// A bad event. The field and the message are bounded ([`MAX_FIELD_CHARS`],
    /// [`MAX_MESSAGE_CHARS`]): serde quotes the offending value or key in full, and a 1 MB
    /// string must not come back as a 1 MB error, nor be logged whole.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidInput {
            field: bounded(field.into(), MAX_FIELD_CHARS),
            message: bounded(message.into(), MAX_MESSAGE_CHARS),
        }
    }

    pub fn task_not_found(run_id: impl Into<String>, task_id: impl Into<String>) -> Self {
        Self::TaskNotFound { run_id: run_id.into(), task_id: task_id.into() }
    }

    /// A request that would retry, re-open or restart a CANCELLED run: a `Conflict` naming
    /// the command that lifts the cancellation.
    pub fn run_cancelled(run_id: &str) -> Self {
        Self::Conflict(format!("run {run_id} is CANCELLED; `arcctl runs resume {run_id}` first"))
    }

    /// The stable `errorType` name.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::InvalidInput { .. } => "InvalidInput",
            Self::RunNotFound(_) => "RunNotFound",
            Self::TaskNotFound { .. } => "TaskNotFound",
            Self::DependencyUnavailable { .. } => "DependencyUnavailable",
            Self::Conflict(_) => "Conflict",
            Self::AwsRequestFailed { .. } => "AwsRequestFailed",
            Self::CorruptItem { .. } => "CorruptItem",
            Self::IndexMissing { .. } => "IndexMissing",
        }
    }

    /// Classifies any AWS SDK error by what the SDK and the HTTP status say, never by our own
    /// list of codes: timeouts, connection failures, unreadable responses, HTTP 5xx and 429
    /// from any service, and the error codes the AWS SDK itself classifies as throttling or
    /// transient (`aws_runtime::retries::classifiers`) are `DependencyUnavailable`
    /// (retryable), as is DynamoDB's `TransactionConflictException` (the item is part of a
    /// transaction in progress: nothing was written); everything else is `AwsRequestFailed`.
    pub fn from_sdk<E>(operation: &str, err: SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let operation = operation.to_owned();
        let retryable = match &err {
            SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
            SdkError::ServiceError(se) => {
                is_transient_answer(se.raw().status().as_u16(), se.err().code())
                    // A write to an item that a transaction holds: nothing was written.
                    || se.err().code() == Some("TransactionConflictException")
            }
            _ => false,
        };
        let message = describe_sdk_error(&err);
        if retryable {
            Self::DependencyUnavailable { operation, message }
        } else {
            Self::AwsRequestFailed { operation, message }
        }
    }
}

/// Whether an AWS service's error answer (HTTP `status`, error `code`) is worth another
/// attempt: HTTP 5xx and 429 from any service, and the codes the SDK calls throttling or
/// transient. What [`ArcError::from_sdk`] and the results bucket's own requests
/// (`store::objects`) both classify by.
pub fn is_transient_answer(status: u16, code: Option<&str>) -> bool {
    status >= 500 || status == 429 || is_retryable_code(code)
}

/// Whether the AWS SDK's own retry classifier calls `code` throttling or transient.
pub fn is_retryable_code(code: Option<&str>) -> bool {
    code.is_some_and(|c| THROTTLING_ERRORS.contains(&c) || TRANSIENT_ERRORS.contains(&c))
}

/// A one-line description of an SDK error: code and message when the service sent them,
/// the error chain otherwise.
pub fn describe_sdk_error<E, R>(err: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    if let SdkError::ServiceError(se) = err {
        let e = se.err();
        return format!("{}: {}", e.code().unwrap_or("unknown"), e.message().unwrap_or("no message"));
    }
    let mut out = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

impl From<ArcError> for Diagnostic {
    fn from(e: ArcError) -> Self {
        Diagnostic { error_type: e.error_type().to_owned(), error_message: e.to_string() }
    }
}

pub type Result<T, E = ArcError> = std::result::Result<T, E>;

/// `InvalidInput`'s field path is kept to this many characters.
pub const MAX_FIELD_CHARS: usize = 256;
/// `InvalidInput`'s message is kept to this many characters.
pub const MAX_MESSAGE_CHARS: usize = 1000;

/// `s` cut to `max` characters (on a character boundary), marked with `…` when cut.
fn bounded(s: String, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((idx, _)) => format!("{}…", &s[..idx]),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagnostic_uses_stable_names() {
        let d: Diagnostic = ArcError::invalid("task_ids", "must not be empty").into();
        assert_eq!(d.error_type, "InvalidInput");
        assert_eq!(d.error_message, "task_ids: must not be empty");
        let d: Diagnostic = ArcError::RunNotFound("r1".into()).into();
        assert_eq!(d.error_type, "RunNotFound");
        let d: Diagnostic = ArcError::task_not_found("r", "t").into();
        assert_eq!(d.error_type, "TaskNotFound");
        let d: Diagnostic = ArcError::Conflict("x".into()).into();
        assert_eq!(d.error_type, "Conflict");
        let d: Diagnostic = ArcError::run_cancelled("run-a").into();
        assert_eq!(d.error_type, "Conflict");
        assert_eq!(d.error_message, "conflict: run run-a is CANCELLED; `arcctl runs resume run-a` first");
    }

    #[test]
    fn invalid_input_is_bounded_whatever_the_value_quoted() {
        let e = ArcError::invalid("k".repeat(10_000), format!("bad value {:?}", "é".repeat(1_000_000)));
        let ArcError::InvalidInput { field, message } = &e else { panic!("{e:?}") };
        assert_eq!(field.chars().count(), MAX_FIELD_CHARS + 1);
        assert_eq!(message.chars().count(), MAX_MESSAGE_CHARS + 1);
        assert!(message.starts_with("bad value \"éé") && message.ends_with('…'), "{message}");
        let short = ArcError::invalid("task_ids", "must not be empty");
        assert_eq!(short.to_string(), "task_ids: must not be empty");
    }

    #[test]
    fn a_missing_index_names_the_migration() {
        let e = ArcError::IndexMissing { table: "arc_task_progress".into(), index: "status-index".into() };
        let d: Diagnostic = e.into();
        assert_eq!(d.error_type, "IndexMissing");
        assert!(d.error_message.contains("arc_task_progress"), "{}", d.error_message);
        assert!(d.error_message.contains("status-index"), "{}", d.error_message);
        assert!(d.error_message.ends_with("run: arcctl migrate status-index"), "{}", d.error_message);
    }

    fn s3_error(status: u16, code: &str) -> ArcError {
        use aws_sdk_s3::operation::put_object::PutObjectError;
        use aws_smithy_types::body::SdkBody;
        use aws_smithy_types::error::ErrorMetadata;
        let meta = ErrorMetadata::builder().code(code).message("x").build();
        let err = PutObjectError::generic(meta);
        let raw = HttpResponse::new(status.try_into().unwrap(), SdkBody::empty());
        ArcError::from_sdk("PutObject", SdkError::service_error(err, raw))
    }

    #[test]
    fn server_errors_of_any_service_are_retryable_by_status() {
        assert_eq!(s3_error(500, "InternalError").error_type(), "DependencyUnavailable");
        assert_eq!(s3_error(503, "SomethingNew").error_type(), "DependencyUnavailable");
        assert_eq!(s3_error(400, "SlowDown").error_type(), "DependencyUnavailable");
        assert_eq!(s3_error(403, "AccessDenied").error_type(), "AwsRequestFailed");
        assert_eq!(s3_error(404, "NoSuchBucket").error_type(), "AwsRequestFailed");
        // DynamoDB's answer to a write on an item a transaction holds (docs/ARCHITECTURE.md).
        assert_eq!(s3_error(400, "TransactionConflictException").error_type(), "DependencyUnavailable");
    }

    #[test]
    fn throttling_is_retryable() {
        assert!(is_retryable_code(Some("ProvisionedThroughputExceededException")));
        assert!(!is_retryable_code(Some("ValidationException")));
        assert!(!is_retryable_code(None));
        // S3's own request timeout (HTTP 400) is transient; a refusal is not.
        assert!(is_transient_answer(400, Some("RequestTimeout")));
        assert!(is_transient_answer(503, Some("SlowDown")));
        assert!(!is_transient_answer(403, Some("AccessDenied")));
        assert!(!is_transient_answer(404, Some("NoSuchKey")));
    }
}
