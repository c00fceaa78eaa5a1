//! The README's quickstart, end to end, with the real binary in a fresh
//! folder holding the repository's example definitions: demo data, apply, a
//! dry run, then `trigger invoice-email`, which succeeds and writes an `.eml`
//! for every customer it can reach.

use crate::support::strings;
use assert_cmd::Command;
use std::collections::BTreeSet;
use std::path::Path;

/// Copies the folder `from` into `to`, recursively.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create a folder");
    for entry in std::fs::read_dir(from).expect("read a folder") {
        let entry = entry.expect("a folder entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("a file type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy a file");
        }
    }
}

/// `segd ARGS` in `dir`, with none of the settings a developer's shell may hold.
fn segd(dir: &Path, args: &[&str]) -> assert_cmd::assert::Assert {
    let mut c = Command::cargo_bin("segd").expect("the segd binary");
    for (k, _) in std::env::vars() {
        if k.starts_with("SEGD_") {
            c.env_remove(k);
        }
    }
    c.current_dir(dir).env("NO_COLOR", "1").args(args).assert()
}

fn stdout(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stdout).into_owned()
}

fn stderr(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stderr).into_owned()
}

/// The number before `what` in `text` (`… 25 unreachable …` → 25).
fn number_before(text: &str, what: &str) -> u64 {
    let at = text
        .find(what)
        .unwrap_or_else(|| panic!("no `{what}` in: {text}"));
    text[..at]
        .split_whitespace()
        .last()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number before `{what}` in: {text}"))
}

#[test]
fn the_quickstart_succeeds_on_a_fresh_folder() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::tempdir().expect("a temporary folder");
    let dir = tmp.path();
    for folder in ["segments.d", "communications.d", "templates"] {
        copy_tree(&repo.join(folder), &dir.join(folder));
    }

    segd(dir, &["demo-data"]).success();
    segd(dir, &["validate"]).success();
    // The plan's impact says whom the email communications cannot reach.
    let plan = stdout(&segd(dir, &["plan"]).success());
    assert!(
        number_before(&plan, " unreachable by email (no email address)") > 0,
        "{plan}"
    );
    segd(dir, &["apply", "--auto-approve"]).success();

    let dry = segd(dir, &["trigger", "invoice-email", "--dry-run"]).success();
    let listed: BTreeSet<String> = stdout(&dry)
        .lines()
        .filter_map(|l| l.split('\t').next().map(str::to_string))
        .collect();
    let unreachable = number_before(&stderr(&dry), " unreachable (no email address)");
    assert!(
        unreachable > 0,
        "the demo data has customers without an email address: {}",
        stderr(&dry)
    );

    // Who the run can reach, from the database: the segment's members with an
    // address.
    let db = format!("sqlite://{}", dir.join("segd.db").display());
    let members: BTreeSet<String> = stdout(&segd(dir, &["segment", "members", "open-invoices"]))
        .lines()
        .map(str::to_string)
        .collect();
    let with_address: BTreeSet<String> = strings(
        &db,
        "SELECT id || ' ' || email FROM customers WHERE NULLIF(TRIM(email), '') IS NOT NULL",
    )
    .into_iter()
    .filter(|row| members.contains(row.split(' ').next().unwrap_or_default()))
    .collect();
    let reachable: BTreeSet<String> = with_address
        .iter()
        .map(|row| row.split(' ').next().unwrap_or_default().to_string())
        .collect();
    assert_eq!(listed, reachable, "the dry run lists who the run reaches");
    assert_eq!(
        members.len() as u64 - reachable.len() as u64,
        unreachable,
        "the others are unreachable"
    );

    let run = segd(dir, &["trigger", "invoice-email"]).success();
    let report = stdout(&run);
    assert!(
        report.starts_with(&format!(
            "invoice-email: {} recipient(s), ",
            reachable.len()
        )),
        "{report}"
    );
    assert_eq!(
        number_before(&report, " unreachable (no email address)"),
        unreachable
    );
    assert!(
        report.contains(", 0 failed, 0 retrying, 0 dead"),
        "{report}"
    );

    // Every reachable customer has an email in outbox/.
    let mut addressed = BTreeSet::new();
    for entry in std::fs::read_dir(dir.join("outbox")).expect("the outbox folder") {
        let path = entry.expect("an outbox entry").path();
        assert_eq!(path.extension().and_then(|e| e.to_str()), Some("eml"));
        let mail = std::fs::read_to_string(&path).expect("read an .eml");
        let to = mail
            .lines()
            .find_map(|l| l.strip_prefix("To: "))
            .unwrap_or_else(|| panic!("no To: in {}", path.display()))
            .to_lowercase();
        addressed.insert(to);
    }
    for row in &with_address {
        let (id, email) = row.split_once(' ').unwrap_or_default();
        let email = email.trim().to_lowercase();
        assert!(
            addressed.iter().any(|to| to.contains(&email)),
            "no .eml for {id} <{email}>"
        );
    }

    let runs = segd(dir, &["deliveries", "runs"]).success();
    assert!(stdout(&runs).contains("UNREACHABLE"), "{}", stdout(&runs));
    segd(dir, &["deliveries", "--status", "sent"]).success();
    segd(dir, &["forecast", "--days", "7"]).success();
}
