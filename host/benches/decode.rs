//! Decoder cost: message bodies of common logger shapes decoded into records, one thread.
//!
//! Run: `cargo bench -p logrelay --bench decode`
//!
//! Reports ns per record (median of 7 rounds) for one object per message and for 100 logs per
//! message as JSON lines and as an array, each over a mix of the shapes common loggers write.

use std::hint::black_box;
use std::time::Instant;

use logrelay::decode::{DecodeContext, DecodeOptions, decode};
use logrelay::fingerprint::Fingerprint;

/// One line of each of a few common shapes (pino, Python logging, logrus, zap, slog, bunyan).
const LINES: [&str; 6] = [
    r#"{"level":30,"time":1714564800123,"pid":4242,"hostname":"web-1","name":"api","msg":"request completed","req":{"id":17,"method":"GET","url":"/cart"},"responseTime":12}"#,
    r#"{"asctime":"2024-05-01 12:00:00,123","levelname":"WARNING","name":"shop.cart","message":"cart is almost full","lineno":88,"funcName":"add","process":77}"#,
    r#"{"level":"error","msg":"payment failed","time":"2024-05-01T12:00:00.123456+02:00","order":"A-1","error":"card declined"}"#,
    r#"{"level":"info","ts":1714564800.123456,"caller":"cart/handler.go:42","msg":"item added","sku":"X-9","qty":2}"#,
    r#"{"time":"2024-05-01T12:00:00.123456789Z","level":"DEBUG","msg":"cache miss","key":"user:17","service":"shop"}"#,
    r#"{"name":"api","hostname":"web-1","pid":4242,"level":50,"msg":"upstream timeout","time":"2024-05-01T12:00:00.123Z","v":0,"module":"proxy"}"#,
];

fn ctx() -> DecodeContext<'static> {
    DecodeContext {
        routing_key: "shop.cart",
        queue: "logs",
        amqp_timestamp_ns: None,
        message_id: None,
        fingerprint: Fingerprint(7),
        redelivered: false,
        received_ns: 1_700_000_000_000_000_000,
        default_project: "default",
        default_module: "default",
        max_bytes: 16 * 1024 * 1024,
        options: DecodeOptions::builtin(),
    }
}

/// Decodes every body `rounds` times; returns ns per record of the median round.
fn measure(bodies: &[Vec<u8>], records_per_round: usize) -> f64 {
    let ctx = ctx();
    let mut rounds: Vec<f64> = (0..7)
        .map(|_| {
            let start = Instant::now();
            let mut n = 0;
            while n < 200_000 {
                for body in bodies {
                    let d = decode(black_box(body), &ctx);
                    assert!(d.bad.is_empty(), "{:?}", d.bad);
                    black_box(&d);
                }
                n += records_per_round;
            }
            start.elapsed().as_nanos() as f64 / n as f64
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    rounds[rounds.len() / 2]
}

fn main() {
    let singles: Vec<Vec<u8>> = LINES.iter().map(|l| l.as_bytes().to_vec()).collect();
    let mixed: Vec<&str> = LINES.iter().cycle().take(100).copied().collect();
    let lines = vec![mixed.join("\n").into_bytes()];
    let array = vec![format!("[{}]", mixed.join(",")).into_bytes()];
    println!("| body | ns/record | records/s |");
    println!("| --- | ---: | ---: |");
    for (name, bodies, per_round) in [
        ("one object per message", &singles, singles.len()),
        ("100 JSON lines per message", &lines, 100),
        ("array of 100 per message", &array, 100),
    ] {
        let ns = measure(bodies, per_round);
        println!("| {name} | {ns:.0} | {:.0} |", 1e9 / ns);
    }
}
