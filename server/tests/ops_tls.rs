//! TLS served by the server itself (issue 15): `--tls-cert`/`--tls-key` with a test
//! certificate made by rcgen; a client that trusts it gets answers over TLS 1.3 (HTTP/1.1 and
//! h2 by ALPN), plain HTTP on the TLS port gets nothing, and bad files stop the server before
//! anything is created.

mod common;

use std::sync::Arc;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls;

struct TestCert {
    _tmp: tempfile::TempDir,
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
    der: rustls::pki_types::CertificateDer<'static>,
}

fn test_cert() -> TestCert {
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let cert = tmp.path().join("cert.pem");
    let key = tmp.path().join("key.pem");
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    TestCert {
        _tmp: tmp,
        cert,
        key,
        der: ck.cert.der().clone(),
    }
}

fn connector(
    trust: &rustls::pki_types::CertificateDer<'static>,
    alpn: &[&[u8]],
) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trust.clone()).unwrap();
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

fn addr_of(base: &str) -> String {
    base.strip_prefix("https://")
        .expect("an https URL")
        .to_string()
}

#[tokio::test]
async fn serves_https_with_the_configured_certificate() {
    if skip_on_remote("one backend is enough for the transport") {
        return;
    }
    let tc = test_cert();
    let srv = Server::start_with(&[
        "--tls-cert",
        tc.cert.to_str().unwrap(),
        "--tls-key",
        tc.key.to_str().unwrap(),
    ]);
    assert!(srv.base.starts_with("https://127.0.0.1:"), "{}", srv.base);
    let addr = addr_of(&srv.base);

    // HTTP/1.1 over TLS, trusting the test certificate.
    let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector(&tc.der, &[b"http/1.1"])
        .connect(name.clone(), tcp)
        .await
        .expect("TLS handshake with the server's certificate");
    let (_, session) = tls.get_ref();
    assert_eq!(
        session.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    assert_eq!(session.alpn_protocol(), Some(&b"http/1.1"[..]));
    tls.write_all(
        format!(
            "GET /v1/whoami HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {ADMIN}\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut resp = String::new();
    tls.read_to_string(&mut resp).await.unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.contains("\"role\":\"admin\""), "{resp}");

    // h2 is offered by ALPN.
    let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let tls = connector(&tc.der, &[b"h2", b"http/1.1"])
        .connect(name.clone(), tcp)
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));

    // A client that does not trust the certificate fails the handshake.
    let other = test_cert();
    let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    assert!(connector(&other.der, &[]).connect(name, tcp).await.is_err());

    // Plain HTTP on the TLS port gets no HTTP answer.
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    tcp.write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ =
        tokio::time::timeout(std::time::Duration::from_secs(5), tcp.read_to_end(&mut buf)).await;
    assert!(
        !buf.starts_with(b"HTTP/"),
        "{:?}",
        String::from_utf8_lossy(&buf)
    );
}

#[test]
fn bad_tls_files_stop_the_server_before_anything_is_created() {
    let tc = test_cert();
    let other = test_cert();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    // A key that does not belong to the certificate.
    let (status, err) = start_fails(
        &dir,
        &[
            "--tls-cert",
            tc.cert.to_str().unwrap(),
            "--tls-key",
            other.key.to_str().unwrap(),
        ],
    );
    assert!(!status.success());
    assert!(err.contains("--tls-cert/--tls-key"), "{err}");
    // Not PEM at all.
    let (status, err) = start_fails(
        &dir,
        &[
            "--tls-cert",
            tc.key.to_str().unwrap(),
            "--tls-key",
            tc.key.to_str().unwrap(),
        ],
    );
    assert!(!status.success());
    assert!(err.contains("--tls-cert"), "{err}");
    assert!(!dir.exists(), "nothing was created");
    // One without the other is a usage error.
    let (status, err) = start_fails(&dir, &["--tls-cert", tc.cert.to_str().unwrap()]);
    assert!(!status.success());
    assert!(err.contains("--tls-key"), "{err}");
}
