//! `segd validate` and `segd schema` end to end: the binary on temporary trees.

use crate::support::{Fixture, first_line_then_close, segd_cmd};
use serde_json::Value;

const MANUAL: &str = "type = \"manual\"";
const WEBHOOK: &str =
    "url = \"https://hooks.acme.test/segd\"\nsecret_env = \"SEGD_WEBHOOK_SECRET\"\n";

/// A webhook communication file: `segment` on line 3, `[trigger]` on line 7 with
/// `trigger` below it, then `[webhook]` with `webhook`.
fn communication(name: &str, segment: &str, trigger: &str, webhook: &str) -> String {
    format!(
        "[communication]\nname = \"{name}\"\nsegment = \"{segment}\"\nevent = \"payment_reminder\"\n\
         channel = \"webhook\"\n\n[trigger]\n{trigger}\n\n[webhook]\n{webhook}"
    )
}

const BAD_ENUM: &str =
    "[segment]\nname = \"bad-enum\"\n\n[[filter]]\ntype = \"invoice\"\nstatus = \"pending\"\n";
const BAD_COUNTRY: &str =
    "[segment]\nname = \"bad-country\"\n\n[[filter]]\ntype = \"customer\"\ncountry = \"JJ\"\n";

/// The example tree with one defect in each of four files, and where each is.
fn defective() -> (Fixture, [(&'static str, usize, usize); 4]) {
    let f = Fixture::example();
    f.write("segments.d/bad-enum.toml", BAD_ENUM)
        .write("segments.d/team/bad-country.toml", BAD_COUNTRY)
        .write(
            "communications.d/bad-cron.toml",
            &communication(
                "bad-cron",
                "overdue-eu",
                "type = \"automatic\"\nschedule = \"61 * * * *\"",
                WEBHOOK,
            ),
        )
        .write(
            "communications.d/missing-segment.toml",
            &communication("missing-segment", "overdue-us", MANUAL, WEBHOOK),
        );
    let at = [
        ("segments.d/bad-enum.toml", 6, 10),
        ("segments.d/team/bad-country.toml", 6, 11),
        ("communications.d/bad-cron.toml", 9, 12),
        ("communications.d/missing-segment.toml", 3, 11),
    ];
    (f, at)
}

fn stdout(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stdout).into_owned()
}

fn stderr(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stderr).into_owned()
}

fn json(a: &assert_cmd::assert::Assert) -> Value {
    let out = stdout(a);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not one JSON document ({e}):\n{out}"))
}

fn diagnostics(doc: &Value) -> &[Value] {
    doc["diagnostics"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_else(|| panic!("no `diagnostics` array in {doc:#}"))
}

#[test]
fn example_tree_is_valid() {
    let f = Fixture::example();
    let a = f.validate("text").success();
    let out = stdout(&a);
    assert!(
        out.contains("valid: 6 segment(s), 3 communication(s) in 9 file(s); 0 error(s)"),
        "{out}"
    );
    let doc = json(&f.validate("json").code(0));
    assert_eq!(doc["valid"], true, "{doc:#}");
    assert_eq!(doc["files_checked"], 9, "{doc:#}");
}

#[test]
fn example_tree_is_valid_through_dir_flag() {
    let f = Fixture::example();
    segd_cmd()
        .arg("--dir")
        .arg(f.path())
        .arg("validate")
        .assert()
        .success();
}

#[test]
fn text_reports_every_defect_as_path_line_col() {
    let (f, at) = defective();
    let a = f.validate("text").code(1);
    let out = stdout(&a);
    for (file, line, col) in at {
        let prefix = format!("{file}:{line}:{col}: error: ");
        assert!(
            out.lines().any(|l| l.starts_with(&prefix)),
            "no line starting with `{prefix}` in:\n{out}"
        );
    }
    assert!(out.contains("invalid: "), "{out}");
    assert!(stderr(&a).is_empty(), "data goes to stdout: {}", stderr(&a));
}

#[test]
fn text_paths_are_joined_with_dir() {
    let (f, at) = defective();
    let a = segd_cmd()
        .arg("validate")
        .arg("--dir")
        .arg(f.path())
        .assert()
        .code(1);
    let out = stdout(&a);
    for (file, line, col) in at {
        let path = f.path().join(file);
        let prefix = format!("{}:{line}:{col}: ", path.display());
        assert!(out.contains(&prefix), "no `{prefix}` in:\n{out}");
    }
}

#[test]
fn json_is_one_document_with_located_diagnostics() {
    let (f, at) = defective();
    let doc = json(&f.validate("json").code(1));
    assert_eq!(doc["valid"], false, "{doc:#}");
    let diags = diagnostics(&doc);
    for d in diags {
        assert!(d["file"].is_string(), "{d}");
        assert!(d["line"].as_u64().is_some_and(|n| n >= 1), "{d}");
        assert!(d["column"].as_u64().is_some_and(|n| n >= 1), "{d}");
        assert!(
            matches!(d["severity"].as_str(), Some("error" | "warning")),
            "{d}"
        );
        assert!(d["message"].as_str().is_some_and(|m| !m.is_empty()), "{d}");
    }
    for (file, line, col) in at {
        assert!(
            diags.iter().any(|d| d["file"] == file
                && d["line"] == line
                && d["column"] == col
                && d["severity"] == "error"),
            "no error at {file}:{line}:{col} in {doc:#}"
        );
    }
    let errors = diags.iter().filter(|d| d["severity"] == "error").count();
    assert_eq!(doc["errors"], errors, "{doc:#}");
}

#[test]
fn github_prints_error_annotations() {
    let (f, at) = defective();
    let out = stdout(&f.validate("github").code(1));
    for (file, line, col) in at {
        let head = format!("::error file={file},line={line},col={col}");
        assert!(
            out.lines()
                .any(|l| l.starts_with(&head) && l[head.len()..].contains("::")),
            "no `{head}…::` annotation in:\n{out}"
        );
    }
    for l in out.lines() {
        assert!(
            l.starts_with("::error ") || l.starts_with("::warning "),
            "{l}"
        );
    }
}

#[test]
fn unknown_flag_is_a_usage_error() {
    let f = Fixture::example();
    let a = segd_cmd()
        .current_dir(f.path())
        .args(["validate", "--no-such-flag"])
        .assert()
        .code(2);
    assert!(stdout(&a).is_empty(), "{}", stdout(&a));
    assert!(stderr(&a).contains("--no-such-flag"), "{}", stderr(&a));
}

#[test]
fn unknown_format_is_a_usage_error() {
    Fixture::example().validate("yaml").code(2);
}

#[test]
fn missing_dir_is_a_usage_error_on_stderr() {
    let f = Fixture::empty();
    let nowhere = f.path().join("no/such/dir");
    let a = segd_cmd()
        .arg("--dir")
        .arg(&nowhere)
        .arg("validate")
        .assert()
        .code(2);
    assert!(stdout(&a).is_empty(), "{}", stdout(&a));
    let err = stderr(&a);
    assert!(err.contains(&nowhere.display().to_string()), "{err}");
}

#[test]
fn warnings_alone_do_not_fail() {
    let f = Fixture::empty();
    f.write(
        "segments.d/everyone.toml",
        "[segment]\nname = \"everyone\"\n",
    );
    let out = stdout(&f.validate("text").code(0));
    assert!(
        out.lines()
            .any(|l| l.starts_with("segments.d/everyone.toml:2:8: warning: ")),
        "{out}"
    );
    let doc = json(&f.validate("json").code(0));
    assert_eq!(
        (&doc["errors"], &doc["warnings"]),
        (&0.into(), &1.into()),
        "{doc:#}"
    );
    assert_eq!(diagnostics(&doc)[0]["severity"], "warning", "{doc:#}");
    let gh = stdout(&f.validate("github").code(0));
    assert!(
        gh.starts_with("::warning file=segments.d/everyone.toml,line=2,col=8"),
        "{gh}"
    );
}

#[test]
fn empty_definitions_folders_are_valid() {
    let f = Fixture::empty();
    f.write("segments.d/.keep", "")
        .write("communications.d/.keep", "");
    let out = stdout(&f.validate("text").code(0));
    assert!(
        out.contains("0 segment(s), 0 communication(s) in 0 file(s)"),
        "{out}"
    );
}

#[test]
fn schema_prints_json_schemas() {
    for kind in ["segment", "communication", "settings"] {
        let a = segd_cmd().args(["schema", kind]).assert().success();
        let doc: Value = serde_json::from_str(&stdout(&a))
            .unwrap_or_else(|e| panic!("`schema {kind}` is not JSON: {e}"));
        assert!(doc["$schema"].is_string(), "{kind}: {doc:#}");
        assert!(doc.is_object(), "{kind}");
    }
    segd_cmd().args(["schema", "nonsense"]).assert().code(2);
}

/// Secret values written into definitions and settings, in various places.
const SECRETS: &[&str] = &[
    "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "hunter2-pass",
    "AnotherSecretValue123",
    "db-pa55word",
    "smtp-pa55word",
    "LiveKey0123456789",
];

/// The example tree with a secret written into five files.
fn leaky() -> Fixture {
    let f = Fixture::example();
    f.write(
        "communications.d/inline-secret.toml",
        &communication(
            "inline-secret",
            "overdue-eu",
            MANUAL,
            "url = \"https://hooks.acme.test/a\"\nsecret_env = \"SEGD_WEBHOOK_SECRET\"\n\
             secret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\n",
        ),
    )
    .write(
        "communications.d/url-credentials.toml",
        &communication(
            "url-credentials",
            "overdue-eu",
            MANUAL,
            "url = \"https://hookuser:hunter2-pass@hooks.acme.test/segd\"\n\
             secret_env = \"SEGD_WEBHOOK_SECRET\"\n",
        ),
    )
    .write(
        "communications.d/secret-as-env.toml",
        &communication(
            "secret-as-env",
            "overdue-eu",
            MANUAL,
            "url = \"https://hooks.acme.test/b\"\nsecret_env = \"whsec_AnotherSecretValue123\"\n",
        ),
    )
    .write(
        "segments.d/token.toml",
        "[segment]\nname = \"token\"\n\n[[filter]]\ntype = \"customer\"\n\
         custom_data = { api = \"sk_live_LiveKey0123456789\" }\n",
    )
    .write(
        "segd.toml",
        "database_url = \"postgres://segd:db-pa55word@db.test/segd\"\n\
         smtp_url = \"smtp://mailer:smtp-pa55word@mail.test:587\"\n",
    );
    f
}

const LEAKY_FILES: &[&str] = &[
    "communications.d/inline-secret.toml",
    "communications.d/url-credentials.toml",
    "communications.d/secret-as-env.toml",
    "segments.d/token.toml",
    "segd.toml",
];

fn assert_no_secret(a: &assert_cmd::assert::Assert, format: &str) {
    let all = format!("{}{}", stdout(a), stderr(a));
    for s in SECRETS {
        assert!(
            !all.contains(s),
            "--format {format} shows secret `{s}`:\n{all}"
        );
    }
}

#[test]
fn secrets_are_reported_but_never_shown() {
    let f = leaky();
    for format in ["text", "json", "github"] {
        let a = f.validate(format).code(1);
        assert_no_secret(&a, format);
        let out = stdout(&a);
        for file in LEAKY_FILES {
            assert!(
                out.contains(file),
                "--format {format}: nothing reported in {file}:\n{out}"
            );
        }
    }
}

/// Secrets the validator reports for another reason first, and so shows with
/// the source line: under a key it does not know as secret-like, or in a URL
/// that fails another check before its credentials are looked at.
#[test]
fn secrets_failing_other_checks_are_never_shown() {
    let f = Fixture::example();
    let webhooks = [
        "url = \"https://hooks.acme.test/a\"\nsecret_env = \"SEGD_WEBHOOK_SECRET\"\n\
         webhook_secret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\n",
        "url = \"ftp://hookuser:hunter2-pass@hooks.acme.test/x\"\nsecret_env = \"X\"\n",
        "url = \"https://hookuser:hunter2-pass@hooks acme.test/x\"\nsecret_env = \"X\"\n",
    ];
    for (i, webhook) in webhooks.iter().enumerate() {
        let name = format!("leak-{i}");
        f.write(
            &format!("communications.d/{name}.toml"),
            &communication(&name, "overdue-eu", MANUAL, webhook),
        );
    }
    f.write("segd.toml", "smtp_url = \"smtp://u:smtp-pa55word@[::1/\"\n");
    for format in ["text", "json", "github"] {
        let a = f.validate(format).code(1);
        assert_no_secret(&a, format);
    }
}

/// Ten nested `range(10)` loops: 10^10 iterations, unless rendering is bounded.
pub fn runaway_template() -> String {
    format!(
        "{}x{}",
        "{% for a in range(10) %}".repeat(10),
        "{% endfor %}".repeat(10)
    )
}

/// An email communication on `overdue-eu` whose `template` is on line 11, col 12.
fn email_communication(name: &str, template: &str) -> String {
    format!(
        "[communication]\nname = \"{name}\"\nsegment = \"overdue-eu\"\nevent = \"payment_reminder\"\n\
         channel = \"email\"\n\n[trigger]\n{MANUAL}\n\n[email]\ntemplate = \"{template}\"\n\
         from = \"billing@acme.test\"\nsubject = \"Reminder\"\n"
    )
}

#[test]
fn a_runaway_template_is_an_error_at_its_template_line() {
    let f = Fixture::example();
    f.write("templates/runaway.txt", &runaway_template())
        .write(
            "communications.d/runaway.toml",
            &email_communication("runaway", "templates/runaway.txt"),
        )
        .write(
            "communications.d/runaway-inline.toml",
            &email_communication("runaway-inline", "templates/payment-reminder.txt").replace(
                "subject = \"Reminder\"",
                &format!("subject = \"{}\"", runaway_template()),
            ),
        );
    let started = std::time::Instant::now();
    let out = stdout(&f.validate("text").code(1));
    for (at, what) in [
        (
            "communications.d/runaway.toml:11:12",
            "template `templates/runaway.txt`",
        ),
        ("communications.d/runaway-inline.toml:13:11", "`subject`"),
    ] {
        let line = format!(
            "{at}: error: in {what}: template render exceeded its work limit (fuel {}) on sample data",
            segd::validate::template::RENDER_FUEL
        );
        assert!(out.contains(&line), "no `{line}` in:\n{out}");
    }
    assert!(out.contains("2 error(s)"), "{out}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "validate took {:?}",
        started.elapsed()
    );
}

#[test]
fn validate_ends_quietly_when_its_reader_stops() {
    // Far more diagnostics than a pipe buffers (64 KiB), so the write meets
    // the closed pipe.
    let f = Fixture::example();
    for k in 0..600 {
        f.write(&format!("segments.d/bad-{k}.toml"), BAD_COUNTRY);
    }
    for format in ["text", "json", "github"] {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_segd"));
        cmd.current_dir(f.path())
            .env("NO_COLOR", "1")
            .args(["validate", "--format", format]);
        first_line_then_close(cmd).assert_quiet(&format!("validate --format {format}"));
    }
}

/// `segd schema settings` accepts exactly the segd.toml files validate
/// accepts, on files at each rule's edges.
#[test]
fn the_settings_schema_agrees_with_validate() {
    let o = segd_cmd()
        .args(["schema", "settings"])
        .output()
        .expect("run segd");
    assert!(o.status.success());
    let schema: Value = serde_json::from_slice(&o.stdout).expect("the schema is JSON");
    let checker = jsonschema::validator_for(&schema).expect("a valid JSON Schema");
    let accepted = [
        "",
        "[delivery]\nretry_schedule = \"0s,5s,5m\"",
        "[delivery]\nretry_schedule = \"0s, 5s , 1h30m\"",
        "[delivery]\nretry_schedule = [\"0s\", \"5s\", \"1h30m\"]",
        "[delivery]\nretry_schedule = [\" 5m \"]",
        "resync = \"30s\"",
        "resync = \" 1h30m \"",
        "[delivery]\nlease = \"2m\"",
        "[delivery]\nconcurrency = 1",
        "[delivery]\nconcurrency = 4294967295",
        "max_file_bytes = 1024",
        "max_file_bytes = 67108864",
        "listen = \"0.0.0.0:9000\"",
        "listen = \"[::1]:8080\"",
        "database_url = \"postgres://segd@db.internal/segd\"",
        "smtp_url = \"smtp://mail.internal:25\"",
        "outbox_dir = \"mail-out\"",
    ];
    let rejected = [
        "[delivery]\nretry_schedule = \"\"",
        "[delivery]\nretry_schedule = \"0s,,5s\"",
        "[delivery]\nretry_schedule = \"5 m\"",
        "[delivery]\nretry_schedule = []",
        "[delivery]\nretry_schedule = [5]",
        "[delivery]\nretry_schedule = 5",
        "resync = \"0s\"",
        "resync = \"0m0s\"",
        "resync = \"soon\"",
        "resync = \"5 m\"",
        "resync = 30",
        "[delivery]\nlease = \"0m\"",
        "[delivery]\nconcurrency = 0",
        "[delivery]\nconcurrency = -1",
        "[delivery]\nconcurrency = 4294967296",
        "[delivery]\nconcurrency = \"4\"",
        "max_file_bytes = 1023",
        "max_file_bytes = 67108865",
        "listen = \"localhost:8080\"",
        "listen = \"8080\"",
        "database_url = \"postgres://segd:hunter2@db.internal/segd\"",
        "smtp_url = \"smtp://user:pw@mail.internal:25\"",
        "foo = 1",
        "[delivery]\nbatch = 2",
        "delivery = 3",
    ];
    let templates = crate::support::MemTemplates::any("");
    for (texts, valid) in [(&accepted[..], true), (&rejected[..], false)] {
        for text in texts {
            let tree = crate::support::tree_of(&[], &[], Some(text));
            let outcome = segd::validate::validate(&tree, &templates);
            assert_eq!(
                outcome.errors() == 0,
                valid,
                "validate on {text:?}: {:?}",
                outcome.diagnostics
            );
            let doc: Value = toml::from_str(text).expect("TOML");
            let errors: Vec<String> = checker.iter_errors(&doc).map(|e| e.to_string()).collect();
            assert_eq!(
                errors.is_empty(),
                valid,
                "the schema on {text:?}: {errors:?}"
            );
        }
    }
}

#[test]
fn a_retry_schedule_of_the_wrong_type_names_both_forms() {
    let tree = crate::support::tree_of(&[], &[], Some("[delivery]\nretry_schedule = 5\n"));
    let outcome = segd::validate::validate(&tree, &crate::support::MemTemplates::any(""));
    let messages: Vec<&str> = outcome
        .diagnostics
        .iter()
        .map(|d| d.message.as_str())
        .collect();
    assert_eq!(
        messages,
        [
            "`delivery.retry_schedule` must be an array of durations such as [\"0s\", \"5s\", \"5m\"], or one string such as \"0s,5s,5m\""
        ]
    );
}

#[test]
fn color_always_colours_validate_like_rustc() {
    let f = Fixture::empty();
    f.write("segments.d/bad-enum.toml", BAD_ENUM)
        .write("communications.d/.keep", "");
    let a = segd_cmd()
        .current_dir(f.path())
        .args(["--color", "always", "validate"])
        .assert()
        .code(1);
    assert_eq!(
        stdout(&a).replace('\x1b', "␛"),
        "␛[1msegments.d/bad-enum.toml:6:10␛[0m: ␛[1;31merror␛[0m: ␛[1munknown invoice `status` value `pending`␛[0m\n\
         ␛[1;34m  |␛[0m\n\
         ␛[1;34m6 |␛[0m status = \"pending\"\n\
         ␛[1;34m  |␛[0m          ␛[1;31m^^^^^^^^^␛[0m\n  \
         ␛[1;34m= help:␛[0m expected one of: `draft`, `open`, `paid`, `partially_paid`, `overdue`, `void`\n\
         ␛[1;31minvalid␛[0m: 0 segment(s), 0 communication(s) in 1 file(s); 1 error(s), 0 warning(s)\n"
    );
    // Never (and NO_COLOR under auto, which segd_cmd sets): plain text.
    for args in [&["--color", "never", "validate"][..], &["validate"]] {
        let a = segd_cmd().current_dir(f.path()).args(args).assert().code(1);
        assert!(!stdout(&a).contains('\x1b'), "{args:?}: {}", stdout(&a));
    }
}

#[test]
fn an_unreadable_dir_is_a_document_in_json_and_an_annotation_in_github() {
    let f = Fixture::empty();
    let nowhere = f.path().join("nope");
    let shown = nowhere.display().to_string();
    let run = |format: &str| {
        segd_cmd()
            .arg("--dir")
            .arg(&nowhere)
            .args(["validate", "--format", format])
            .assert()
            .code(2)
    };
    let a = run("json");
    assert_eq!(
        json(&a),
        serde_json::json!({
            "version": 1,
            "valid": false,
            "files_checked": 0,
            "errors": 1,
            "warnings": 0,
            "diagnostics": [],
            "error": format!("--dir {shown}: no such directory"),
        })
    );
    assert_eq!(
        stderr(&a),
        format!("error: --dir {shown}: no such directory\n")
    );
    let a = run("github");
    assert_eq!(
        stdout(&a),
        format!("::error title=segd::--dir {shown}: no such directory\n")
    );
}

#[test]
fn a_bad_name_does_not_hide_the_files_other_errors() {
    let f = Fixture::example();
    f.write(
        "segments.d/bad.toml",
        "[segment]\nname = \"Overdue EU\"\n\n[[filter]]\ntype = \"customer\"\ncountry = \"Germany\"\n",
    );
    let a = f.validate("text").code(1);
    let out = stdout(&a);
    assert!(out.contains("invalid segment name `Overdue EU`"), "{out}");
    assert!(out.contains("unknown country code `Germany`"), "{out}");
}
