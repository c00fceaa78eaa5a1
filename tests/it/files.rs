//! Reading the definitions tree: only regular files inside `--dir`, each at
//! most `max_file_bytes` (1 MiB by default); links out of the tree, FIFOs and devices are errors at the file,
//! and their content is never read or shown.

use crate::support::{Fixture, segd_cmd};
use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::Duration;

/// A value no output may contain: it stands for every secret in the environment.
const MARKER: &str = "leak-marker-123";

/// Runs `segd ARGS` in the fixture with the marker in the environment (as the
/// SMTP password, webhook secret and API token), at most a minute.
fn run(f: &Fixture, args: &[&str]) -> (i32, String) {
    let o = segd_cmd()
        .current_dir(f.path())
        .env("SEGD_SMTP_PASSWORD", MARKER)
        .env("SEGD_WEBHOOK_SECRET", format!("whsec_{MARKER}"))
        .env("SEGD_API_TOKEN", MARKER)
        .args(args)
        .timeout(Duration::from_secs(60))
        .output()
        .expect("run segd");
    let text = both_outputs(&o);
    assert!(
        !text.contains(MARKER),
        "output leaks the environment:\n{text}"
    );
    (o.status.code().unwrap_or(-1), text)
}

/// Standard output then standard error.
fn both_outputs(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The example tree with `invoice-email`'s template replaced by a link to `target`.
fn template_linked_to(target: &Path) -> Fixture {
    let f = Fixture::example();
    let t = f.path().join("templates/invoice.txt");
    std::fs::remove_file(&t).expect("remove the template");
    symlink(target, &t).expect("link the template");
    f
}

fn assert_refused(f: &Fixture, located: &str, says: &str) {
    let db = format!("sqlite://{}", f.path().join("segd.db").display());
    for args in [
        vec!["validate"],
        vec!["validate", "--format", "json"],
        vec!["--database-url", &db, "plan"],
        vec!["--database-url", &db, "apply", "--auto-approve"],
    ] {
        let (code, out) = run(f, &args);
        assert_eq!(code, 1, "{args:?}:\n{out}");
        let json = args.contains(&"json");
        assert!(
            out.contains(says) && (json || out.contains(located)),
            "{args:?}:\n{out}"
        );
    }
}

#[test]
fn a_template_linked_to_the_environment_is_refused_unread() {
    let f = template_linked_to(Path::new("/proc/self/environ"));
    assert_refused(
        &f,
        "communications.d/invoice-email.toml:17:12",
        "`templates/invoice.txt` is a link to `/proc/self/environ`, outside the definitions folder",
    );
}

#[test]
fn a_definition_file_linked_to_the_environment_is_refused_unread() {
    let f = Fixture::example();
    symlink("/proc/self/environ", f.path().join("segments.d/leak.toml")).expect("link");
    assert_refused(
        &f,
        "segments.d/leak.toml:1:1",
        "`segments.d/leak.toml` is a link to `/proc/self/environ`, outside the definitions folder",
    );
}

#[test]
fn a_folder_link_out_of_the_tree_is_refused() {
    let f = Fixture::example();
    symlink("/", f.path().join("templates/root")).expect("link");
    let c = f.path().join("communications.d/invoice-email.toml");
    let text = std::fs::read_to_string(&c).expect("read");
    std::fs::write(
        &c,
        text.replace("templates/invoice.txt", "templates/root/etc/passwd"),
    )
    .expect("write");
    assert_refused(
        &f,
        "communications.d/invoice-email.toml:17:12",
        "`templates/root` is a link to `/`, outside the definitions folder",
    );
    let (_, out) = run(&f, &["validate"]);
    assert!(!out.contains("root:x:0:0"), "{out}");
}

#[test]
fn a_fifo_does_not_block_validate() {
    let f = Fixture::example();
    let fifo = f.path().join("templates/invoice.txt");
    std::fs::remove_file(&fifo).expect("remove the template");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("run mkfifo");
    assert!(made.success());
    // A FIFO named like a definition file, too.
    std::process::Command::new("mkfifo")
        .arg(f.path().join("segments.d/fifo.toml"))
        .status()
        .expect("run mkfifo");
    let (code, out) = run(&f, &["validate"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("`templates/invoice.txt` is a FIFO, not a regular file"),
        "{out}"
    );
    assert!(
        out.contains("segments.d/fifo.toml:1:1: error: `segments.d/fifo.toml` is a FIFO"),
        "{out}"
    );
}

#[test]
fn a_device_and_an_oversize_file_are_not_read_whole() {
    let f = template_linked_to(Path::new("/dev/zero"));
    let (code, out) = run(&f, &["validate"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("`templates/invoice.txt` is a link to `/dev/zero`, outside"),
        "{out}"
    );

    let f = Fixture::example();
    f.write("templates/invoice.txt", &"a".repeat(1024 * 1024 + 1));
    f.write(
        "segments.d/huge.toml",
        &format!("# {}\n", "x".repeat(1024 * 1024)),
    );
    let (code, out) = run(&f, &["validate"]);
    assert_eq!(code, 1, "{out}");
    for file in ["templates/invoice.txt", "segments.d/huge.toml"] {
        assert!(
            out.contains(&format!(
                "`{file}` is larger than 1048576 bytes (`max_file_bytes` in segd.toml)"
            )),
            "{out}"
        );
    }
    // Exactly the limit is fine.
    f.write("templates/invoice.txt", &"a".repeat(1024 * 1024));
    std::fs::remove_file(f.path().join("segments.d/huge.toml")).expect("remove");
    let (code, out) = run(&f, &["validate"]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn max_file_bytes_in_segd_toml_sets_the_cap() {
    let f = Fixture::example();
    f.write("segd.toml", "max_file_bytes = 2048\n");
    f.write("templates/invoice.txt", &"a".repeat(2049));
    let (code, out) = run(&f, &["validate"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(
            "`templates/invoice.txt` is larger than 2048 bytes (`max_file_bytes` in segd.toml)"
        ),
        "{out}"
    );
    f.write("segd.toml", "max_file_bytes = 4096\n");
    let (code, out) = run(&f, &["validate"]);
    assert_eq!(code, 0, "{out}");
    f.write("segd.toml", "max_file_bytes = 68000000\n");
    let (code, out) = run(&f, &["validate"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("segd.toml:1:18: error: `max_file_bytes` must be between 1024 and 67108864, found 68000000"),
        "{out}"
    );
}

#[test]
fn links_inside_the_tree_are_followed() {
    let f = Fixture::example();
    let t = f.path().join("templates");
    std::fs::rename(t.join("invoice.txt"), t.join("real.txt")).expect("rename");
    symlink("real.txt", t.join("invoice.txt")).expect("link");
    let s = f.path().join("segments.d");
    let first = std::fs::read_dir(&s)
        .expect("list")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "toml"))
        .expect("a segment file");
    std::fs::create_dir_all(f.path().join("shared")).expect("mkdir");
    let moved = f.path().join("shared/seg.toml");
    std::fs::rename(&first, &moved).expect("move");
    symlink(&moved, &first).expect("link");
    let (code, out) = run(&f, &["validate"]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn a_saved_plan_read_from_a_pipe_is_applied_and_a_device_refused() {
    let f = Fixture::example();
    let db = format!("sqlite://{}", f.path().join("segd.db").display());
    let (code, out) = run(&f, &["--database-url", &db, "db", "migrate"]);
    assert_eq!(code, 0, "{out}");
    // `segd apply <(segd plan --out …)`: the plan arrives through a pipe.
    let o = std::process::Command::new("bash")
        .current_dir(f.path())
        .env("SEGD", env!("CARGO_BIN_EXE_segd"))
        .env("DB", &db)
        .arg("-c")
        .arg(r#""$SEGD" --database-url "$DB" apply --auto-approve <("$SEGD" --database-url "$DB" plan --out /dev/fd/3 3>&1 >/dev/null)"#)
        .output()
        .expect("run bash");
    let out = both_outputs(&o);
    assert!(o.status.success(), "{out}");
    let (code, out) = run(&f, &["--database-url", &db, "plan", "--detailed-exitcode"]);
    assert_eq!(code, 0, "the piped plan was not applied:\n{out}");
    // A device is still refused at once (never read).
    let (code, out) = run(
        &f,
        &[
            "--database-url",
            &db,
            "apply",
            "--auto-approve",
            "/dev/zero",
        ],
    );
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("cannot read the plan /dev/zero: it is a device, not a regular file"),
        "{out}"
    );
}

#[test]
fn a_settings_file_linked_out_of_the_tree_stops_the_command_unread() {
    let f = Fixture::example();
    symlink("/proc/self/environ", f.path().join("segd.toml")).expect("link");
    for args in [vec!["validate"], vec!["forecast"]] {
        let (code, out) = run(&f, &args);
        // Like any tree that cannot be read: an error before any check (exit 2).
        assert_eq!(code, 2, "{args:?}:\n{out}");
        assert!(
            out.contains("cannot read segd.toml: `segd.toml` is a link to `/proc/self/environ`"),
            "{args:?}:\n{out}"
        );
    }
}

#[test]
fn a_definitions_folder_linked_out_of_the_tree_is_not_walked() {
    let f = Fixture::example();
    let elsewhere = tempfile::tempdir().expect("a folder outside the tree");
    std::fs::write(
        elsewhere.path().join("secret.toml"),
        format!("[segment]\nname = \"{MARKER}\"\n"),
    )
    .expect("write");
    let link = f.path().join("communications.d");
    std::fs::remove_dir_all(&link).expect("remove communications.d");
    symlink(elsewhere.path(), &link).expect("link");
    let (code, out) = run(&f, &["validate"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "communications.d:1:1: error: `communications.d` is a link to `{}`, outside the definitions folder",
            elsewhere.path().display()
        )),
        "{out}"
    );
    // A folder linked inside the tree is read.
    std::fs::remove_file(&link).expect("unlink");
    std::fs::create_dir(f.path().join("comms")).expect("mkdir");
    symlink("comms", &link).expect("link");
    let (code, out) = run(&f, &["validate"]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn a_dir_with_neither_definitions_folder_is_an_error() {
    let f = Fixture::empty();
    f.write("segd.toml", "");
    let db = format!("sqlite://{}", f.path().join("segd.db").display());
    for args in [
        vec!["validate"],
        vec!["--database-url", &db, "plan"],
        vec!["--database-url", &db, "apply", "--auto-approve"],
        vec!["--database-url", &db, "daemon", "--once"],
    ] {
        let (code, out) = run(&f, &args);
        assert_ne!(code, 0, "{args:?}:\n{out}");
        assert!(
            out.contains("holds neither segments.d/ nor communications.d/"),
            "{args:?}:\n{out}"
        );
        if args[0] != "--database-url" || args[2] != "daemon" {
            assert_eq!(code, 2, "{args:?}:\n{out}");
        }
    }
    // One of them is enough.
    f.write("communications.d/.keep", "");
    let (code, out) = run(&f, &["validate"]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn a_template_in_a_hidden_folder_or_a_definitions_file_is_refused_unread() {
    let f = Fixture::example();
    f.write(".git/config", &format!("[remote]\nurl = {MARKER}\n"));
    f.write("segd.toml", &format!("# {MARKER}\n"));
    let comm = f.path().join("communications.d/invoice-email.toml");
    let original = std::fs::read_to_string(&comm).expect("read");
    for (path, says) in [
        (
            ".git/config",
            "template path `.git/config` names the hidden `.git`",
        ),
        (
            "./templates/.env",
            "template path `./templates/.env` names the hidden `.env`",
        ),
        (
            "segd.toml",
            "template path `segd.toml` names a definitions or settings file",
        ),
        (
            "communications.d/invoice-email.toml",
            "template path `communications.d/invoice-email.toml` names a definitions or settings file",
        ),
    ] {
        let text = original.replace("\"templates/invoice.txt\"", &format!("\"{path}\""));
        assert_ne!(text, original);
        std::fs::write(&comm, text).expect("write");
        assert_refused(&f, "communications.d/invoice-email.toml:17:12", says);
    }
}
