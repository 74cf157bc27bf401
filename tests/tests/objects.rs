//! The results bucket's requests, which `shared/src/store/objects.rs` signs itself (SigV4, no S3
//! SDK client): checked against the emulator with its request authentication on, where moto
//! recomputes every request's signature with botocore's own S3 signer and refuses one that
//! differs (`SignatureDoesNotMatch`). This test process has its own moto server (the
//! authentication switch is server-wide).

use arc_integration_tests::{moto_endpoint, sdk_config};
use arc_shared::store::objects::{ObjectRef, ObjectStore};
use arc_shared::store::schema;
use arc_shared::ArcError;
use aws_sdk_dynamodb::config::Credentials;
use serde_json::json;
use std::io::{Read, Write};

/// One raw request to the emulator; the answer's body.
fn raw(endpoint: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> String {
    let authority = endpoint.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(authority).expect("emulator");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes()).expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    assert!(head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200"), "{method} {path}: {head}\n{body}");
    body.to_owned()
}

/// An IAM query action (authentication is still off: only the credential scope routes it).
fn iam(endpoint: &str, params: &str) -> String {
    let auth = "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=x";
    raw(
        endpoint,
        "POST",
        "/",
        &[("Content-Type", "application/x-www-form-urlencoded"), ("Authorization", auth)],
        &format!("{params}&Version=2010-05-08"),
    )
}

fn between<'a>(text: &'a str, open: &str, close: &str) -> &'a str {
    let start = text.find(open).map(|p| p + open.len()).unwrap_or_else(|| panic!("no {open} in {text}"));
    let len = text[start..].find(close).unwrap_or_else(|| panic!("no {close} in {text}"));
    &text[start..start + len]
}

async fn store_with(endpoint: &str, key_id: &str, secret: &str) -> ObjectStore {
    let conf = sdk_config(endpoint).await;
    let conf = conf.to_builder().credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(
        Credentials::new(key_id, secret, None, None, "test-user"),
    ));
    ObjectStore::new(&conf.build())
}

#[tokio::test]
async fn signed_requests_pass_the_emulators_signature_check_and_a_wrong_secret_does_not() {
    let endpoint = moto_endpoint();
    let conf = sdk_config(&endpoint).await;
    let bucket = "arc-signed";
    schema::create_bucket(
        &aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&conf).force_path_style(true).build()),
        bucket,
    )
    .await
    .expect("bucket");

    // A user allowed everything on S3, with an access key.
    iam(&endpoint, "Action=CreateUser&UserName=arc-writer");
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;
    let encoded: String = policy
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() { char::from(b).to_string() } else { format!("%{b:02X}") })
        .collect();
    iam(&endpoint, &format!("Action=PutUserPolicy&UserName=arc-writer&PolicyName=s3&PolicyDocument={encoded}"));
    let key = iam(&endpoint, "Action=CreateAccessKey&UserName=arc-writer");
    let key_id = between(&key, "<AccessKeyId>", "</AccessKeyId>").to_owned();
    let secret = between(&key, "<SecretAccessKey>", "</SecretAccessKey>").to_owned();

    // From here on every request is authenticated and its signature recomputed.
    raw(&endpoint, "POST", "/moto-api/reset-auth", &[], "0");

    let store = store_with(&endpoint, &key_id, &secret).await;
    // Keys that need encoding: spaces, reserved characters, non-ASCII.
    for k in ["runs/r-1/results/aggregated.json", "runs/a b/ids+list=1 (copy).json", "runs/é/ü~x.json"] {
        let at = ObjectRef { bucket: bucket.into(), key: k.into() };
        store.put_json(&at, &json!(["t1", "t2"])).await.unwrap_or_else(|e| panic!("PutObject {k}: {e}"));
        assert_eq!(store.get_text(&at).await.expect("GetObject").as_deref(), Some(r#"["t1","t2"]"#), "{k}");
        assert_eq!(store.get_string_list(&at, "task_ids_s3").await.expect("list"), ["t1", "t2"]);
    }
    let missing = ObjectRef { bucket: bucket.into(), key: "runs/none.json".into() };
    assert_eq!(store.get_text(&missing).await.expect("a missing object is None"), None);

    // The same requests signed with a wrong secret are refused, and not as a transient failure.
    let forged = store_with(&endpoint, &key_id, "not-the-secret").await;
    let at = ObjectRef { bucket: bucket.into(), key: "runs/forged.json".into() };
    match forged.put_json(&at, &json!([])).await {
        Err(ArcError::AwsRequestFailed { operation, message }) => {
            assert_eq!(operation, "PutObject");
            assert!(message.contains("HTTP 403 SignatureDoesNotMatch"), "{message}");
        }
        other => panic!("a request signed with a wrong secret was not refused: {other:?}"),
    }
    raw(&endpoint, "POST", "/moto-api/reset-auth", &[], "inf");
    assert_eq!(store.get_text(&at).await.expect("read back"), None, "the refused write wrote nothing");
}
