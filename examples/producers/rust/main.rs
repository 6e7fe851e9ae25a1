//! Ship Rust `tracing` events to logrelay through RabbitMQ (lapin).
//!
//! `AmqpLayer` is a `tracing_subscriber` layer: each event becomes one JSON object
//! (`timestamp` in epoch nanoseconds, `level`, `project`, `target`, `fields` with `message`,
//! `spans` with the names of the spans it is in) published to the `logs` exchange by a task
//! that waits for the broker's confirms. Copy `AmqpLayer` and `Publisher` into your program:
//!
//! ```ignore
//! let (layer, publisher) = AmqpLayer::connect(url, "logs", "shop").await?;
//! tracing_subscriber::registry().with(layer).init();
//! tracing::error!(order = "A-1", error = %e, "payment failed");
//! publisher.close().await; // at exit: everything sent and confirmed
//! ```
//!
//! Run: `cargo run -p logrelay --example tracing_producer` (env `LOGRELAY_AMQP_URL`,
//! `LOGRELAY_EXCHANGE`, `LOGRELAY_PROJECT`; `LOGRELAY_PRINT=1` also prints each body).

use std::time::{SystemTime, UNIX_EPOCH};

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;

/// Turns events into JSON bodies and hands them to the [`Publisher`]'s task.
pub struct AmqpLayer {
    project: String,
    bodies: mpsc::UnboundedSender<String>,
    echo: bool,
}

/// The task publishing the bodies; [`Publisher::close`] waits until all are confirmed.
pub struct Publisher(tokio::task::JoinHandle<Result<(), lapin::Error>>);

impl AmqpLayer {
    /// Connects to RabbitMQ at `url`; events are published to `exchange` with the routing key
    /// `project`, and carry `project`.
    pub async fn connect(
        url: &str,
        exchange: &str,
        project: &str,
    ) -> Result<(AmqpLayer, Publisher), lapin::Error> {
        let connection = Connection::connect(url, ConnectionProperties::default()).await?;
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let (bodies, mut rx) = mpsc::unbounded_channel::<String>();
        let (exchange, key) = (exchange.to_owned(), project.to_owned());
        let task = tokio::spawn(async move {
            let mut confirms = Vec::new();
            while let Some(body) = rx.recv().await {
                let properties = BasicProperties::default().with_delivery_mode(2);
                let publish = channel.basic_publish(
                    exchange.as_str().into(),
                    key.as_str().into(),
                    BasicPublishOptions::default(),
                    body.as_bytes(),
                    properties,
                );
                confirms.push(publish.await?);
            }
            for confirm in confirms {
                confirm.await?;
            }
            connection.close(0, "bye".into()).await
        });
        let echo = std::env::var("LOGRELAY_PRINT").is_ok_and(|v| v == "1");
        let layer = AmqpLayer {
            project: project.to_owned(),
            bodies,
            echo,
        };
        Ok((layer, Publisher(task)))
    }
}

impl Publisher {
    /// Waits for every body sent so far to be confirmed (after the subscriber is dropped or
    /// no longer logs).
    pub async fn close(self) -> Result<(), lapin::Error> {
        self.0.await.unwrap_or(Ok(()))
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for AmqpLayer {
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let mut fields = Fields(Map::new());
        event.record(&mut fields);
        let spans: Vec<&str> = ctx
            .event_scope(event)
            .map(|scope| scope.from_root().map(|span| span.name()).collect())
            .unwrap_or_default();
        let meta = event.metadata();
        let body = json!({
            "timestamp": nanos,
            "level": meta.level().as_str(),
            "project": self.project,
            "target": meta.target(),
            "fields": fields.0,
            "spans": spans,
        })
        .to_string();
        if self.echo {
            println!("{body}");
        }
        // The publisher is gone only after close: nothing is logged then.
        let _ = self.bodies.send(body);
    }
}

/// An event's fields as JSON values (`message` is the formatted message).
struct Fields(Map<String, Value>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_owned(), json!(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), json!(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), json!(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), json!(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), json!(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0
            .insert(field.name().to_owned(), json!(value.to_string()));
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lapin::Error> {
    let var = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    let url = var("LOGRELAY_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f");
    let (exchange, project) = (
        var("LOGRELAY_EXCHANGE", "logs"),
        var("LOGRELAY_PROJECT", "shop"),
    );
    let (layer, publisher) = AmqpLayer::connect(&url, &exchange, &project).await?;
    let dispatch = tracing_subscriber::registry().with(layer);
    let guard = dispatch.set_default();
    tracing::info_span!("checkout", cart = 17).in_scope(|| {
        tracing::info!(items = 3, "cart checked out");
        let error = std::io::Error::other("card declined");
        tracing::error!(error = &error as &dyn std::error::Error, "payment failed");
    });
    tracing::debug!("done");
    // Spans hold the subscriber too: once the guard and every span are gone, the layer's sender
    // is dropped and the publisher can finish.
    drop(guard);
    publisher.close().await
}
