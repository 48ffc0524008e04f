//! Transfers (artifact uploads and downloads) are limited by progress, not by length: against a
//! scripted transport and a fake clock, an upload that takes longer than the per-attempt
//! timeout and the default call deadline succeeds, while other calls are still cut; a
//! streamed download holds its last chunk back until the bytes matched the recorded sha256.

#[path = "client_support/mod.rs"]
mod common;

use std::time::Duration;

use common::*;
use datapilot::error::TimeoutLimit;
use datapilot::retry::{RetryConfig, DEFAULT_CALL_DEADLINE, DEFAULT_STALL_TIMEOUT};
use datapilot::transport::{TransportError, TransportErrorKind, NO_DEADLINE};
use datapilot::{Error, Sent};
use sha2::Digest;

const SHA_A: &str = "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb";

fn artifact_json(sha256: &str, size: u64) -> String {
    format!(
        r#"{{"id":"art_1","run_id":"run_1","name":"model.bin","sha256":"{sha256}","size":{size},"created_at":"2026-11-27T03:38:50.123Z","created_by":"tok_1","audit_seq":7}}"#
    )
}

#[test]
fn an_upload_longer_than_the_call_deadline_succeeds() {
    let (c, t, s) = client();
    // 90 s for one attempt: past the 30 s attempt timeout and the 60 s call deadline.
    let took = Duration::from_secs(90);
    assert!(took > DEFAULT_CALL_DEADLINE);
    t.push_after(took, Ok(response(201, &[], &artifact_json(SHA_A, 1))));
    let a = block_on(
        c.upload_artifact_bytes("run_1", "model.bin", b"a".to_vec())
            .send(),
    )
    .unwrap();
    assert_eq!(a.sha256, SHA_A);
    assert_eq!(t.count(), 1);
    assert!(s.elapsed() >= took);
    let sent = t.request(0);
    assert_eq!(sent.stall_timeout, Some(DEFAULT_STALL_TIMEOUT));
    assert_eq!(
        sent.timeout, NO_DEADLINE,
        "no whole-exchange limit but the backstop"
    );

    // The same latency on an ordinary call is still cut by its attempt timeout.
    let (c, t, _) = client_with(RetryConfig::disabled());
    t.push_after(took, Ok(response(200, &[], "{}")));
    let e = block_on(c.get_run("run_1").send()).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Timeout {
                limit: TimeoutLimit::Attempt,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(t.request(0).stall_timeout, None);
}

#[test]
fn a_transfer_takes_the_callers_deadline_and_stall_timeout() {
    let (c, t, _) = client();
    t.status(201, &artifact_json(SHA_A, 1));
    block_on(
        c.upload_artifact_bytes("run_1", "model.bin", b"a".to_vec())
            .deadline(Duration::from_secs(600))
            .stall_timeout(Duration::from_secs(5))
            .send(),
    )
    .unwrap();
    let sent = t.request(0);
    assert_eq!(sent.stall_timeout, Some(Duration::from_secs(5)));
    assert_eq!(sent.timeout, Duration::from_secs(600));
}

#[test]
fn a_stalled_attempt_is_a_typed_timeout_and_is_retried() {
    let stalled = || {
        Err(TransportError::new(
            TransportErrorKind::Stalled,
            "no progress",
        ))
    };
    let (c, t, _) = client_with(RetryConfig::default().with_max_attempts(2));
    t.push(stalled()).push(stalled());
    let e = block_on(
        c.upload_artifact_bytes("run_1", "model.bin", b"a".to_vec())
            .stall_timeout(Duration::from_secs(3))
            .send(),
    )
    .unwrap_err();
    assert_eq!(t.count(), 2, "a stall is retried like a timeout");
    match e {
        Error::Timeout { after, sent, limit } => {
            assert_eq!(limit, TimeoutLimit::Stall);
            assert_eq!(after, Duration::from_secs(3));
            assert_eq!(sent, Sent::Maybe);
        }
        other => panic!("expected a stall timeout, got {other:?}"),
    }
    // Both attempts carried the same key: the retry cannot store the artifact twice.
    assert_eq!(
        t.header(0, "idempotency-key"),
        t.header(1, "idempotency-key")
    );
}

#[test]
fn a_streamed_download_is_checked_against_the_recorded_sha256() {
    let good = b"the model weights".to_vec();
    let sha = hex::encode(sha2::Sha256::digest(&good));

    // Matching bytes: every byte, then the end.
    let (c, t, _) = client();
    t.status(200, &artifact_json(&sha, good.len() as u64))
        .push(Ok(response(
            200,
            &[("x-content-sha256", &sha)],
            std::str::from_utf8(&good).unwrap(),
        )));
    let mut s = block_on(c.download_artifact_stream("run_1", "art_1").send()).unwrap();
    assert_eq!(s.artifact().sha256, sha);
    let mut got = Vec::new();
    while let Some(chunk) = block_on(s.next_chunk()).unwrap() {
        got.extend_from_slice(&chunk);
    }
    assert_eq!(got, good);
    let content = t.request(1);
    assert_eq!(content.stall_timeout, Some(DEFAULT_STALL_TIMEOUT));

    // Other bytes of the same length: an error, and not one byte handed out before it (the
    // only chunk is the last, held back until the check).
    let (c, t, _) = client();
    t.status(200, &artifact_json(&sha, good.len() as u64))
        .status(200, "the model weighs!");
    let mut s = block_on(c.download_artifact_stream("run_1", "art_1").send()).unwrap();
    let e = block_on(s.next_chunk()).unwrap_err();
    assert!(matches!(e, Error::Verification(_)), "{e:?}");
    assert!(e.to_string().contains(&sha), "{e}");
    assert_eq!(
        block_on(s.next_chunk()).unwrap(),
        None,
        "nothing after the error"
    );

    // A server announcing another digest than the run recorded: refused before any byte.
    let (c, t, _) = client();
    t.status(200, &artifact_json(&sha, good.len() as u64))
        .push(Ok(response(200, &[("x-content-sha256", SHA_A)], "x")));
    let e = block_on(c.download_artifact_stream("run_1", "art_1").send()).unwrap_err();
    assert!(matches!(e, Error::Verification(_)), "{e:?}");

    // More bytes than recorded: an error as soon as they exceed the size.
    let (c, t, _) = client();
    t.status(200, &artifact_json(&sha, 3)).status(200, "abcdef");
    let mut s = block_on(c.download_artifact_stream("run_1", "art_1").send()).unwrap();
    let e = block_on(s.next_chunk()).unwrap_err();
    assert!(matches!(e, Error::Verification(_)), "{e:?}");
}
