//! A keep-alive front for the emulator, for the benchmarks.
//!
//! The emulator's HTTP server (werkzeug) answers every request with `Connection: close`, so a
//! function talking to it directly opens, and tears down, one TCP connection per AWS request:
//! CPU a function in AWS does not spend (DynamoDB and S3 keep connections alive), and a large
//! share of what a 10,000-request invocation measured here (a `perf` profile of initialize:
//! 11 % of its CPU in `connect`, 2 % in `shutdown`). The front keeps the functions' HTTP/1.1
//! connections open and forwards each request to the emulator on a connection of its own, so
//! the connection cost is the front's, in the benchmark's process, not the function's. Its
//! sockets run without Nagle's algorithm and each answer goes out in one write, so the front
//! adds no delayed-ACK stalls of its own.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Headers that belong to one connection, not to the request or answer forwarded.
const HOP_BY_HOP: [&str; 6] = ["connection", "keep-alive", "transfer-encoding", "content-length", "te", "upgrade"];

/// The front: its endpoint (`http://127.0.0.1:PORT`) forwards to the emulator's.
pub struct KeepAliveFront {
    pub endpoint: String,
    stop: Arc<AtomicBool>,
}

impl KeepAliveFront {
    /// Starts a front for `upstream` (`http://127.0.0.1:PORT`): one thread per connection.
    pub fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the keep-alive front");
        let port = listener.local_addr().expect("an address").port();
        let upstream = upstream.trim_start_matches("http://").trim_end_matches('/').to_owned();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let upstream = upstream.clone();
                std::thread::spawn(move || serve(conn, &upstream));
            }
        });
        Self { endpoint: format!("http://127.0.0.1:{port}"), stop }
    }
}

impl Drop for KeepAliveFront {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accepting thread so that it sees `stop`.
        let _ = TcpStream::connect(self.endpoint.trim_start_matches("http://"));
    }
}

/// One HTTP message: its first line, headers and body.
struct Message {
    first: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// Reads one message from `r`; `None` at the end of the connection. `until_close` reads a body
/// without a length to the end of the stream (an answer of a server that closes).
fn read_message(r: &mut impl BufRead, until_close: bool) -> Result<Option<Message>, String> {
    let mut first = String::new();
    if r.read_line(&mut first).map_err(|e| e.to_string())? == 0 {
        return Ok(None);
    }
    let first = first.trim_end().to_owned();
    let mut headers = Vec::new();
    let (mut length, mut chunked) = (None, false);
    let mut line = String::new();
    loop {
        line.clear();
        r.read_line(&mut line).map_err(|e| e.to_string())?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            let (k, v) = (k.trim(), v.trim());
            if k.eq_ignore_ascii_case("content-length") {
                length = v.parse::<usize>().ok();
            }
            if k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked") {
                chunked = true;
            }
            headers.push((k.to_owned(), v.to_owned()));
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            r.read_line(&mut line).map_err(|e| e.to_string())?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|e| format!("chunk size {line:?}: {e}"))?;
            let mut chunk = vec![0; size + 2];
            r.read_exact(&mut chunk).map_err(|e| e.to_string())?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(n) = length {
        body.resize(n, 0);
        r.read_exact(&mut body).map_err(|e| e.to_string())?;
    } else if until_close {
        r.read_to_end(&mut body).map_err(|e| e.to_string())?;
    }
    Ok(Some(Message { first, headers, body }))
}

/// `m` with its end-to-end headers, a `Content-Length` and `connection`, as one buffer.
fn encode(m: &Message, connection: &str) -> Vec<u8> {
    let mut head = format!("{}\r\n", m.first);
    for (k, v) in &m.headers {
        if !HOP_BY_HOP.contains(&k.to_ascii_lowercase().as_str()) && !k.eq_ignore_ascii_case("expect") {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    head.push_str(&format!("Content-Length: {}\r\nConnection: {connection}\r\n\r\n", m.body.len()));
    let mut out = head.into_bytes();
    out.extend_from_slice(&m.body);
    out
}

/// Serves one kept-alive connection of a function until it closes it.
fn serve(conn: TcpStream, upstream: &str) {
    let _ = conn.set_nodelay(true);
    let Ok(mut writer) = conn.try_clone() else { return };
    let mut reader = BufReader::new(conn);
    while let Ok(Some(req)) = read_message(&mut reader, false) {
        // The emulator did not answer (a dropped connection): nor does the front.
        let Ok(answer) = exchange(upstream, &req) else { return };
        if writer.write_all(&encode(&answer, "keep-alive")).is_err() {
            return;
        }
    }
}

/// One request to the emulator on a connection of its own, and its whole answer.
fn exchange(upstream: &str, req: &Message) -> Result<Message, String> {
    let mut stream = TcpStream::connect(upstream).map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    stream.write_all(&encode(req, "close")).map_err(|e| e.to_string())?;
    read_message(&mut BufReader::new(stream), true)?.ok_or_else(|| "no answer".to_owned())
}
