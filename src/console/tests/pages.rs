//! The read-only pages: what each shows, its parameters, its escaping.

use super::*;

#[tokio::test]
async fn every_page_answers_with_its_key_content_and_a_strict_policy_and_bad_parameters_are_400() {
    let f = fixture(false).await;
    let router = f.router(Some(TOKEN));
    let (ok, bad) = (StatusCode::OK, StatusCode::BAD_REQUEST);
    let long = format!("/segments?q={}", "a".repeat(101));
    expect(
        &router,
        &[
            ("/", ok, "id=\"role\">Leader"),
            ("/segments", ok, "id=\"segment-overdue-eu\""),
            ("/segments?q=overdue", ok, "id=\"segment-overdue-eu\""),
            ("/segments/overdue-eu", ok, "id=\"member-count\""),
            ("/communications", ok, "id=\"communication-invoice-email\""),
            ("/communications/invoice-email", ok, "id=\"runs\""),
            ("/deliveries", ok, "id=\"deliveries\""),
            ("/history", ok, "0123abc"),
            ("/history/1", ok, "id=\"plan\""),
            ("/history/1", ok, "create segment overdue-eu</li>"),
            ("/console/signin", ok, "id=\"token\""),
            ("/segments?page=0", bad, "`page`"),
            ("/segments?page=abc", bad, "`page`"),
            ("/segments?page=99", bad, "past the last page"),
            ("/segments?unknown=1", bad, "unknown"),
            ("/deliveries?status=lost", bad, "`status`"),
            ("/deliveries?before=-3", bad, "`before`"),
            ("/deliveries/abc", bad, "delivery id"),
            ("/history?before=x", bad, "`before`"),
            ("/deliveries?since=yesterday", bad, "`since`"),
            (
                "/deliveries?since=2026-03-01&until=2026-03-02T00:00:00Z",
                ok,
                "id=\"deliveries\"",
            ),
            (&long, bad, "`q`"),
            (
                "/segments/nope",
                StatusCode::NOT_FOUND,
                "no applied segment",
            ),
        ],
    )
    .await;
    let css = get(&router, "/console/style.css", None).await;
    assert_eq!(css.status, StatusCode::OK);
    assert!(css.headers.get(header::CONTENT_SECURITY_POLICY).is_some());
    // The filter in plain words.
    let list = get(&router, "/segments?q=overdue-eu", None).await;
    assert!(
        list.body.contains("customers in DE, FR, NL, AT, BE, ES or IT, with an open, partially_paid or overdue invoice 30+ days past due"),
        "{}",
        list.body
    );
    assert!(list.body.contains("<svg class=\"chart\""));
}

#[tokio::test]
async fn member_counts_are_the_stores_and_members_page_by_id() {
    let f = fixture(false).await;
    let router = f.router(None);
    let applied = f.store.applied().await.unwrap_or_else(|e| panic!("{e}"));
    for name in ["overdue-eu", "open-invoices", "tricky"] {
        let segment = applied
            .segment(name)
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("{name}"));
        let q = compile(segment, f.store.dialect(), f.clock.now(), Select::Count);
        let count = f.store.count(&q).await.unwrap_or_else(|e| panic!("{e}"));
        let page = get(&router, &format!("/segments/{name}"), None).await;
        assert_eq!(
            by_id(&page.body, "member-count"),
            count.to_string(),
            "{name}"
        );
    }
    // Paged by id: the second page starts after the first's last id.
    let first = get(&router, "/segments/open-invoices", None).await;
    let rows = first.body.matches("class=\"member\"").count();
    assert_eq!(rows, super::params::PAGE);
    let next = first
        .body
        .split("id=\"next-members\" href=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_else(|| panic!("a next page"))
        .replace("&amp;", "&");
    let second = get(&router, &next, None).await;
    assert_eq!(second.status, StatusCode::OK);
    assert!(second.body.contains("class=\"member\""));
    // Searched by name, id or email.
    let found = get(&router, "/segments/tricky?q=ONERROR", None).await;
    assert_eq!(found.body.matches("class=\"member\"").count(), 1);
    let none = get(&router, "/segments/tricky?q=nobody-here", None).await;
    assert_eq!(none.body.matches("class=\"member\"").count(), 0);
    // Who entered between the two samples.
    let tricky = get(&router, "/segments/tricky", None).await;
    assert_eq!(by_id(&tricky.body, "entered-count"), "1");
    assert!(tricky.body.contains("<code>cus_xss</code>"));
}

#[tokio::test]
async fn database_values_are_escaped() {
    let f = fixture(false).await;
    let router = f.router(None);
    for path in [
        "/segments/tricky",
        "/communications/invoice-email?member=cus_xss",
    ] {
        let page = get(&router, path, None).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
        assert!(!page.body.contains(XSS), "{path}: unescaped");
        assert!(!page.body.contains("<b>hi</b>"), "{path}: unescaped");
    }
    let page = get(&router, "/segments/tricky", None).await;
    assert!(
        page.body.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{}",
        page.body
    );
}

#[tokio::test]
async fn the_overview_counts_the_drift_reconciles_set_back() {
    let f = fixture(false).await;
    let router = f.router(None);
    assert_eq!(
        by_id(&get(&router, "/", None).await.body, "drift-undone"),
        "0"
    );
    // Edited outside the files: the next reconcile sets it back.
    sqlx::query("UPDATE segd_definitions SET spec = spec || '# edited' WHERE name = 'tricky'")
        .execute(&f.pool())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let status = crate::daemon::reconcile(&f.opts, &*f.store, &f.shared).await;
    assert_eq!(status.updated, ["segment tricky"]);
    // A file edit is no drift.
    let file = f.opts.dir.join("segments.d/tricky.toml");
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&file, text.replace("Names that look", "Names looking"))
        .unwrap_or_else(|e| panic!("{e}"));
    let status = crate::daemon::reconcile(&f.opts, &*f.store, &f.shared).await;
    assert_eq!(status.updated, ["segment tricky"]);
    assert_eq!(
        by_id(&get(&router, "/", None).await.body, "drift-undone"),
        "1"
    );
}

#[tokio::test]
async fn a_degraded_file_shows_its_diagnostic_on_the_overview() {
    let f = fixture(true).await;
    let page = get(&f.router(None), "/", None).await;
    assert!(
        page.body
            .contains("broken.toml:7:13: unknown operator `near`"),
        "{}",
        page.body
    );
    assert!(page.body.contains("id=\"read-only\""), "{}", page.body);
}

#[tokio::test]
async fn a_preview_renders_the_message_a_run_would_send_a_member() {
    let f = fixture(false).await;
    let router = f.router(None);
    let members = get(&router, "/segments/open-invoices", None).await;
    let ids: Vec<&str> = members
        .body
        .split("<tr class=\"member\"><td><code>")
        .skip(1)
        .filter_map(|s| s.split('<').next())
        .collect();
    assert!(!ids.is_empty());
    let mut rendered = 0;
    for id in ids {
        let page = get(
            &router,
            &format!("/communications/invoice-email?member={id}"),
            None,
        )
        .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        if page.body.contains("id=\"preview-subject\"") {
            assert!(
                by_id(&page.body, "preview-subject").starts_with("Invoice "),
                "{}",
                page.body
            );
            rendered += 1;
        } else {
            assert!(
                page.body.contains("would send this customer nothing"),
                "{}",
                page.body
            );
        }
    }
    assert!(rendered > 0);
    let nobody = get(&router, "/communications/invoice-email?member=nobody", None).await;
    assert!(nobody.body.contains("No customer has the id nobody"));
}

/// A segment's member pages, read window by window from a window of one
/// customer up (or of a few), list every member once, in order, as one
/// window over all customers does; searched too.
#[tokio::test]
async fn member_pages_read_window_by_window_list_every_member_once() {
    let f = fixture(false).await;
    let applied = f.store.applied().await.unwrap_or_else(|e| panic!("{e}"));
    let now = f.clock.now();
    for name in [
        "overdue-eu",
        "open-invoices",
        "card-at-risk",
        "integration-trouble",
        "tricky",
    ] {
        let segment = applied
            .segment(name)
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("{name}"));
        let q = compile(segment, f.store.dialect(), now, Select::Ids);
        let all = f
            .store
            .member_ids(&q)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!all.is_empty(), "{name} has members");
        for search in [None, Some("1")] {
            let whole = walk(&*f.store, segment, now, search, 1_000_000).await;
            if search.is_none() {
                assert_eq!(whole, all, "{name}");
            }
            for first in [1, 3, 7] {
                assert_eq!(
                    walk(&*f.store, segment, now, search, first).await,
                    whole,
                    "{name} {search:?} {first}"
                );
            }
        }
    }
}

/// Every member page of `segment` in turn (those matching `search`), read
/// window by window from a window of `first` customers: their ids.
async fn walk(
    store: &dyn Store,
    segment: &crate::model::Segment,
    now: DateTime<Utc>,
    search: Option<&str>,
    first: u64,
) -> Vec<String> {
    let mut listed: Vec<String> = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let window = (after.as_deref(), search);
        let mut page = super::super::pages::member_page(store, segment, now, window, first)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let more = page.len() > super::params::PAGE;
        page.truncate(super::params::PAGE);
        after = page.last().map(|m| m.id.clone());
        listed.extend(page.into_iter().map(|m| m.id));
        if !more {
            return listed;
        }
    }
}

/// An apply of thousands of definitions: its page lists the first changes
/// and shows the plan's beginning, bounded whatever the plan's size, and
/// links to the whole plan, served as plain text exactly as stored.
#[tokio::test]
async fn a_large_plans_page_is_bounded_and_links_to_the_whole_plan_as_text() {
    let f = fixture(false).await;
    let router = f.router(None);
    let changes: Vec<serde_json::Value> = (0..3_000)
        .map(|i| {
            serde_json::json!({
                "action": "create",
                "kind": "segment",
                "name": format!("seg-{i:05}"),
                "diff": format!("+ name = \"seg-{i:05}\" <b>{}</b>\n", "x".repeat(300)),
            })
        })
        .collect();
    let doc = serde_json::json!({ "format_version": 1, "changes": changes });
    let plan = serde_json::to_string_pretty(&doc).unwrap_or_else(|e| panic!("{e}")) + "\n";
    assert!(plan.len() > 1 << 20, "{}", plan.len());
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO segd_apply_history (applied_at, applied_by, git_commit, summary, plan) \
         VALUES ('2026-03-02T10:00:00Z', 'ci', NULL, '3000 to create', $1) RETURNING id",
    )
    .bind(&plan)
    .fetch_one(&f.pool())
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    let page = get(&router, &format!("/history/{id}"), None).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.len() < 400 * 1024, "{} bytes", page.body.len());
    assert!(page.body.contains("3000 to create"));
    assert!(page.body.contains("create segment seg-00999</li>"));
    assert!(!page.body.contains("create segment seg-01000</li>"));
    assert_eq!(
        by_id(&page.body, "changes-cut"),
        "The first 1000 of 3000 changes."
    );
    assert!(by_id(&page.body, "plan-cut").starts_with(&format!(
        "The plan is {} KiB; its beginning is shown.",
        plan.len().div_ceil(1024)
    )));
    assert!(page.body.contains(&format!("href=\"/history/{id}/plan\"")));
    assert!(page.body.contains("&lt;b&gt;") && !page.body.contains("<b>x"));

    let text = get(&router, &format!("/history/{id}/plan"), None).await;
    assert_eq!(text.status, StatusCode::OK);
    let header = |name| text.headers.get(name).and_then(|v| v.to_str().ok());
    assert_eq!(
        header(header::CONTENT_TYPE),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(header(header::X_CONTENT_TYPE_OPTIONS), Some("nosniff"));
    assert_eq!(
        header(header::CONTENT_SECURITY_POLICY),
        Some(CONTENT_SECURITY_POLICY)
    );
    assert!(text.body == plan, "the plain text is the stored plan");

    // A short plan is shown whole, with no link.
    let small = get(&router, "/history/1", None).await;
    assert!(!small.body.contains("id=\"plan-cut\"") && !small.body.contains("/history/1/plan"));
    assert_eq!(
        get(&router, "/history/1/plan", None).await.status,
        StatusCode::OK
    );
    let missing = get(&router, "/history/999/plan", None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let bad = get(&router, "/history/x/plan", None).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}
