//! Formatting throughput: 1,000,000 records in batches of 1,000 into a reused buffer, written
//! to a discarding writer. Run with `cargo bench -p logrelay-console --bench format`.

use std::hint::black_box;
use std::io::Write;
use std::time::Instant;

use logrelay_console::Console;
use logrelay_plugin_api::format::{Ansi, Layout, LayoutSpec, Plain, Renderer};
use logrelay_plugin_api::testing::{Harness, sample_records};

const RECORDS: usize = 1_000_000;
const BATCH: usize = 1_000;

fn layout(json: &str) -> Layout {
    let spec: LayoutSpec = serde_json::from_str(json).expect("valid spec");
    Layout::new(&spec).expect("valid layout")
}

fn run<R: Renderer>(name: &str, layout: &Layout, batch: &[logrelay_plugin_api::Record]) {
    let mut sink = std::io::sink();
    let mut buffer = String::with_capacity(256 * BATCH);
    let mut bytes = 0usize;
    let start = Instant::now();
    for _ in 0..RECORDS / BATCH {
        buffer.clear();
        layout.write_batch::<R>(black_box(batch), &mut buffer);
        bytes += buffer.len();
        sink.write_all(black_box(buffer.as_bytes())).expect("sink");
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{name:<40} {:>12.0} records/s  ({:.0} ns/record, {} bytes/record)",
        RECORDS as f64 / secs,
        secs * 1e9 / RECORDS as f64,
        bytes / RECORDS
    );
}

fn main() {
    let batch = sample_records(BATCH);
    let default = layout("{}");
    run::<Ansi>("ansi, default layout", &default, &batch);
    run::<Plain>("plain, default layout", &default, &batch);
    let rich = layout(
        r##"{"fields": ["timestamp", "level", "project", "module", "attr.user", "message", "attributes"],
             "separator": " | ", "pad_level": true, "timezone": "local",
             "styles": {"timestamp": "dim", "module": "cyan", "attr.user": "#ff8800 underline",
                        "separator": "bright_black", "attributes": {"fg": 244, "italic": true}},
             "line_styles": {"critical": "bold"}}"##,
    );
    run::<Ansi>("ansi, rich layout, local time", &rich, &batch);
    let json = layout(r#"{"attributes_format": "json"}"#);
    run::<Ansi>("ansi, attributes as json", &json, &batch);

    // The whole connector through the ABI, output discarded.
    let h = Harness::start::<Console>("output = \"discard\"\ncolor = \"always\"").expect("start");
    let start = Instant::now();
    for _ in 0..RECORDS / BATCH {
        h.handle_batch(black_box(&batch)).expect("batch");
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{:<40} {:>12.0} records/s  ({:.0} ns/record)",
        "console plugin via ABI, ansi, discard",
        RECORDS as f64 / secs,
        secs * 1e9 / RECORDS as f64
    );
}
