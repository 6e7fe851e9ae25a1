//! Write throughput of the files connector: JSON lines without fsync and with an fsync per batch
//! of 1000, beside `dd ... conv=fdatasync` to the same directory in the same run.
//!
//! `cargo bench -p logrelay-files --bench write` (set `FILES_BENCH_DIR` to measure another disk;
//! default: the target directory's tmp folder).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use logrelay_files::Files;
use logrelay_plugin_api::testing::Harness;
use logrelay_plugin_api::{Level, Record};

const BATCH: usize = 1000;

fn records(n: usize) -> Vec<Record> {
    (0..n)
        .map(|i| {
            Record::new(
                format!("0190a5f2-7c1e-7abc-8def-{i:012}"),
                1_700_000_000_000_000_000 + i as i64 * 1_000_000,
                Level::ALL[i % 4],
                "checkout",
                "payments.gateway",
                format!("charge {i} authorised for customer after 3-D Secure challenge"),
            )
            .with_attributes(format!(
                r#"{{"user":"u{}","amount_cents":{},"currency":"EUR","attempt":1}}"#,
                i % 977,
                i * 7 % 100_000
            ))
        })
        .collect()
}

fn run(dir: &Path, durability: &str, batches: usize, data: &[Record]) -> (f64, f64) {
    let run_dir = tempfile::tempdir_in(dir).expect("run dir");
    let config = format!(
        "directory = \"{}\"\ndurability = \"{durability}\"\ncompression = \"none\"\nmax_file_bytes = 17179869184\nrotate_interval = \"never\"\n",
        run_dir.path().display()
    );
    let h = Harness::start::<Files>(&config).expect("start");
    // Warm up: page cache, buffers.
    h.handle_batch(&data[..BATCH]).expect("warm-up");
    let before = std::fs::metadata(run_dir.path().join("logrelay.log"))
        .expect("file")
        .len();
    let start = Instant::now();
    for b in 0..batches {
        let i = (b * BATCH) % (data.len() - BATCH + 1);
        h.handle_batch(&data[i..i + BATCH]).expect("batch");
    }
    let secs = start.elapsed().as_secs_f64();
    h.shutdown().expect("shutdown");
    let after = std::fs::metadata(run_dir.path().join("logrelay.log"))
        .expect("file")
        .len();
    let records = (batches * BATCH) as f64;
    println!(
        "  ({:.0} bytes per line)",
        (after - before) as f64 / records
    );
    (records / secs, (after - before) as f64 / secs / 1e6)
}

fn dd(dir: &Path) -> String {
    let out = Command::new("dd")
        .arg("if=/dev/zero")
        .arg(format!("of={}", dir.join("dd.bin").display()))
        .args(["bs=1M", "count=256", "conv=fdatasync"])
        .output()
        .expect("run dd");
    let _ = std::fs::remove_file(dir.join("dd.bin"));
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .last()
        .unwrap_or("")
        .to_owned()
}

fn main() {
    let dir = std::env::var_os("FILES_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).to_path_buf());
    std::fs::create_dir_all(&dir).expect("bench dir");
    let data = records(100_000);
    println!("directory: {}  (batches of {BATCH})", dir.display());
    let (rps, mbps) = run(&dir, "never", 3000, &data);
    println!("json lines, durability=never : {rps:>12.0} records/s  {mbps:>8.1} MB/s");
    let (rps, mbps) = run(&dir, "batch", 300, &data);
    println!("json lines, fsync per batch  : {rps:>12.0} records/s  {mbps:>8.1} MB/s");
    println!("dd bs=1M count=256 conv=fdatasync: {}", dd(&dir));
}
