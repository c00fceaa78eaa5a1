//! Reconciling the folder: invalid or unreadable files keep their last applied
//! definitions and are reported as degraded; deleting every definition is
//! refused. Each reconcile is called when the test says (the binary's watcher
//! and resync timer are tested in `tests/it/daemon.rs`).

use super::*;

fn segment(name: &str, filter: &str) -> String {
    format!(
        "[segment]\nname = \"{name}\"\ndescription = \"d\"\n\n[[filter]]\ntype = \"customer\"\n{filter}\n"
    )
}

/// Manual email `name` to `segment`.
fn mail(name: &str, segment: &str) -> String {
    comm(name, MANUAL, "").replace("segment = \"de\"", &format!("segment = \"{segment}\""))
}

fn files(list: &[(&str, String)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(p, t)| (p.to_string(), t.clone()))
        .collect()
}

/// The (name, file) of each degraded definition `/v1/status` lists, and
/// whether each comes with its errors.
async fn degraded_in_status(f: &Fixture) -> (Vec<(String, String)>, bool) {
    let (status, _, body) = send(router(f, None, handle()), get("/v1/status")).await;
    assert_eq!(status, StatusCode::OK);
    let v = json(&body);
    let entries = v["degraded"].as_array().cloned().unwrap_or_default();
    let with_errors = entries
        .iter()
        .all(|d| d["errors"].as_array().is_some_and(|e| !e.is_empty()));
    let pairs = entries
        .iter()
        .map(|d| {
            let name = d["name"].as_str().unwrap_or("?").to_string();
            (name, d["file"].as_str().unwrap_or("?").to_string())
        })
        .collect();
    (pairs, with_errors)
}

/// A reconcile, with the metrics it records rendered as Prometheus text.
async fn reconcile_with_metrics(f: &Fixture) -> (ReconcileStatus, String) {
    let recorder = PrometheusBuilder::new().build_recorder();
    let metrics = recorder.handle();
    let status = {
        let _local = metrics::set_default_local_recorder(&recorder);
        f.reconcile().await
    };
    (status, metrics.render())
}

#[tokio::test]
async fn an_invalid_file_is_degraded_while_the_rest_is_applied() {
    let f = fixture_of(
        &files(&[
            ("segments.d/keep.toml", segment("keep", "country = \"DE\"")),
            (
                "segments.d/other.toml",
                segment("other", "country = \"FR\""),
            ),
            ("segments.d/gone.toml", segment("gone", "country = \"FR\"")),
            ("communications.d/mail.toml", mail("mail", "keep")),
        ]),
        at("2026-01-05T08:00:00Z"),
    )
    .await;
    let before = f.specs().await;

    // keep.toml: a semantic error (and a change that must not be applied);
    // gone.toml: not even TOML any more; other.toml: a valid edit; mail.toml
    // references the degraded `keep` and must stay as it was.
    f.write(
        "segments.d/keep.toml",
        &format!(
            "{}\n[[filter]]\ntype = \"invoice\"\nstatus = \"nope\"\n",
            segment("keep", "country = \"FR\"")
        ),
    );
    f.write("segments.d/gone.toml", "[segment\nname = \"gone\"\n");
    let other = segment("other", "country = { in = [\"DE\", \"FR\"] }");
    f.write("segments.d/other.toml", &other);
    let (status, metrics) = reconcile_with_metrics(&f).await;
    assert!(status.ok, "{:?}", status.error);
    assert_eq!(status.updated, ["segment other"]);
    let after = f.specs().await;
    assert!(
        after["other"].contains("in = [\"DE\", \"FR\"]"),
        "{after:?}"
    );
    for name in ["keep", "gone", "mail"] {
        assert_eq!(
            after[name], before[name],
            "{name}: its last applied version stays"
        );
    }
    let (entries, with_errors) = degraded_in_status(&f).await;
    assert!(
        entries.contains(&("keep".to_string(), "segments.d/keep.toml".to_string())),
        "keep is reported by name and file: {entries:?}"
    );
    assert!(
        entries
            .iter()
            .any(|(_, file)| file == "segments.d/gone.toml"),
        "{entries:?}"
    );
    assert!(with_errors, "a degraded entry without its errors");
    // keep, gone, and mail that names keep.
    assert!(status.degraded.len() >= 2, "{:?}", status.degraded);
    let gauge = format!("segd_degraded_definitions {}", status.degraded.len());
    assert!(metrics.lines().any(|l| l == gauge), "{metrics}");
    let (code, _, _) = send(router(&f, None, handle()), get("/healthz")).await;
    assert_eq!(code, StatusCode::OK);

    // Fixed: applied, and no longer degraded.
    f.write("segments.d/keep.toml", &segment("keep", "country = \"FR\""));
    f.write("segments.d/gone.toml", &segment("gone", "country = \"DE\""));
    let (status, metrics) = reconcile_with_metrics(&f).await;
    assert!(status.ok, "{:?}", status.error);
    let after = f.specs().await;
    assert!(after["keep"].contains("\"FR\""), "{after:?}");
    assert!(after["gone"].contains("\"DE\""), "{after:?}");
    assert_eq!(degraded_in_status(&f).await.0, []);
    assert!(
        metrics.lines().any(|l| l == "segd_degraded_definitions 0"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_file_or_folder_that_can_no_longer_be_read_keeps_its_definitions() {
    let f = fixture_of(
        &files(&[
            ("segments.d/fifo.toml", segment("fifo", "country = \"DE\"")),
            ("segments.d/link.toml", segment("link", "country = \"FR\"")),
            (
                "segments.d/team/deep.toml",
                segment("deep", "country = \"DE\""),
            ),
            ("communications.d/mail.toml", mail("mail", "fifo")),
        ]),
        at("2026-01-05T08:00:00Z"),
    )
    .await;
    let all = f.specs().await;
    assert_eq!(all.len(), 4);

    // A FIFO, a link out of the tree and a file that is no longer UTF-8, each
    // in place of an applied definition.
    let seg = f._dir.path().join("segments.d");
    std::fs::remove_file(seg.join("fifo.toml")).unwrap_or_else(|e| panic!("{e}"));
    let made = std::process::Command::new("mkfifo")
        .arg(seg.join("fifo.toml"))
        .status()
        .unwrap_or_else(|e| panic!("mkfifo: {e}"));
    assert!(made.success());
    std::fs::remove_file(seg.join("link.toml")).unwrap_or_else(|e| panic!("{e}"));
    std::os::unix::fs::symlink("/etc/passwd", seg.join("link.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        f._dir.path().join("communications.d/mail.toml"),
        b"[communication]\nname = \"mail\xff\"\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let status = f.reconcile().await;
    assert!(status.ok, "{:?}", status.error);
    let files: Vec<&str> = status.degraded.iter().map(|d| d.file.as_str()).collect();
    for file in [
        "segments.d/fifo.toml",
        "segments.d/link.toml",
        "communications.d/mail.toml",
    ] {
        assert!(files.contains(&file), "{file} is not degraded: {files:?}");
    }
    assert_eq!(
        f.specs().await,
        all,
        "an unreadable file's definition was deleted"
    );

    // The whole segments.d moved out of the tree, a link left in its place:
    // reported, and no reconcile deletes its definitions.
    let outside = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::rename(&seg, outside.path().join("segments.d")).unwrap_or_else(|e| panic!("{e}"));
    std::os::unix::fs::symlink(outside.path().join("segments.d"), &seg)
        .unwrap_or_else(|e| panic!("{e}"));
    for _ in 0..2 {
        let status = f.reconcile().await;
        assert!(
            status.degraded.iter().any(|d| d.file == "segments.d"),
            "segments.d is not degraded: {:?}",
            status.degraded
        );
        assert_eq!(
            f.specs().await,
            all,
            "a definition of the linked-out segments.d was deleted"
        );
    }
}

#[tokio::test]
async fn the_daemon_refuses_to_delete_every_applied_definition() {
    let f = fixture(&[], at("2026-01-05T08:00:00Z")).await;
    std::fs::remove_file(f._dir.path().join("segments.d/de.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let status = f.reconcile().await;
    assert!(!status.ok);
    let refusal = format!(
        "refusing to delete every applied definition (1): {} defines none of them. \
         Is --dir the right folder? Delete them with `segd apply --allow-delete-all`",
        f._dir.path().display()
    );
    assert_eq!(status.error.as_deref(), Some(refusal.as_str()));
    let (_, _, body) = send(router(&f, None, handle()), get("/v1/status")).await;
    assert_eq!(json(&body)["last_reconcile"]["error"], refusal.as_str());
    assert_eq!(f.specs().await.len(), 1, "the definition is still applied");
}
