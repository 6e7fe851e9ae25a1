//! The limit the intake cannot beat: a bare lapin consumer that only acknowledges.
//!
//! `cargo run --release -p logrelay --example bare_consumer -- QUEUE COUNT [PREFETCH]`
//! consumes COUNT messages from QUEUE (prefetch 1000 by default, acking `multiple` every 500)
//! and prints the rate. `bare_consumer setup EXCHANGE QUEUE...` declares a durable fanout
//! exchange feeding durable queues (so one publish reaches every consumer under test), and
//! `bare_consumer teardown EXCHANGE QUEUE...` deletes them. Used by `scripts/bench-intake`.

use std::time::Instant;

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicQosOptions, ExchangeDeclareOptions,
    ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};

async fn topology(
    channel: &Channel,
    setup: bool,
    exchange: &str,
    queues: &[String],
) -> lapin::Result<()> {
    if setup {
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        };
        channel
            .exchange_declare(
                exchange.into(),
                ExchangeKind::Fanout,
                durable,
                FieldTable::default(),
            )
            .await?;
    }
    for q in queues {
        if setup {
            let durable = QueueDeclareOptions {
                durable: true,
                ..Default::default()
            };
            channel
                .queue_declare(q.as_str().into(), durable, FieldTable::default())
                .await?;
            channel
                .queue_bind(
                    q.as_str().into(),
                    exchange.into(),
                    "".into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        } else {
            for name in [q.clone(), format!("{q}.dead")] {
                let _ = channel
                    .queue_delete(name.as_str().into(), QueueDeleteOptions::default())
                    .await;
            }
        }
    }
    if !setup {
        let _ = channel
            .exchange_delete(exchange.into(), ExchangeDeleteOptions::default())
            .await;
    }
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: bare_consumer QUEUE COUNT [PREFETCH] | setup|teardown EXCHANGE QUEUE...";
    let queue = args.next().ok_or(usage)?;
    if queue == "setup" || queue == "teardown" {
        let exchange = args.next().ok_or(usage)?;
        let queues: Vec<String> = args.collect();
        let url = std::env::var("LOGRELAY_AMQP_URL")
            .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
        let conn = Connection::connect(&url, ConnectionProperties::default()).await?;
        let channel = conn.create_channel().await?;
        topology(&channel, queue == "setup", &exchange, &queues).await?;
        return Ok(());
    }
    let count: u64 = args.next().ok_or(usage)?.parse()?;
    let prefetch: u16 = args.next().map(|p| p.parse()).transpose()?.unwrap_or(1000);
    let url = std::env::var("LOGRELAY_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let conn = Connection::connect(&url, ConnectionProperties::default()).await?;
    let channel = conn.create_channel().await?;
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await?;
    let mut consumer = channel
        .basic_consume(
            queue.as_str().into(),
            "bare".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut seen = 0u64;
    let mut start = None;
    while let Some(delivery) = consumer.next().await {
        let delivery = delivery?;
        start.get_or_insert_with(Instant::now);
        seen += 1;
        if seen.is_multiple_of(500) || seen == count {
            channel
                .basic_ack(delivery.delivery_tag, BasicAckOptions { multiple: true })
                .await?;
        }
        if seen == count {
            break;
        }
    }
    let secs = start.map(|s| s.elapsed().as_secs_f64()).unwrap_or(0.0);
    println!(
        "bare consumer: {seen} messages in {secs:.3} s = {:.0} msg/s",
        seen as f64 / secs.max(1e-9)
    );
    Ok(())
}
