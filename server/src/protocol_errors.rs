//! problem+json for the errors the HTTP/1 codec answers on its own.
//!
//! A request line that does not parse, conflicting `Content-Length` headers, a URI or header
//! block over the codec's limits, headers that never finish: hyper answers these before any
//! request exists, with a bare status line (`400`, `408`, `414`, `431`), `connection: close`
//! and an empty body, and offers no hook to shape them. The contract promises problem+json with
//! a request id for every error, so the connection's write side recognises exactly those canned
//! responses (an empty body, `connection: close`, none of the headers every application response
//! carries) and writes the problem instead. Nothing else on the connection is touched.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A connection whose canned protocol-error responses become problem+json.
#[derive(Debug)]
pub struct ProblemIo<T> {
    inner: T,
    /// Replacement bytes still to write.
    pending: Vec<u8>,
    at: usize,
}

impl<T> ProblemIo<T> {
    pub fn new(inner: T) -> Self {
        ProblemIo {
            inner,
            pending: Vec::new(),
            at: 0,
        }
    }
}

/// The problem+json response replacing hyper's canned `status` response, if `buf` is one.
fn replacement(buf: &[u8]) -> Option<Vec<u8>> {
    let head = std::str::from_utf8(buf).ok()?;
    let rest = head.strip_prefix("HTTP/1.1 ")?;
    let status: u16 = rest.get(..3)?.parse().ok()?;
    let lower = head.to_ascii_lowercase();
    let canned = matches!(status, 400 | 408 | 414 | 431)
        && lower.ends_with("\r\n\r\n")
        && lower.contains("\r\nconnection: close\r\n")
        && lower.contains("\r\ncontent-length: 0\r\n")
        && !lower.contains("x-request-id");
    if !canned {
        return None;
    }
    let (code, title, detail) = match status {
        408 => (
            "request_timeout",
            "Request timeout",
            "the request headers did not arrive in time (--header-timeout)",
        ),
        414 => (
            "uri_too_long",
            "URI too long",
            "the request target is longer than the server accepts",
        ),
        431 => (
            "headers_too_large",
            "Request header fields too large",
            "the request headers are larger than the server accepts",
        ),
        _ => (
            "bad_request",
            "Bad request",
            "the request is not valid HTTP/1.1 (request line, header syntax or conflicting Content-Length)",
        ),
    };
    let id = crate::util::new_id("req_");
    let body = serde_json::json!({
        "type": format!("{}{code}", crate::error::PROBLEM_BASE),
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "request_id": id,
    })
    .to_string();
    let reason = head.lines().next().unwrap_or("HTTP/1.1 400 Bad Request");
    Some(
        format!(
            "{reason}\r\ncontent-type: application/problem+json\r\ncontent-length: {}\r\n\
             x-request-id: {id}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

impl<T: AsyncWrite + Unpin> ProblemIo<T> {
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.at < self.pending.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.at..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.at += n;
        }
        self.pending.clear();
        self.at = 0;
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ProblemIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ProblemIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_pending(cx))?;
        // Canned error responses are small and written in one piece.
        if buf.len() < 512 {
            if let Some(r) = replacement(buf) {
                self.pending = r;
                self.at = 0;
                ready!(self.poll_pending(cx))?;
                return Poll::Ready(Ok(buf.len()));
            }
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_canned_codec_errors_are_replaced() {
        let canned = b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let r = String::from_utf8(replacement(canned).unwrap()).unwrap();
        assert!(r.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{r}");
        assert!(r.contains("application/problem+json"));
        assert!(r.contains("x-request-id: req_"));
        let app = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/problem+json\r\nx-request-id: r\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
        assert!(replacement(app).is_none());
        assert!(
            replacement(b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n")
                .is_none()
        );
    }
}
