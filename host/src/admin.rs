//! Metrics and health on `LOGRELAY_ADMIN_ADDR`: `GET /metrics` (Prometheus text format) and
//! `GET /health` (200 when RabbitMQ is connected and every required instance is healthy, 503
//! otherwise, with a JSON body saying which part is not).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde_json::json;

use logrelay_plugin_api::MetricKind;

use crate::config::Acceptance;
use crate::engine::{Engine, InstanceHealth, InstanceStats, ReloadReport};
use crate::intake::IntakeStats;

/// Re-reads plugins.toml and applies it; the answer is what changed, or why it was refused.
pub type Reloader = Arc<dyn Fn() -> Result<ReloadReport, String> + Send + Sync>;

/// What the admin routes read.
#[derive(Clone)]
pub struct AdminState {
    /// The running instances.
    pub engine: Arc<Engine>,
    /// The intake's counters.
    pub intake: Arc<IntakeStats>,
    /// Applies a changed plugins.toml (`POST /reload`, like SIGHUP).
    pub reload: Reloader,
}

/// The admin routes, without a socket (tests call it directly).
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .route("/reload", post(reload))
        .with_state(state)
}

/// Binds `addr` and serves the admin routes in the background; returns the bound address.
pub async fn serve(addr: SocketAddr, state: AdminState) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router(state)).await {
            tracing::error!(error = %e, "The admin server stopped.");
        }
    });
    Ok(bound)
}

async fn reload(State(state): State<AdminState>) -> impl IntoResponse {
    let reload = state.reload.clone();
    match tokio::task::spawn_blocking(move || reload()).await {
        Ok(Ok(report)) => (
            StatusCode::OK,
            axum::Json(json!({
                "status": "reloaded",
                "added": report.added,
                "changed": report.changed,
                "removed": report.removed,
            })),
        ),
        Ok(Err(reason)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            axum::Json(json!({"status": "refused", "error": reason})),
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(json!({"status": "failed", "error": e.to_string()})),
        ),
    }
}

async fn health(State(state): State<AdminState>) -> impl IntoResponse {
    let connected = state.intake.connected.load(Ordering::Acquire);
    let mut healthy = connected;
    let instances: Vec<serde_json::Value> = state
        .engine
        .instances()
        .iter()
        .map(|inst| {
            let required = inst.spec.acceptance == Acceptance::Required;
            let (status, reason) = match inst.health() {
                InstanceHealth::Ok => ("ok", None),
                InstanceHealth::Unhealthy(r) => ("unhealthy", Some(r)),
                InstanceHealth::Disabled(r) => ("disabled", Some(r)),
            };
            if required && status != "ok" {
                healthy = false;
            }
            json!({
                "name": inst.spec.name,
                "type": inst.spec.type_name,
                "delivery": if required { "required" } else { "best_effort" },
                "status": status,
                "reason": reason,
            })
        })
        .collect();
    let body = json!({
        "status": if healthy { "ok" } else { "unhealthy" },
        "rabbitmq": if connected { "connected" } else { "disconnected" },
        "instances": instances,
    });
    let code = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(body))
}

async fn metrics(State(state): State<AdminState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        render_metrics(&state),
    )
}

/// The Prometheus text exposition of every counter.
pub fn render_metrics(state: &AdminState) -> String {
    let mut out = String::with_capacity(4096);
    let i = &state.intake;
    let counters = [
        (
            "logrelay_messages_received_total",
            "Messages received from RabbitMQ.",
            i.messages.load(Ordering::Relaxed),
        ),
        (
            "logrelay_records_decoded_total",
            "Records decoded and dispatched.",
            i.records.load(Ordering::Relaxed),
        ),
        (
            "logrelay_dead_lettered_total",
            "Messages, elements and records sent to the dead-letter queue.",
            i.dead_lettered.load(Ordering::Relaxed),
        ),
        (
            "logrelay_acked_total",
            "Deliveries acknowledged to RabbitMQ.",
            i.acked.load(Ordering::Relaxed),
        ),
        (
            "logrelay_connections_total",
            "Connections made to RabbitMQ (reconnects included).",
            i.connections.load(Ordering::Relaxed),
        ),
    ];
    for (name, help, value) in counters {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP logrelay_rabbitmq_connected 1 while consuming.\n# TYPE logrelay_rabbitmq_connected gauge\nlogrelay_rabbitmq_connected {}",
        u8::from(i.connected.load(Ordering::Relaxed))
    );
    let _ = writeln!(
        out,
        "# HELP logrelay_pending_batches Batches not yet accepted by every required instance.\n# TYPE logrelay_pending_batches gauge\nlogrelay_pending_batches {}",
        state.engine.pending_batches()
    );

    let instances = state.engine.instances();
    let family = |out: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    family(
        &mut out,
        "logrelay_instance_batches_total",
        "counter",
        "Batches by outcome.",
    );
    for inst in instances.iter() {
        let s = &inst.stats;
        let n = &inst.spec.name;
        for (outcome, v) in [
            ("ok", s.batches_ok.load(Ordering::Relaxed)),
            ("failed", s.batches_failed.load(Ordering::Relaxed)),
        ] {
            let _ = writeln!(
                out,
                "logrelay_instance_batches_total{{instance=\"{n}\",outcome=\"{outcome}\"}} {v}"
            );
        }
    }
    for (name, help, value) in [
        (
            "logrelay_instance_retries_total",
            "Retries after transient errors.",
            (|s| &s.retries) as fn(&InstanceStats) -> &AtomicU64,
        ),
        (
            "logrelay_instance_coalesced_calls_total",
            "Calls that carried several queued batches at once (the instance was behind).",
            |s| &s.coalesced,
        ),
    ] {
        family(&mut out, name, "counter", help);
        for inst in instances.iter() {
            let _ = writeln!(
                out,
                "{name}{{instance=\"{}\"}} {}",
                inst.spec.name,
                value(&inst.stats).load(Ordering::Relaxed)
            );
        }
    }
    family(
        &mut out,
        "logrelay_instance_records_total",
        "counter",
        "Records by outcome.",
    );
    for inst in instances.iter() {
        let s = &inst.stats;
        for (outcome, v) in [
            ("ok", s.records_ok.load(Ordering::Relaxed)),
            ("rejected", s.records_rejected.load(Ordering::Relaxed)),
            ("dropped", s.records_dropped.load(Ordering::Relaxed)),
        ] {
            let _ = writeln!(
                out,
                "logrelay_instance_records_total{{instance=\"{}\",outcome=\"{outcome}\"}} {v}",
                inst.spec.name
            );
        }
    }
    family(
        &mut out,
        "logrelay_instance_channel_depth",
        "gauge",
        "Batches queued for the instance.",
    );
    for inst in instances.iter() {
        let _ = writeln!(
            out,
            "logrelay_instance_channel_depth{{instance=\"{}\"}} {}",
            inst.spec.name,
            inst.channel_depth()
        );
    }
    family(
        &mut out,
        "logrelay_instance_up",
        "gauge",
        "1 when healthy, 0 when its health check fails or it is disabled.",
    );
    for inst in instances.iter() {
        let _ = writeln!(
            out,
            "logrelay_instance_up{{instance=\"{}\"}} {}",
            inst.spec.name,
            u8::from(inst.health() == InstanceHealth::Ok)
        );
    }
    family(
        &mut out,
        "logrelay_dispatch_seconds",
        "histogram",
        "Duration of handle_batch calls.",
    );
    for inst in instances.iter() {
        let n = &inst.spec.name;
        let (buckets, count, sum) = inst.stats.call_seconds.snapshot();
        for (bound, c) in buckets {
            let _ = writeln!(
                out,
                "logrelay_dispatch_seconds_bucket{{instance=\"{n}\",le=\"{bound}\"}} {c}"
            );
        }
        let _ = writeln!(
            out,
            "logrelay_dispatch_seconds_bucket{{instance=\"{n}\",le=\"+Inf\"}} {count}\nlogrelay_dispatch_seconds_sum{{instance=\"{n}\"}} {sum}\nlogrelay_dispatch_seconds_count{{instance=\"{n}\"}} {count}"
        );
    }
    // What the connectors report themselves, each under its instance.
    for (name, metric) in state.engine.plugin_metrics() {
        let name = format!("logrelay_plugin_{name}");
        let kind = match metric.kind {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
        };
        family(&mut out, &name, kind, &metric.help);
        for (instance, value) in &metric.values {
            let _ = writeln!(out, "{name}{{instance=\"{instance}\"}} {value}");
        }
    }
    out
}
