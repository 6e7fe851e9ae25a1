//! Shared helpers: configs, records, reading files back, a tiny HTTP client.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;

use logrelay_files::Files;
use logrelay_plugin_api::testing::Harness;
use logrelay_plugin_api::{Level, Record};

/// 2023-11-14T22:13:20.123456789Z
pub const TS: i64 = 1_700_000_000_123_456_789;

pub fn config(dir: &Path, extra: &str) -> String {
    format!("directory = \"{}\"\n{extra}\n", dir.display())
}

pub fn start(dir: &Path, extra: &str) -> Harness {
    Harness::start::<Files>(&config(dir, extra)).unwrap_or_else(|e| panic!("start: {e}"))
}

/// `n` records with ids `<prefix>-<i>`.
pub fn records(prefix: &str, n: usize) -> Vec<Record> {
    (0..n)
        .map(|i| {
            Record::new(
                format!("{prefix}-{i}"),
                TS + i as i64,
                Level::INFO,
                format!("p{}", i % 2),
                "m",
                format!("message {i} of {prefix}"),
            )
            .with_attributes(format!(r#"{{"seq":{i}}}"#))
        })
        .collect()
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Names in `dir`, sorted, hidden ones left out.
pub fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    names
}

/// The `id` of every JSON line of `text`.
pub fn ids(text: &str) -> Vec<String> {
    text.lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}"));
            v["id"].as_str().expect("id").to_owned()
        })
        .collect()
}

pub fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("gunzip");
    out
}

/// One HTTP/1.1 exchange over a raw TCP stream.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub fn http_get(address: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut stream = TcpStream::connect(address).expect("connect");
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).expect("send");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("receive");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let reply = Reply {
        status,
        headers,
        body: Vec::new(),
    };
    if reply
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        body = dechunk(&body);
    }
    Reply { body, ..reply }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(end) = raw.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(String::from_utf8_lossy(&raw[..end]).trim(), 16)
            .expect("chunk size");
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&raw[end + 2..end + 2 + size]);
        raw = &raw[end + 2 + size + 2..];
    }
}
