//! The HTTP API: status, metrics and the trigger endpoint.

use super::*;

#[tokio::test]
async fn status_reports_the_daemon_and_its_outbox() {
    let f = api_fixture().await;
    let (status, _, body) = send(router(&f, None, handle()), get("/v1/status")).await;
    assert_eq!(status, StatusCode::OK);
    let v = json(&body);
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["started_at"], "2026-12-02T16:49:24.106393Z");
    assert_eq!(v["leader"], false);
    assert_eq!(v["ready"], false);
    assert_eq!(v["apply"], true);
    assert_eq!(v["reconciles"], 0);
    assert_eq!(v["next_triggers"], serde_json::json!([]));
    assert_eq!(v["deliveries"], serde_json::json!({}));
}

#[tokio::test]
async fn metrics_are_served_as_prometheus_text() {
    let f = api_fixture().await;
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        metrics::counter!("segd_reconciles_total", "result" => "ok").increment(3);
    });
    let (status, content_type, body) = call(
        router(&f, None, handle),
        get("/metrics"),
        header::CONTENT_TYPE,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        content_type.as_deref(),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(
        body.lines()
            .any(|l| l == r#"segd_reconciles_total{result="ok"} 3"#),
        "{body}"
    );
}

#[tokio::test]
async fn the_trigger_endpoint_is_off_without_a_token_and_asks_for_it() {
    let f = api_fixture().await;
    let (status, _, body) = send(
        router(&f, None, handle()),
        trigger("nudge", Some(&format!("Bearer {TOKEN}"))),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        json(&body)["error"],
        "the trigger endpoint is disabled: SEGD_API_TOKEN is not set"
    );

    let api = router(&f, Some(TOKEN), handle());
    let (status, challenge, body) = send(api.clone(), trigger("nudge", None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(challenge.as_deref(), Some(r#"Bearer realm="segd""#));
    assert_eq!(json(&body)["error"], "missing bearer token");

    let (status, challenge, body) = send(api.clone(), trigger("nudge", Some("Bearer nope"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenge.as_deref(),
        Some(r#"Bearer realm="segd", error="invalid_token""#)
    );
    assert_eq!(json(&body)["error"], "wrong token");

    // Nothing ran.
    assert!(f.runs().await.is_empty());
}

#[tokio::test]
async fn the_trigger_endpoint_runs_applied_enabled_communications() {
    let f = api_fixture().await;
    let api = router(&f, Some(TOKEN), handle());
    let auth = format!("bearer {TOKEN}");

    let (status, _, body) = send(api.clone(), trigger("nope", Some(&auth))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(json(&body)["error"], "no such applied communication");

    let (status, _, body) = send(api.clone(), trigger("paused", Some(&auth))).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(json(&body)["error"], "the communication is disabled");

    let (status, _, body) = send(api.clone(), trigger("nudge", Some(&auth))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let v = json(&body);
    // The run's id comes from the daemon's clock and its seeded random source
    // (whose first draw went to the refused run of `paused`).
    let seeded = Manual::new(f.clock.now(), 1);
    seeded.random();
    let suffix = seeded.random();
    let run = format!("nudge:manual-20261202T164924.106393Z-{suffix:04x}");
    assert_eq!(v["run"], run.as_str());
    assert_eq!(v["status"], "enqueued");
    assert_eq!(
        (v["recipients"].as_u64(), v["enqueued"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(
        f.runs().await,
        [(
            format!("manual-20261202T164924.106393Z-{suffix:04x}"),
            false
        )]
    );
    let started: Vec<DateTime<Utc>> =
        sqlx::query_scalar("SELECT started_at FROM segd_trigger_runs")
            .fetch_all(&pool(&*f.store))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        started,
        [f.clock.now()],
        "the run starts at the daemon's clock"
    );
}

#[tokio::test]
async fn trigger_runs_total_counts_api_runs_that_enqueued_and_that_failed() {
    // `hook` names a secret variable the daemon's environment lacks: its run
    // fails (422) and is counted as failed.
    let hook = format!(
        "[communication]\nname = \"hook\"\nsegment = \"de\"\nevent = \"email_invoice\"\nchannel = \"webhook\"\n\n\
         {MANUAL}\n\n[webhook]\nurl = \"http://127.0.0.1:9/hook\"\nsecret_env = \"SEGD_TEST_HOOK_SECRET\"\n"
    );
    let f = fixture(
        &[("mail", comm("mail", MANUAL, "")), ("hook", hook)],
        at("2026-01-05T08:00:00Z"),
    )
    .await;
    let recorder = PrometheusBuilder::new().build_recorder();
    let metrics = recorder.handle();
    let _local = metrics::set_default_local_recorder(&recorder);
    let runs = |communication: &str, status: &str| {
        let sample = format!(
            "segd_trigger_runs_total{{communication=\"{communication}\",status=\"{status}\"}} "
        );
        let text = metrics.render();
        text.lines()
            .find_map(|l| l.strip_prefix(sample.as_str()).map(str::to_string))
    };
    assert_eq!(runs("mail", "enqueued"), None, "no run yet");
    let api = router(&f, Some(TOKEN), metrics.clone());
    let auth = format!("Bearer {TOKEN}");
    for (name, expected) in [
        ("mail", StatusCode::ACCEPTED),
        ("hook", StatusCode::UNPROCESSABLE_ENTITY),
        ("mail", StatusCode::ACCEPTED),
    ] {
        let (status, _, body) = send(api.clone(), trigger(name, Some(&auth))).await;
        assert_eq!(status, expected, "trigger {name}: {body}");
    }
    assert_eq!(
        runs("mail", "enqueued").as_deref(),
        Some("2"),
        "{}",
        metrics.render()
    );
    assert_eq!(
        runs("hook", "failed").as_deref(),
        Some("1"),
        "{}",
        metrics.render()
    );
}

#[tokio::test]
async fn every_credential_but_the_bearer_token_is_refused_and_only_post_triggers() {
    const CHALLENGE: &str = r#"Bearer realm="segd""#;
    const INVALID: &str = r#"Bearer realm="segd", error="invalid_token""#;
    let f = api_fixture().await;
    let api = router(&f, Some(TOKEN), handle());
    let wrong = format!("Bearer {TOKEN}x");
    let prefix = format!("Bearer {}", &TOKEN[..TOKEN.len() - 1]);
    let basic = format!("Basic {TOKEN}");
    for (what, authorization, challenge, message) in [
        (
            "no Authorization header",
            None,
            CHALLENGE,
            "missing bearer token",
        ),
        (
            "a wrong token",
            Some(wrong.as_str()),
            INVALID,
            "wrong token",
        ),
        (
            "a prefix of the token",
            Some(prefix.as_str()),
            INVALID,
            "wrong token",
        ),
        (
            "the token under another scheme",
            Some(basic.as_str()),
            CHALLENGE,
            "missing bearer token",
        ),
        (
            "the bare token",
            Some(TOKEN),
            CHALLENGE,
            "missing bearer token",
        ),
    ] {
        let (status, got, body) = send(api.clone(), trigger("nudge", authorization)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
        assert_eq!(got.as_deref(), Some(challenge), "{what}");
        assert_eq!(
            json(&body),
            serde_json::json!({ "error": message }),
            "{what}"
        );
    }
    let (status, got, _) = send(api.clone(), trigger("nudge", Some("Bearer "))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "an empty bearer token");
    assert!(
        got.is_some_and(|c| c.starts_with(CHALLENGE)),
        "an empty bearer token"
    );
    let (status, _, _) = send(api, get("/v1/communications/nudge/trigger")).await;
    assert!(
        !status.is_success(),
        "GET on the trigger endpoint: {status}"
    );
    assert!(
        f.runs().await.is_empty(),
        "an unauthorised request recorded a trigger run"
    );
}
