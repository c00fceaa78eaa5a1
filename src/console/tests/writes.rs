//! The forms that write: a session, a form token and the console's origin.

use super::*;

#[tokio::test]
async fn writes_need_a_session_a_form_token_and_the_consoles_origin() {
    let f = fixture(false).await;
    // Read-only without a token: no sign-in, every write refused.
    let read_only = f.router(None);
    let home = get(&read_only, "/", None).await;
    assert!(home.body.contains("id=\"read-only\""));
    let refused = post(&read_only, "/deliveries/1/requeue", "csrf=x", None).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    let router = f.router(Some(TOKEN));
    let wrong = post(&router, "/console/signin", "token=nope", None).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.headers.get(header::SET_COOKIE).is_none());
    let (cookie, csrf) = sign_in(&router).await;

    // A run, through the console, makes deliveries; one of them is dead.
    let run = post(
        &router,
        "/communications/invoice-email/run",
        &format!("csrf={csrf}"),
        Some(&cookie),
    )
    .await;
    assert_eq!(run.status, StatusCode::SEE_OTHER, "{}", run.body);
    let listed = |path: &'static str| {
        let router = router.clone();
        async move {
            get(&router, path, None)
                .await
                .body
                .matches("class=\"delivery\"")
                .count()
        }
    };
    assert!(listed("/deliveries?communication=invoice-email&since=2000-01-01").await > 0);
    assert_eq!(listed("/deliveries?since=2999-01-01").await, 0);
    assert_eq!(listed("/deliveries?until=2000-01-01").await, 0);
    assert_eq!(listed("/deliveries?communication=capped").await, 0);
    let id: i64 = sqlx::query_scalar("SELECT MIN(id) FROM segd_outbox")
        .fetch_one(&f.pool())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    sqlx::query("UPDATE segd_outbox SET status = 'dead', attempts = 8, last_error = 'gave up' WHERE id = $1")
        .bind(id)
        .execute(&f.pool())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // A post that is no form at all is refused the same way.
    let bare = Request::post(format!("/deliveries/{id}/requeue"))
        .header(header::HOST, HOST)
        .body(Body::empty())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(send(&router, bare).await.status, StatusCode::UNAUTHORIZED);
    let status = async || -> String {
        sqlx::query_scalar("SELECT status FROM segd_outbox WHERE id = $1")
            .bind(id)
            .fetch_one(&f.pool())
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let path = format!("/deliveries/{id}/requeue");
    // No session, no form token, a wrong one, another site: refused.
    assert_eq!(
        post(&router, &path, &format!("csrf={csrf}"), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        post(&router, &path, "", Some(&cookie)).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        post(&router, &path, "csrf=guess", Some(&cookie))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        post_from(
            &router,
            &path,
            &format!("csrf={csrf}"),
            Some(&cookie),
            "http://evil.test"
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(status().await, "dead");
    let page = get(&router, &format!("/deliveries/{id}"), Some(&cookie)).await;
    assert_eq!(by_id(&page.body, "last-error"), "gave up");
    assert!(page.body.contains("id=\"requeue\""));
    // With the session and its token: re-queued, then back to the delivery.
    let done = post(&router, &path, &format!("csrf={csrf}"), Some(&cookie)).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    assert_eq!(
        done.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok()),
        Some(format!("/deliveries/{id}").as_str())
    );
    assert_eq!(status().await, "pending");
    // A run over max_recipients is held; releasing it sends it.
    let capped = "/communications/capped";
    let held = post(
        &router,
        &format!("{capped}/run"),
        &format!("csrf={csrf}"),
        Some(&cookie),
    )
    .await;
    assert_eq!(held.status, StatusCode::SEE_OTHER, "{}", held.body);
    let page = get(&router, capped, Some(&cookie)).await;
    assert!(page.body.contains("id=\"release\""), "{}", page.body);
    let released = post(
        &router,
        &format!("{capped}/release"),
        &format!("csrf={csrf}"),
        Some(&cookie),
    )
    .await;
    assert_eq!(released.status, StatusCode::SEE_OTHER, "{}", released.body);
    let page = get(&router, capped, Some(&cookie)).await;
    assert!(!page.body.contains("id=\"release\""), "{}", page.body);
    assert!(page.body.contains("held (released)"), "{}", page.body);
    // Signed out, the session no longer acts.
    let out = post(
        &router,
        "/console/signout",
        &format!("csrf={csrf}"),
        Some(&cookie),
    )
    .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(
        post(&router, &path, &format!("csrf={csrf}"), Some(&cookie))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}
