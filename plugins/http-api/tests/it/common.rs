//! Shared helpers: a fresh database per test, the two libraries built and run in the host's
//! engine, an HTTP client.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use logrelay::config::{Env, PluginsConfig};
use logrelay::engine::{Batch, Completed, DeliveryRef, Engine, EngineOptions, StartupErrors};
pub use logrelay_plugin_api::testing::postgres::TestDb;
use logrelay_plugin_api::{Level, Record};
use serde_json::Value;
use tokio::sync::mpsc::UnboundedReceiver;

pub const TOKEN: &str = "test-token-0123456789abcdef";
pub const T0: i64 = 1_700_000_000_000_000_000;

/// Builds liblogrelay_timescale.so and liblogrelay_http_api.so and returns their directory.
pub fn plugin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        logrelay_plugin_api::testing::build_libraries(&["logrelay-timescale", "logrelay-http-api"])
    })
}

/// `n` records from `first`: levels cycle, projects p0..p2, modules m0..m4, 1 ms apart.
pub fn records(first: usize, n: usize) -> Vec<Record> {
    (first..first + n)
        .map(|i| {
            Record::new(
                format!("r{i:06}"),
                T0 + i as i64 * 1_000_000,
                Level::ALL[i % 6],
                format!("p{}", i % 3),
                format!("m{}", i % 5),
                format!("Message number {i}"),
            )
            .with_attributes(format!(r#"{{"seq":{i}}}"#))
        })
        .collect()
}

/// The plugins.toml of a store and an API instance named `store` and `api`.
pub fn plugins_toml(db: &TestDb, api_config: &str) -> String {
    format!(
        r#"
[plugins.store]
type = "timescale"
[plugins.store.config]
url = "{}"

[plugins.api]
type = "http-api"
delivery = "best_effort"
[plugins.api.config]
listen = "127.0.0.1:0"
{api_config}
"#,
        db.url
    )
}

pub fn start_engine(
    text: &str,
) -> Result<(Arc<Engine>, UnboundedReceiver<Completed>), StartupErrors> {
    let config = PluginsConfig::parse(text, &Env::from_pairs([("X", "x")]), plugin_dir())
        .unwrap_or_else(|p| panic!("config refused: {p:?}"));
    Engine::start(
        &config,
        EngineOptions {
            channel_capacity: 8,
            call_timeout: Duration::from_secs(60),
            retry_max: Duration::from_millis(200),
            ..EngineOptions::default()
        },
    )
}

/// A running store + API over a fresh database.
pub struct Api {
    pub engine: Arc<Engine>,
    pub done: UnboundedReceiver<Completed>,
    pub base: String,
    pub client: reqwest::Client,
    pub token: Option<String>,
    pub _db: TestDb,
}

impl Api {
    /// Starts with a token and `extra` config lines.
    pub fn start(extra: &str) -> Api {
        Api::start_with(Some(TOKEN), extra)
    }

    pub fn start_with(token: Option<&str>, extra: &str) -> Api {
        let db = TestDb::new();
        let config = format!(
            "store = \"store\"\ntoken = \"{}\"\n{extra}",
            token.unwrap_or("")
        );
        let (engine, done) = start_engine(&plugins_toml(&db, &config))
            .unwrap_or_else(|e| panic!("the engine does not start: {e:?}"));
        let status: Value =
            serde_json::from_str(&engine.request("api", "status", "").expect("status"))
                .expect("status JSON");
        let base = format!("http://{}", status["listen"].as_str().expect("listen"));
        Api {
            engine,
            done,
            base,
            client: reqwest::Client::new(),
            token: token.map(str::to_owned),
            _db: db,
        }
    }

    /// Dispatches records through the engine and waits until the store has them.
    pub async fn dispatch(&mut self, records: Vec<Record>) {
        self.engine
            .dispatch(Batch::unflagged(
                self.engine.next_batch_id(),
                records,
                vec![DeliveryRef {
                    generation: 1,
                    tag: 1,
                }],
            ))
            .await;
        let c = tokio::time::timeout(Duration::from_secs(30), self.done.recv())
            .await
            .expect("the batch completes")
            .expect("engine alive");
        assert!(c.failed.is_empty(), "{:?}", c.failed);
    }

    /// Sends a request with the token (if any); returns the status and the JSON answer.
    pub async fn send(&self, method: &str, path: &str, body: Option<String>) -> (u16, Value) {
        self.send_as(self.token.as_deref(), method, path, body)
            .await
    }

    pub async fn send_as(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Option<String>,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        if let Some(b) = body {
            req = req.header("Content-Type", "application/json").body(b);
        }
        let res = req.send().await.expect("the request is answered");
        let status = res.status().as_u16();
        let text = res.text().await.expect("body");
        assert!(
            status < 500 || status == 503 || status == 504,
            "{status} for {path}: {text}"
        );
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send("GET", path, None).await
    }

    /// GET that must answer 200.
    pub async fn ok(&self, path: &str) -> Value {
        let (status, v) = self.get(path).await;
        assert_eq!(status, 200, "{path}: {v}");
        v
    }

    pub fn shutdown(self) {
        self.engine
            .shutdown(Instant::now() + Duration::from_secs(5));
    }
}

pub fn ids(page: &Value) -> Vec<String> {
    page["records"]
        .as_array()
        .unwrap_or_else(|| panic!("no records in {page}"))
        .iter()
        .map(|r| r["id"].as_str().expect("id").to_owned())
        .collect()
}

/// Expected ids, newest first.
pub fn expect(records: &[Record], keep: impl Fn(&Record) -> bool) -> Vec<String> {
    let mut v: Vec<&Record> = records.iter().filter(|r| keep(r)).collect();
    v.sort_by(|a, b| (b.timestamp_ns, b.id.as_str()).cmp(&(a.timestamp_ns, a.id.as_str())));
    v.into_iter().map(|r| r.id.to_string()).collect()
}

pub fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
