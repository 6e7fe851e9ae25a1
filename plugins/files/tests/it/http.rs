//! The HTTP API over a real socket: auth, listing, download, Range, refusals.

use crate::common::{http_get, records, start};

const TOKEN: &str = "s3cret-token";

fn address(h: &logrelay_plugin_api::testing::Harness) -> String {
    let status: serde_json::Value =
        serde_json::from_str(&h.request("status", "").expect("status")).expect("json");
    status["http_address"]
        .as_str()
        .expect("listening")
        .to_owned()
}

#[test]
fn list_download_ranges_and_refusals() {
    let dir = tempfile::tempdir().expect("tempdir");
    let h = start(
        dir.path(),
        &format!(
            "http_listen_address = \"127.0.0.1:0\"\nhttp_token = \"{TOKEN}\"\ncompression = \"gzip\""
        ),
    );
    let addr = address(&h);
    let auth = ("Authorization", "Bearer s3cret-token");
    h.handle_batch(&records("a", 20)).expect("written");
    h.request("rotate", "").expect("rotate");
    h.handle_batch(&records("b", 5)).expect("written");
    h.request("flush", "").expect("flush");
    let current = std::fs::read(dir.path().join("logrelay.log")).expect("read");
    let len = current.len();

    // No token, a wrong token, a longer one.
    for headers in [
        vec![],
        vec![("Authorization", "Bearer wrong")],
        vec![("Authorization", "Bearer s3cret-token-and-more")],
    ] {
        let r = http_get(&addr, "/files", &headers);
        assert_eq!(r.status, 401);
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    }

    let r = http_get(&addr, "/files", &[auth]);
    assert_eq!(r.status, 200);
    let list: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
    let files = list["files"].as_array().expect("files");
    let listed: Vec<(&str, &str)> = files
        .iter()
        .map(|f| {
            (
                f["name"].as_str().expect("name"),
                f["kind"].as_str().expect("kind"),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            ("logrelay.log", "current"),
            ("logrelay.log.1.gz", "archive")
        ]
    );
    assert_eq!(files[0]["size"], len as u64);
    assert!(
        files[0]["modified"]
            .as_str()
            .expect("modified")
            .ends_with('Z')
    );

    let r = http_get(&addr, "/files/logrelay.log", &[auth]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    assert_eq!(r.body, current);
    let archive = std::fs::read(dir.path().join("logrelay.log.1.gz")).expect("archive");
    assert_eq!(
        http_get(&addr, "/files/logrelay.log.1.gz", &[auth]).body,
        archive
    );

    let r = http_get(
        &addr,
        "/files/logrelay.log",
        &[auth, ("Range", "bytes=10-19")],
    );
    assert_eq!(r.status, 206);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 10-19/{len}").as_str())
    );
    assert_eq!(r.body, &current[10..20]);
    let r = http_get(&addr, "/files/logrelay.log", &[auth, ("Range", "bytes=-7")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &current[len - 7..]);
    let r = http_get(
        &addr,
        "/files/logrelay.log",
        &[auth, ("Range", "bytes=100-")],
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &current[100..]);
    assert_eq!(
        r.header("content-length"),
        Some((len - 100).to_string().as_str())
    );
    let r = http_get(
        &addr,
        "/files/logrelay.log",
        &[auth, ("Range", &format!("bytes={len}-"))],
    );
    assert_eq!(r.status, 416);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes */{len}").as_str())
    );
    let r = http_get(
        &addr,
        "/files/logrelay.log",
        &[auth, ("Range", "bytes=0-1,5-6")],
    );
    assert_eq!(r.status, 200, "several ranges: the whole file");
    assert_eq!(r.body, current);

    // Leaving the directory, by name or by link.
    for bad in [
        "/files/..%2F..%2Fetc%2Fpasswd",
        "/files/%2Fetc%2Fpasswd",
        "/files/..",
        "/files/.logrelay.log.1.gz.tmp",
        "/files/%2e%2e%2flogrelay.log",
    ] {
        let r = http_get(&addr, bad, &[auth]);
        assert!(r.status == 400 || r.status == 404, "{bad}: {}", r.status);
        assert!(!String::from_utf8_lossy(&r.body).contains("root:"), "{bad}");
    }
    std::os::unix::fs::symlink("/etc/passwd", dir.path().join("logrelay.log.9")).expect("symlink");
    let r = http_get(&addr, "/files/logrelay.log.9", &[auth]);
    assert_eq!(r.status, 403);
    assert_eq!(http_get(&addr, "/files/not-ours.txt", &[auth]).status, 404);
    assert_eq!(
        http_get(&addr, "/files/logrelay.log.77", &[auth]).status,
        404
    );
    h.shutdown().expect("shutdown");
}

#[test]
fn without_a_token_the_server_needs_an_explicit_opt_in() {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = logrelay_plugin_api::testing::Harness::start::<logrelay_files::Files>(
        &crate::common::config(dir.path(), "http_listen_address = \"127.0.0.1:0\""),
    )
    .err()
    .expect("refused");
    assert!(e.message.contains("http_allow_unauthenticated"), "{e}");
    let h = start(
        dir.path(),
        "http_listen_address = \"127.0.0.1:0\"\nhttp_allow_unauthenticated = true",
    );
    assert_eq!(http_get(&address(&h), "/files", &[]).status, 200);
}

/// A server that answers 500 to the first PUT and 201 to the next, keeping what it got.
fn flaky_server() -> (String, std::sync::mpsc::Receiver<(String, Vec<u8>)>) {
    use std::io::{BufRead as _, BufReader, Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut first = String::new();
            reader.read_line(&mut first).expect("request line");
            let mut len = 0;
            let mut auth = String::new();
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).expect("header");
                if line.trim().is_empty() {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    len = v.trim().parse().expect("length");
                }
                if lower.starts_with("authorization:") {
                    auth = line.trim().to_owned();
                }
            }
            let mut body = vec![0; len];
            reader.read_exact(&mut body).expect("body");
            let status = if n == 0 {
                "500 Internal Server Error"
            } else {
                "201 Created"
            };
            let _ = stream.write_all(
                format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            );
            let _ = tx.send((format!("{} {auth}", first.trim()), body));
        }
    });
    (address, rx)
}

#[test]
fn finished_archives_are_put_with_retries() {
    let (server, received) = flaky_server();
    let dir = tempfile::tempdir().expect("tempdir");
    let h = start(
        dir.path(),
        &format!(
            "archive_upload_url = \"http://{server}/up/{{name}}\"\narchive_upload_token = \"up-token\"\narchive_upload_backoff_ms = 20"
        ),
    );
    h.handle_batch(&records("u", 50)).expect("written");
    h.request("rotate", "").expect("rotate");
    h.request("flush", "").expect("flush");
    let archive = std::fs::read(dir.path().join("logrelay.log.1.gz")).expect("archive");
    let (first, _) = received.recv().expect("first try");
    assert_eq!(
        first,
        "PUT /up/logrelay.log.1.gz HTTP/1.1 authorization: Bearer up-token"
    );
    let (second, body) = received.recv().expect("second try");
    assert!(second.starts_with("PUT /up/logrelay.log.1.gz"), "{second}");
    assert_eq!(body, archive);
}
