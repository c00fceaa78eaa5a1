//! The Prometheus recorder and the daemon's own counters.

pub(super) fn install_metrics()
-> Result<metrics_exporter_prometheus::PrometheusHandle, metrics_exporter_prometheus::BuildError> {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Suffix("seconds".into()),
            &[
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ],
        )?
        .install_recorder()?;
    metrics::describe_counter!("segd_reconciles_total", "Reconciles, by result");
    metrics::describe_counter!("segd_apply_errors_total", "Reconciles whose apply failed");
    metrics::describe_gauge!(
        "segd_drift_definitions",
        "Definitions whose database state differs from the files (--no-apply)"
    );
    metrics::describe_gauge!(
        "segd_degraded_definitions",
        "Invalid definition files (their last applied version stays)"
    );
    metrics::describe_counter!(
        "segd_trigger_runs_total",
        "Trigger runs, by communication and status"
    );
    metrics::describe_counter!(
        "segd_deliveries_total",
        "Delivery attempts, by channel and result"
    );
    metrics::describe_gauge!("segd_outbox_deliveries", "Outbox rows, by status");
    metrics::describe_gauge!(
        "segd_leader",
        "1 while this daemon leads (reconciles and schedules)"
    );
    metrics::describe_histogram!("segd_reconcile_duration_seconds", "Time of one reconcile");
    metrics::describe_counter!(
        "segd_reconcile_changes_total",
        "Definitions created, updated or deleted by reconciles, by action"
    );
    metrics::describe_histogram!(
        "segd_delivery_duration_seconds",
        "Time of one delivery attempt"
    );
    metrics::counter!("segd_reconciles_total", "result" => "ok").increment(0);
    metrics::counter!("segd_apply_errors_total").increment(0);
    Ok(handle)
}

/// Counts a trigger run this daemon started (scheduled, through the API or
/// the console) in `segd_trigger_runs_total`.
pub(crate) fn count_run(communication: &str, status: &str) {
    metrics::counter!(
        "segd_trigger_runs_total",
        "communication" => communication.to_string(),
        "status" => status.to_string()
    )
    .increment(1);
}
