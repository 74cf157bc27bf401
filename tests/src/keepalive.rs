//! A keep-alive front for the emulator, for the benchmarks.
//!
//! The emulator's HTTP server (werkzeug) answers every request with `Connection: close`, so a
//! function talking to it directly opens, and tears down, one TCP connection per AWS request:
//! CPU a function in AWS does not spend (DynamoDB and S3 keep connections alive), and a large
//! share of what a 10,000-request invocation measured here (a `perf` profile of initialize:
//! 11 % of its CPU in `connect`, 2 % in `shutdown`). The front keeps the functions' HTTP/1.1
//! connections open and forwards each request to the emulator on a connection of its own, so
//! the connection cost is the front's, in the benchmark's process, not the function's.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

/// Headers that belong to one connection, not to the request or answer forwarded.
const HOP_BY_HOP: [&str; 6] = ["connection", "keep-alive", "transfer-encoding", "content-length", "te", "upgrade"];

/// The front: its endpoint (`http://127.0.0.1:PORT`) forwards to the emulator's.
pub struct KeepAliveFront {
    pub endpoint: String,
    server: Arc<tiny_http::Server>,
    workers: Vec<std::thread::JoinHandle<()>>,
}

impl KeepAliveFront {
    /// Starts a front for `upstream` (`http://127.0.0.1:PORT`) with `threads` requests served at
    /// once.
    pub fn start(upstream: &str, threads: usize) -> Self {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind the keep-alive front"));
        let port = server.server_addr().to_ip().map(|a| a.port()).expect("an IP address");
        let upstream = upstream.trim_start_matches("http://").trim_end_matches('/').to_owned();
        let workers = (0..threads.max(1))
            .map(|_| {
                let server = Arc::clone(&server);
                let upstream = upstream.clone();
                std::thread::spawn(move || {
                    while let Ok(req) = server.recv() {
                        forward(&upstream, req);
                    }
                })
            })
            .collect();
        Self { endpoint: format!("http://127.0.0.1:{port}"), server, workers }
    }
}

impl Drop for KeepAliveFront {
    fn drop(&mut self) {
        self.server.unblock();
        for _ in 0..self.workers.len() {
            self.server.unblock();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// An answer read from the emulator.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn forward(upstream: &str, mut req: tiny_http::Request) {
    let mut body = Vec::new();
    let answer =
        req.as_reader().read_to_end(&mut body).map_err(|e| e.to_string()).and_then(|_| exchange(upstream, &req, &body));
    // The emulator did not answer (a dropped connection): nor does the front (tiny_http answers
    // a request dropped unanswered with an error).
    if let Ok(a) = answer {
        let headers = a
            .headers
            .iter()
            .filter(|(k, _)| !HOP_BY_HOP.contains(&k.to_ascii_lowercase().as_str()))
            .filter_map(|(k, v)| tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()).ok())
            .collect();
        let len = a.body.len();
        let _ = req.respond(tiny_http::Response::new(
            tiny_http::StatusCode(a.status),
            headers,
            std::io::Cursor::new(a.body),
            Some(len),
            None,
        ));
    }
}

/// One request to the emulator on a connection of its own, and its whole answer.
fn exchange(upstream: &str, req: &tiny_http::Request, body: &[u8]) -> Result<Answer, String> {
    let mut stream = TcpStream::connect(upstream).map_err(|e| e.to_string())?;
    let mut head = format!("{} {} HTTP/1.1\r\n", req.method(), req.url());
    for h in req.headers() {
        let name = h.field.as_str().as_str();
        if !HOP_BY_HOP.contains(&name.to_ascii_lowercase().as_str()) && !name.eq_ignore_ascii_case("expect") {
            head.push_str(&format!("{name}: {}\r\n", h.value.as_str()));
        }
    }
    head.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n", body.len()));
    stream.write_all(head.as_bytes()).and_then(|_| stream.write_all(body)).map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).map_err(|e| e.to_string())?;
    let status = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or(format!("status line {line:?}"))?;
    let mut headers = Vec::new();
    let (mut length, mut chunked) = (None, false);
    loop {
        line.clear();
        reader.read_line(&mut line).map_err(|e| e.to_string())?;
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
            reader.read_line(&mut line).map_err(|e| e.to_string())?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|e| format!("chunk size {line:?}: {e}"))?;
            if size == 0 {
                break;
            }
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).map_err(|e| e.to_string())?;
            body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(n) = length {
        body.resize(n, 0);
        reader.read_exact(&mut body).map_err(|e| e.to_string())?;
    } else {
        reader.read_to_end(&mut body).map_err(|e| e.to_string())?;
    }
    Ok(Answer { status, headers, body })
}
