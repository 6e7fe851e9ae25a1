//! A fake Telegram Bot API server on 127.0.0.1, on its own runtime.

use std::net::TcpListener as StdListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::{Value, json};

/// One `sendMessage` the fake received.
#[derive(Debug, Clone)]
pub struct Sent {
    pub chat_id: i64,
    pub thread_id: Option<i64>,
    pub text: String,
    pub parse_mode: Option<String>,
    pub at: Instant,
}

#[derive(Default)]
struct Inner {
    sent: Vec<Sent>,
    updates: Vec<Value>,
    next_update: u64,
    fail_500: bool,
    answer_429: u32,
    retry_after: u64,
}

type Shared = Arc<Mutex<Inner>>;

pub struct Fake {
    pub port: u16,
    inner: Shared,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for Fake {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// A port nothing listens on (for now).
pub fn free_port() -> u16 {
    let l = StdListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

impl Fake {
    pub fn start() -> Fake {
        Fake::start_on(0)
    }

    pub fn start_on(port: u16) -> Fake {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let inner: Shared = Arc::default();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(("127.0.0.1", port)))
            .expect("bind the fake Bot API");
        let port = listener.local_addr().expect("addr").port();
        let app = Router::new()
            .route("/{bot}/{method}", post(handle))
            .with_state(inner.clone());
        runtime.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Fake {
            port,
            inner,
            runtime: Some(runtime),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("fake lock")
    }

    pub fn sent(&self) -> Vec<Sent> {
        self.lock().sent.clone()
    }

    pub fn texts(&self, chat: i64) -> Vec<String> {
        self.sent()
            .into_iter()
            .filter(|s| s.chat_id == chat)
            .map(|s| s.text)
            .collect()
    }

    pub fn fail_with_500(&self, on: bool) {
        self.lock().fail_500 = on;
    }

    pub fn answer_429(&self, times: u32, retry_after: u64) {
        let mut i = self.lock();
        i.answer_429 = times;
        i.retry_after = retry_after;
    }

    pub fn push_command(&self, chat: i64, text: &str) {
        let mut i = self.lock();
        i.next_update += 1;
        let id = i.next_update;
        let chat_json = if chat < 0 {
            json!({"id": chat, "type": "supergroup", "title": "ops"})
        } else {
            json!({"id": chat, "type": "private", "first_name": "Ann"})
        };
        i.updates.push(json!({
            "update_id": id,
            "message": {
                "message_id": id,
                "date": 1_700_000_000,
                "chat": chat_json,
                "from": {"id": 5, "is_bot": false, "first_name": "Ann"},
                "text": text,
                "entities": [{"type": "bot_command", "offset": 0, "length": text.split(' ').next().map_or(0, str::len)}]
            }
        }));
    }
}

async fn handle(
    State(inner): State<Shared>,
    Path((_bot, method)): Path<(String, String)>,
    body: Bytes,
) -> (StatusCode, String) {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    match method.to_ascii_lowercase().as_str() {
        "sendmessage" => {
            let mut i = inner.lock().expect("fake lock");
            if i.fail_500 {
                return (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({"ok": false, "error_code": 500, "description": "Internal Server Error"}).to_string(),
                );
            }
            if i.answer_429 > 0 {
                i.answer_429 -= 1;
                let after = i.retry_after;
                return (
                    StatusCode::TOO_MANY_REQUESTS,
                    json!({"ok": false, "error_code": 429, "description": format!("Too Many Requests: retry after {after}"), "parameters": {"retry_after": after}}).to_string(),
                );
            }
            let chat_id = body["chat_id"].as_i64().unwrap_or(0);
            let text = body["text"].as_str().unwrap_or_default().to_owned();
            i.sent.push(Sent {
                chat_id,
                thread_id: body["message_thread_id"].as_i64(),
                text: text.clone(),
                parse_mode: body["parse_mode"].as_str().map(str::to_owned),
                at: Instant::now(),
            });
            let id = i.sent.len();
            (
                StatusCode::OK,
                json!({"ok": true, "result": {
                    "message_id": id, "date": 1_700_000_000,
                    "chat": {"id": chat_id, "type": "private", "first_name": "Ann"},
                    "text": text
                }})
                .to_string(),
            )
        }
        "getupdates" => {
            let offset = body["offset"].as_u64().unwrap_or(0);
            let updates: Vec<Value> = inner
                .lock()
                .expect("fake lock")
                .updates
                .iter()
                .filter(|u| u["update_id"].as_u64().unwrap_or(0) >= offset)
                .cloned()
                .collect();
            if updates.is_empty() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (StatusCode::OK, json!({"ok": true, "result": updates}).to_string())
        }
        "getme" => (
            StatusCode::OK,
            json!({"ok": true, "result": {"id": 1, "is_bot": true, "first_name": "logrelay", "username": "logrelay_bot"}}).to_string(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            json!({"ok": false, "error_code": 404, "description": "Not Found"}).to_string(),
        ),
    }
}
