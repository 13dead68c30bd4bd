//! Minimal clients for the hot path: one TCP connection, one request in flight, the
//! request's bytes written as they go on the wire and the reply read back. The load
//! generator shares the machine's cores with the server it measures, so a general
//! client's per-request work (URL parsing, header maps, pools, channels to a driver
//! task) would be taken from the server; yunquan's HTTP and Redis's RESP get the same
//! lean treatment, so neither is slowed by its client more than the other.

use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest a reply may take, in seconds, before the request counts as failed.
pub const REPLY_TIMEOUT_S: u64 = 15;
/// Largest reply header block accepted, in bytes.
const HEADER_BYTES_MAX: usize = 16 * 1024;
/// Largest reply body accepted, in bytes.
const BODY_BYTES_MAX: usize = 1024 * 1024;
/// Read buffer growth step, in bytes.
const READ_CHUNK_BYTES: usize = 4 * 1024;

/// One keep-alive connection to `addr`, opened on first use and again after a failure.
#[derive(Debug)]
pub struct Conn {
    /// Where to connect.
    addr: SocketAddr,
    /// The open connection, if any.
    stream: Option<TcpStream>,
    /// Bytes read and not yet consumed.
    buf: Vec<u8>,
}

/// An HTTP/1.1 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpReply {
    /// Status code.
    pub status: u16,
    /// Body.
    pub body: Vec<u8>,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn bad(what: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.into())
}

/// Parses a complete header block (without the blank line): status, Content-Length,
/// and whether the server will close the connection.
pub fn parse_head(head: &[u8]) -> std::io::Result<(u16, usize, bool)> {
    let text = std::str::from_utf8(head).map_err(|_| bad("reply headers are not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(bad(format!("not an HTTP/1 reply: {status_line:?}")));
    }
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| bad(format!("no status in {status_line:?}")))?;
    let mut length = None;
    let mut close = version == "HTTP/1.0";
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .parse::<usize>()
                    .map_err(|_| bad(format!("bad Content-Length {value:?}")))?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(bad(format!("Transfer-Encoding {value} is not supported")));
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        }
    }
    // A reply without a length (and not chunked) has no body only for these statuses.
    let length = match length {
        Some(n) => n,
        None if status == 204 || status == 304 || status < 200 => 0,
        None => return Err(bad("reply has no Content-Length")),
    };
    if length > BODY_BYTES_MAX {
        return Err(bad(format!("reply body of {length} bytes is too large")));
    }
    Ok((status, length, close))
}

impl Conn {
    /// A connection to `addr`, not opened yet.
    pub fn new(addr: SocketAddr) -> Conn {
        Conn {
            addr,
            stream: None,
            buf: Vec::with_capacity(READ_CHUNK_BYTES),
        }
    }

    async fn stream(&mut self) -> std::io::Result<&mut TcpStream> {
        if self.stream.is_none() {
            let s = TcpStream::connect(self.addr).await?;
            s.set_nodelay(true)?;
            self.buf.clear();
            self.stream = Some(s);
        }
        self.stream
            .as_mut()
            .ok_or_else(|| bad("connection unavailable"))
    }

    /// Reads more bytes into the buffer; an end of stream is an error.
    async fn fill(&mut self) -> std::io::Result<()> {
        let start = self.buf.len();
        self.buf.resize(start + READ_CHUNK_BYTES, 0);
        let n = match self.stream.as_mut() {
            Some(s) => s.read(&mut self.buf[start..]).await,
            None => Err(bad("not connected")),
        };
        self.buf.truncate(start + *n.as_ref().unwrap_or(&0));
        match n {
            Ok(0) => Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(_) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Reads until the buffer holds `delimiter`; returns where it starts. More than
    /// [`HEADER_BYTES_MAX`] bytes without it is an error naming `what`.
    async fn fill_until(&mut self, delimiter: &[u8], what: &str) -> std::io::Result<usize> {
        loop {
            if let Some(i) = find(&self.buf, delimiter) {
                return Ok(i);
            }
            if self.buf.len() > HEADER_BYTES_MAX {
                return Err(bad(format!("{what} too long")));
            }
            self.fill().await?;
        }
    }

    async fn exchange<T>(
        &mut self,
        request: &[u8],
        read: impl AsyncFnOnce(&mut Conn) -> std::io::Result<T>,
    ) -> std::io::Result<T> {
        let out = tokio::time::timeout(Duration::from_secs(REPLY_TIMEOUT_S), async {
            self.stream().await?.write_all(request).await?;
            read(self).await
        })
        .await
        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()));
        if out.is_err() {
            // The connection's state is unknown; the next request opens a new one.
            self.stream = None;
            self.buf.clear();
        }
        out
    }

    /// Sends one HTTP/1.1 request (complete bytes) and reads its reply.
    pub async fn http(&mut self, request: &[u8]) -> std::io::Result<HttpReply> {
        self.exchange(request, async |c: &mut Conn| {
            let head_end = c.fill_until(b"\r\n\r\n", "reply headers").await?;
            let (status, length, close) = parse_head(&c.buf[..head_end])?;
            let body_start = head_end + 4;
            while c.buf.len() < body_start + length {
                c.fill().await?;
            }
            let body = c.buf[body_start..body_start + length].to_vec();
            c.buf.drain(..body_start + length);
            if close {
                c.stream = None;
            }
            Ok(HttpReply { status, body })
        })
        .await
    }

    /// Sends one RESP command (complete bytes) and reads a one-line reply: an integer
    /// (`:n`) as `Ok(Ok(n))`, an error (`-...`) as `Ok(Err(text))`.
    pub async fn resp_line(&mut self, request: &[u8]) -> std::io::Result<Result<i64, String>> {
        self.exchange(request, async |c: &mut Conn| {
            let end = c.fill_until(b"\r\n", "reply line").await?;
            let line = String::from_utf8_lossy(&c.buf[..end]).into_owned();
            c.buf.drain(..end + 2);
            match line.as_bytes().first() {
                Some(b':') => line[1..]
                    .parse::<i64>()
                    .map(Ok)
                    .map_err(|_| bad(format!("bad integer reply {line:?}"))),
                Some(b'-') => Ok(Err(line[1..].to_owned())),
                _ => Err(bad(format!("unexpected reply {line:?}"))),
            }
        })
        .await
    }
}

/// Appends one RESP array of bulk strings (a command) to `out`.
pub fn resp_command(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[test]
    fn heads_are_parsed_or_refused() {
        let ok = b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\nContent-Length: 12";
        assert_eq!(parse_head(ok).unwrap(), (201, 12, false));
        let close = b"HTTP/1.1 409 Conflict\r\nconnection: close\r\ncontent-length: 0";
        assert_eq!(parse_head(close).unwrap(), (409, 0, true));
        assert!(parse_head(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nx: y").is_err());
        assert!(parse_head(b"SSH-2.0-OpenSSH").is_err());
        assert!(parse_head(b"HTTP/1.1 abc OK").is_err());
    }

    #[test]
    fn commands_are_encoded_as_resp_arrays() {
        let mut out = Vec::new();
        resp_command(&mut out, &[b"EVALSHA", b"ab", b"2"]);
        assert_eq!(out, b"*3\r\n$7\r\nEVALSHA\r\n$2\r\nab\r\n$1\r\n2\r\n");
    }

    #[tokio::test]
    async fn http_replies_split_across_reads_and_keep_alive_work() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            for reply in [
                &b"HTTP/1.1 201 Created\r\ncontent-length: 5\r\n\r\nhello"[..],
                &b"HTTP/1.1 409 Conflict\r\ncontent-length: 2\r\n\r\nno"[..],
            ] {
                let _ = s.read(&mut buf).await.unwrap();
                // Two writes: the client must wait for the whole body.
                let (a, b) = reply.split_at(reply.len() - 3);
                s.write_all(a).await.unwrap();
                s.flush().await.unwrap();
                s.write_all(b).await.unwrap();
            }
        });
        let mut c = Conn::new(addr);
        let r = c.http(b"POST / HTTP/1.1\r\n\r\n").await.unwrap();
        assert_eq!((r.status, r.body.as_slice()), (201, &b"hello"[..]));
        let r = c.http(b"POST / HTTP/1.1\r\n\r\n").await.unwrap();
        assert_eq!((r.status, r.body.as_slice()), (409, &b"no"[..]));
        server.await.unwrap();
        // The server is gone: the next request fails rather than hangs.
        assert!(c.http(b"POST / HTTP/1.1\r\n\r\n").await.is_err());
    }

    #[tokio::test]
    async fn resp_integer_and_error_replies() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            for reply in [
                &b":-1\r\n"[..],
                b"-NOSCRIPT No matching script\r\n",
                b"+OK\r\n",
            ] {
                let _ = s.read(&mut buf).await.unwrap();
                s.write_all(reply).await.unwrap();
            }
        });
        let mut c = Conn::new(addr);
        assert_eq!(c.resp_line(b"x").await.unwrap(), Ok(-1));
        assert_eq!(
            c.resp_line(b"x").await.unwrap(),
            Err("NOSCRIPT No matching script".to_owned())
        );
        assert!(c.resp_line(b"x").await.is_err());
        server.await.unwrap();
    }
}
