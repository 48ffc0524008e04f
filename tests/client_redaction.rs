//! Tokens never appear in `Debug`/`Display` of the client, the builder, requests or errors.

#[path = "client_support/mod.rs"]
mod common;

use common::*;
use datapilot::transport::{TransportError, TransportErrorKind};
use datapilot::Client;

#[test]
fn client_and_builder_debug_hide_the_token() {
    let (c, _, _) = client();
    let shown = format!("{c:?}");
    assert!(!shown.contains(TOKEN), "{shown}");
    assert!(shown.contains("<redacted>"));
    let run_view = c.with_token("dpr_RUNTOKENSECRET99999").unwrap();
    assert!(!format!("{run_view:?}").contains("RUNTOKENSECRET"));
    let b = Client::builder().base_url("http://x").token(TOKEN);
    assert!(!format!("{b:?}").contains(TOKEN));
}

#[test]
fn recorded_request_debug_hides_authorization() {
    let (c, t, _) = client();
    t.status(200, r#"{"status":"ok","version":"0.1.0","tree_size":1}"#);
    block_on(c.get_health().send()).unwrap();
    let r = t.request(0);
    assert_eq!(
        r.headers.get("authorization").unwrap(),
        format!("Bearer {TOKEN}")
    );
    assert!(!format!("{r:?}").contains(TOKEN));
}

#[test]
fn errors_never_carry_the_token() {
    // A server or proxy that echoes the credential back in its detail or a transport message.
    let (c, t, _) = client_with(datapilot::retry::RetryConfig::disabled());
    t.status(
        401,
        &problem(401, "unauthenticated", &format!("token {TOKEN} is revoked")),
    );
    let err = block_on(c.get_health().send()).unwrap_err();
    for text in [format!("{err:?}"), err.to_string()] {
        assert!(!text.contains("TESTSECRETVALUE"), "{text}");
    }
    t.push(Err(TransportError::new(
        TransportErrorKind::Io,
        format!("proxy said: Authorization: Bearer {TOKEN}"),
    )));
    let err = block_on(c.get_health().send()).unwrap_err();
    for text in [format!("{err:?}"), err.to_string()] {
        assert!(!text.contains("TESTSECRETVALUE"), "{text}");
    }
}

#[test]
fn created_secrets_are_redacted_in_debug() {
    let (c, t, _) = client();
    t.status(
        201,
        r#"{"token":{"id":"tok_1","name":"ci","role":"engineer","created_at":"2026-11-27T03:38:50.123Z","expires_at":null,"revoked_at":null},"secret":"dpt_NEWSECRETVALUE123456"}"#,
    );
    let created = block_on(
        c.create_token(&datapilot::model::tokens::CreateTokenRequest::new(
            "ci",
            datapilot::model::Role::Engineer,
        ))
        .send(),
    )
    .unwrap();
    assert!(!format!("{created:?}").contains("NEWSECRETVALUE"));
    assert_eq!(created.secret.expose(), "dpt_NEWSECRETVALUE123456");
}

#[test]
fn invalid_token_error_does_not_echo_it() {
    let err = Client::builder()
        .base_url("http://x")
        .token("dpt_SECRET WITH SPACE")
        .transport(Scripted::default())
        .sleep(FakeSleep::default())
        .build()
        .unwrap_err();
    assert!(!err.to_string().contains("SECRET"));
}
