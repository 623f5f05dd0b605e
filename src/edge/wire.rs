//! hyper's own answers in our shape (DESIGN.md §4: every error answer the process gives, down
//! to the protocol level, is the envelope).
//!
//! A request head hyper cannot parse (a malformed request line, a target that is not a URI —
//! non-ASCII bytes —, two different `Content-Length`s, too many headers, a head too long) never
//! reaches the service: hyper writes `400`, `414` or `431` with an empty body itself and closes
//! the connection, and offers no hook to change that answer. Parsing request heads ourselves
//! before hyper would mean a second HTTP/1 parser (and its framing of bodies and pipelined
//! requests) in front of the real one. Instead [`Wire`] wraps the accepted stream and follows
//! what hyper *writes*, which is well-formed by construction: each answer's head, then its
//! body by its `Content-Length` or its chunks. Every answer the service gives is announced
//! before hyper can write it ([`Exchanges::request`], called as the service is), so an answer
//! head with no request owed for it is hyper's own. hyper writes one only between answers
//! (its connection state allows a parse error only when no answer is being written), as the
//! last thing on the connection. An error status there is replaced, whole, by the same status
//! with the envelope (or, where the request line names a webhook route, its provider's shape)
//! and `Connection: close`. Anything this reading does not understand (a body delimited by the
//! close, an upgrade, a head it cannot parse) turns it off for the rest of the connection:
//! bytes then pass untouched, so the worst case is hyper's empty answer, never a broken one.
//!
//! Which route: the first line of the bytes read after the previous answer was written
//! (requests are not pipelined by the providers or the platform; a pipelined request's line
//! is not seen, and its error takes the API's shape).

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use axum::http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::audience::{Audience, code_of};

/// Longest answer head followed; a longer one turns the following off.
const MAX_HEAD: usize = 64 * 1024;
/// How much of a request's first line is kept to tell its route.
const MAX_LINE: usize = 512;

/// The requests of one connection handed to the service whose answers hyper has not begun to
/// write, oldest first: whether each was a `HEAD` (its answer has no body).
#[derive(Debug, Default)]
pub(super) struct Exchanges(Mutex<VecDeque<bool>>);

impl Exchanges {
    /// The service was called for a request (before its answer can be written).
    pub(super) fn request(&self, head_only: bool) {
        self.lock().push_back(head_only);
    }

    fn answered(&self) -> Option<bool> {
        self.lock().pop_front()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<bool>> {
        // A panic while holding it cannot leave the queue half-changed.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Where the bytes hyper writes are, in the answer being written.
#[derive(Debug)]
enum Out {
    /// The start of an answer's head, collected until its blank line.
    Head(Vec<u8>),
    /// A body of known length: bytes left.
    Sized(u64),
    Chunked(Chunks),
    /// Not followed any more: passed on untouched to the end of the connection.
    Through,
}

/// The chunked encoding hyper writes: `size[;ext]\r\n data \r\n` … `0\r\n` trailers `\r\n`.
#[derive(Debug, Clone, Copy)]
enum Chunks {
    Size {
        size: u64,
        in_extension: bool,
    },
    Data(u64),
    /// The CR LF after a chunk's data: bytes left.
    DataEnd(u8),
    /// After the last chunk: trailer lines until an empty one.
    Trailers {
        line_empty: bool,
    },
}

impl Chunks {
    fn start() -> Chunks {
        Chunks::Size {
            size: 0,
            in_extension: false,
        }
    }

    /// Follows `bytes`; where the body ends in them, if it does.
    fn feed(&mut self, bytes: &[u8]) -> Option<usize> {
        let mut i = 0;
        while i < bytes.len() {
            match self {
                Chunks::Data(left) => {
                    let n = (*left).min((bytes.len() - i) as u64);
                    *left -= n;
                    i += n as usize;
                    if *left == 0 {
                        *self = Chunks::DataEnd(2);
                    }
                    continue;
                }
                Chunks::DataEnd(left) => {
                    *left -= 1;
                    if *left == 0 {
                        *self = Chunks::start();
                    }
                }
                Chunks::Size { size, in_extension } => match bytes[i] {
                    b'\n' if *size == 0 => *self = Chunks::Trailers { line_empty: true },
                    b'\n' => *self = Chunks::Data(*size),
                    b';' => *in_extension = true,
                    b if !*in_extension && b.is_ascii_hexdigit() => {
                        let digit = u64::from((b as char).to_digit(16).unwrap_or(0));
                        *size = size.saturating_mul(16).saturating_add(digit);
                    }
                    _ => {}
                },
                Chunks::Trailers { line_empty } => match bytes[i] {
                    b'\n' if *line_empty => return Some(i + 1),
                    b'\n' => *line_empty = true,
                    b'\r' => {}
                    _ => *line_empty = false,
                },
            }
            i += 1;
        }
        None
    }
}

/// The accepted stream, as hyper sees it: reads pass through (the first line of each request
/// kept), writes are followed answer by answer and hyper's own error answers rewritten.
pub(super) struct Wire<S> {
    io: S,
    exchanges: Arc<Exchanges>,
    out: Out,
    /// Bytes owed to the socket before any more of hyper's: a head once read whole, or the
    /// answer that replaces it.
    owed: Vec<u8>,
    owed_from: usize,
    /// The start of the request being read, while its first line is incomplete.
    line: Vec<u8>,
    reading_line: bool,
}

impl<S> Wire<S> {
    pub(super) fn new(io: S, exchanges: Arc<Exchanges>) -> Wire<S> {
        Wire {
            io,
            exchanges,
            out: Out::Head(Vec::new()),
            owed: Vec::new(),
            owed_from: 0,
            line: Vec::new(),
            reading_line: true,
        }
    }

    /// An answer was written whole: the next bytes read start the next request.
    fn answer_done(&mut self) {
        self.out = Out::Head(Vec::new());
        self.line.clear();
        self.reading_line = true;
    }

    fn owe(&mut self, bytes: Vec<u8>) {
        self.owed = bytes;
        self.owed_from = 0;
    }

    /// A whole answer head: what to send for it, and how its body is framed.
    fn head_done(&mut self, head: Vec<u8>) {
        let Some(parsed) = parse_head(&head) else {
            self.owe(head);
            self.out = Out::Through;
            return;
        };
        if parsed.status == 101 {
            self.owe(head);
            self.out = Out::Through;
            return;
        }
        if parsed.status < 200 {
            // 100 Continue: the final answer follows.
            self.owe(head);
            return;
        }
        let Some(head_only) = self.exchanges.answered() else {
            // No request owed an answer: hyper's own.
            let replaced = (parsed.status >= 400)
                .then(|| self.replacement(parsed.status))
                .flatten();
            self.owe(replaced.unwrap_or(head));
            self.out = Out::Through;
            return;
        };
        self.owe(head);
        let bodiless = head_only || parsed.status == 204 || parsed.status == 304;
        match (bodiless, parsed.chunked, parsed.length) {
            (true, _, _) | (false, false, Some(0)) => self.answer_done(),
            (false, true, _) => self.out = Out::Chunked(Chunks::start()),
            (false, false, Some(n)) => self.out = Out::Sized(n),
            // Delimited by the close.
            (false, false, None) => self.out = Out::Through,
        }
    }

    /// The answer that replaces hyper's bodiless `status`, in the shape of the route the
    /// request line names; `None` for the simulator's routes, which answer as providers do.
    fn replacement(&self, status: u16) -> Option<Vec<u8>> {
        let status = StatusCode::from_u16(status).ok()?;
        let audience = target_path(&self.line).map_or(Audience::Api, Audience::of);
        let message = match status {
            StatusCode::BAD_REQUEST => {
                "the request is not valid HTTP/1.1 (its request line, target or headers)"
            }
            StatusCode::URI_TOO_LONG => "the request target is too long",
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => {
                "the request has too many headers, or too large ones"
            }
            _ => status.canonical_reason().unwrap_or("error"),
        };
        let (content_type, body) = match audience {
            Audience::Sandbox => return None,
            Audience::Alipay => ("text/plain; charset=utf-8", "fail".to_owned()),
            Audience::Wechat => (
                "application/json",
                serde_json::json!({"code": "FAIL", "message": message}).to_string(),
            ),
            Audience::Api | Audience::Console => (
                "application/json",
                crate::error::envelope(code_of(status), message).to_string(),
            ),
        };
        let head = format!(
            "HTTP/1.1 {} {}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\
             connection: close\r\n\r\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or(""),
            body.len()
        );
        Some([head.into_bytes(), body.into_bytes()].concat())
    }
}

impl<S> Wire<S> {
    /// After a head that ended `taken` bytes into `buf`: the body of known length that follows
    /// in this same buffer goes out with its head in one write, as hyper would have sent them
    /// (a second write per answer costs a system call on every request). All that was taken.
    fn body_with_head(&mut self, buf: &[u8], mut taken: usize) -> usize {
        if let Out::Sized(left) = &mut self.out {
            let rest = &buf[taken..];
            let n = rest.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
            self.owed.extend_from_slice(&rest[..n]);
            *left -= n as u64;
            taken += n;
            if *left == 0 {
                self.answer_done();
            }
        }
        taken
    }
}

impl<S: AsyncWrite + Unpin> Wire<S> {
    /// Writes what is owed; ready once it all is.
    fn poll_owed(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.owed_from < self.owed.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.owed[self.owed_from..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.owed_from += n;
        }
        self.owed.clear();
        self.owed_from = 0;
        Poll::Ready(Ok(()))
    }
}

struct Head {
    status: u16,
    length: Option<u64>,
    chunked: bool,
}

fn parse_head(head: &[u8]) -> Option<Head> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    let status = lines
        .next()?
        .strip_prefix("HTTP/1.")?
        .get(2..5)?
        .parse::<u16>()
        .ok()?;
    let mut parsed = Head {
        status,
        length: None,
        chunked: false,
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            parsed.length = Some(value.parse().ok()?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            parsed.chunked = value
                .rsplit(',')
                .next()
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
        }
    }
    Some(parsed)
}

/// Adds to `head` what of `buf` can still be an answer head (not a large body behind it):
/// how many bytes were added, and where the head ends in `head` once its blank line is in.
fn extend_head(head: &mut Vec<u8>, buf: &[u8]) -> (usize, Option<usize>) {
    let seen = head.len();
    let piece = &buf[..buf.len().min((MAX_HEAD + 4).saturating_sub(seen).max(1))];
    head.extend_from_slice(piece);
    let from = seen.saturating_sub(3);
    let end = head[from..]
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| from + at + 4);
    (piece.len(), end)
}

/// The path of a request line (`METHOD SP target SP version`), if it is readable.
fn target_path(line: &[u8]) -> Option<&str> {
    let line = line.split(|b| *b == b'\n').next()?;
    let target = line.split(|b| *b == b' ').nth(1)?;
    let path = target.split(|b| *b == b'?').next()?;
    std::str::from_utf8(path).ok()
}

impl<S: AsyncRead + Unpin> AsyncRead for Wire<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
        if this.reading_line {
            let read = &buf.filled()[before..];
            let room = MAX_LINE - this.line.len();
            this.line.extend_from_slice(&read[..read.len().min(room)]);
            if this.line.contains(&b'\n') || this.line.len() >= MAX_LINE {
                this.reading_line = false;
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Wire<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_owed(cx))?;
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        match &mut this.out {
            Out::Head(head) => {
                let seen = head.len();
                let (piece, end) = extend_head(head, buf);
                let taken = match end {
                    Some(end) => {
                        head.truncate(end);
                        let head = std::mem::take(head);
                        this.head_done(head);
                        this.body_with_head(buf, end - seen)
                    }
                    None if head.len() > MAX_HEAD => {
                        let head = std::mem::take(head);
                        this.owe(head);
                        this.out = Out::Through;
                        piece
                    }
                    None => piece,
                };
                // Taken in: written now if the socket takes it, else by the next write or
                // flush (hyper flushes after every write burst).
                if let Poll::Ready(Err(e)) = this.poll_owed(cx) {
                    return Poll::Ready(Err(e));
                }
                Poll::Ready(Ok(taken))
            }
            Out::Sized(left) => {
                let n = buf.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                let written = ready!(Pin::new(&mut this.io).poll_write(cx, &buf[..n]))?;
                *left -= written as u64;
                if *left == 0 {
                    this.answer_done();
                }
                Poll::Ready(Ok(written))
            }
            Out::Chunked(chunks) => {
                // Never write past the body's end: the next answer's head is read first.
                let mut probe = *chunks;
                let end = probe.feed(buf);
                let n = end.unwrap_or(buf.len());
                let written = ready!(Pin::new(&mut this.io).poll_write(cx, &buf[..n]))?;
                let done = chunks.feed(&buf[..written]).is_some();
                if done {
                    this.answer_done();
                }
                Poll::Ready(Ok(written))
            }
            Out::Through => Pin::new(&mut this.io).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_owed(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_owed(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    use super::*;

    const ERROR_400: &[u8] = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ndate: x\r\n\r\n";

    /// A wire over one end of a pipe; the other end is the client.
    fn wire() -> (Wire<DuplexStream>, DuplexStream, Arc<Exchanges>) {
        let (client, server) = tokio::io::duplex(1 << 16);
        let exchanges = Arc::new(Exchanges::default());
        (Wire::new(server, exchanges.clone()), client, exchanges)
    }

    /// Writes `parts` as hyper would (each a write call, possibly split), then closes.
    async fn hyper_writes(mut wire: Wire<DuplexStream>, parts: &[&[u8]], split: usize) {
        for part in parts {
            for piece in part.chunks(split) {
                wire.write_all(piece).await.unwrap();
            }
            wire.flush().await.unwrap();
        }
        wire.shutdown().await.unwrap();
    }

    async fn client_reads(mut client: DuplexStream) -> String {
        let mut out = Vec::new();
        client.read_to_end(&mut out).await.unwrap();
        String::from_utf8(out).unwrap()
    }

    fn envelope_400() -> String {
        let body = r#"{"error":{"code":"bad_request","message":"the request is not valid HTTP/1.1 (its request line, target or headers)"}}"#;
        format!(
            "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             connection: close\r\n\r\n{body}",
            body.len()
        )
    }

    #[tokio::test]
    async fn served_answers_pass_untouched_and_hyper_s_own_error_becomes_the_envelope() {
        let sized: &[u8] = b"HTTP/1.1 404 Not Found\r\ncontent-length: 5\r\n\r\nHTTP/";
        let chunked: &[u8] =
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;x=1\r\nHTTP/\r\n3\r\n1.1\r\n0\r\nx-t: 1\r\n\r\n";
        let head_answer: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n";
        let continued: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
        let empty: &[u8] = b"HTTP/1.1 204 No Content\r\n\r\n";
        for split in [1, 3, 1 << 16] {
            let (wire, client, exchanges) = wire();
            for head_only in [false, false, true, false, false] {
                exchanges.request(head_only);
            }
            let parts = [
                sized,
                chunked,
                head_answer,
                continued,
                sized,
                empty,
                ERROR_400,
            ];
            let (_, seen) = tokio::join!(hyper_writes(wire, &parts, split), client_reads(client));
            let served: String = parts[..6]
                .iter()
                .map(|p| String::from_utf8_lossy(p))
                .collect();
            assert_eq!(seen, format!("{served}{}", envelope_400()), "split {split}");
        }
    }

    /// Records each write the wire makes to the socket.
    #[derive(Default)]
    struct Recorder(Vec<Vec<u8>>);

    impl AsyncWrite for Recorder {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.get_mut().0.push(buf.to_vec());
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn a_served_answer_written_whole_reaches_the_socket_in_one_write() {
        let exchanges = Arc::new(Exchanges::default());
        let mut wire = Wire::new(Recorder::default(), exchanges.clone());
        let answer: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
        for _ in 0..2 {
            exchanges.request(false);
            wire.write_all(answer).await.unwrap();
            wire.flush().await.unwrap();
        }
        assert_eq!(wire.io.0, vec![answer.to_vec(), answer.to_vec()]);
    }

    #[tokio::test]
    async fn a_body_and_the_next_head_in_one_write_are_told_apart() {
        let (wire, client, exchanges) = wire();
        exchanges.request(false);
        let both: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n";
        let parts = [both];
        let (_, seen) = tokio::join!(hyper_writes(wire, &parts, 1 << 16), client_reads(client));
        assert_eq!(
            seen,
            format!(
                "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok{}",
                envelope_400()
            )
        );
    }

    /// The route is the request line's: a webhook's error is in its provider's shape.
    #[tokio::test]
    async fn the_request_line_picks_the_providers_shape() {
        for (line, expected) in [
            (
                &b"POST /webhooks/wechatpay HTTP/1.1\r\nX: y\r\n"[..],
                r#"{"code":"FAIL","message":"the request has too many headers, or too large ones"}"#,
            ),
            (&b"POST /webhooks/alipay?x HTTP/1.1\r\n"[..], "fail"),
            (&b"GET /sandbox/x HTTP/1.1\r\n"[..], ""),
            (&b"GET /\xff HTTP/1.1\r\n"[..], "headers_too_large"),
        ] {
            let (mut wire, mut client, _) = wire();
            // The request comes in a byte at a time.
            for b in line {
                client.write_all(&[*b]).await.unwrap();
                let mut one = [0u8; 1];
                wire.read_exact(&mut one).await.unwrap();
            }
            let error: &[u8] =
                b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n";
            let parts = [error];
            let (_, seen) = tokio::join!(hyper_writes(wire, &parts, 1 << 16), client_reads(client));
            assert!(seen.starts_with("HTTP/1.1 431 "), "{seen}");
            if expected.is_empty() {
                assert_eq!(
                    seen.as_bytes(),
                    error,
                    "the simulator's answers are left alone"
                );
            } else {
                assert!(
                    seen.ends_with(expected) || seen.contains(expected),
                    "{seen}"
                );
            }
        }
    }

    #[tokio::test]
    async fn what_is_not_understood_passes_untouched() {
        let (wire, client, exchanges) = wire();
        exchanges.request(false);
        // A body delimited by the close: nothing after it is read as a head.
        let parts: [&[u8]; 2] = [
            b"HTTP/1.1 200 OK\r\n\r\nHTTP/1.1 400 Bad",
            b" Request\r\n\r\n",
        ];
        let (_, seen) = tokio::join!(hyper_writes(wire, &parts, 7), client_reads(client));
        assert_eq!(
            seen,
            "HTTP/1.1 200 OK\r\n\r\nHTTP/1.1 400 Bad Request\r\n\r\n"
        );
    }
}
