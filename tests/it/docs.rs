//! What the repository tells a user: shell completions and the man page, made
//! from the command definitions.

use crate::support::segd_cmd;

/// The subcommands' names, as clap knows them.
fn subcommands() -> Vec<String> {
    use clap::CommandFactory as _;
    segd::cli::Cli::command()
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect()
}

#[test]
fn completions_name_every_subcommand_in_each_shell() {
    let names = subcommands();
    assert!(names.len() > 10, "{names:?}");
    for shell in ["bash", "zsh", "fish"] {
        let o = segd_cmd()
            .args(["completions", shell])
            .output()
            .expect("run segd");
        assert!(o.status.success(), "{shell}: {o:?}");
        let script = String::from_utf8_lossy(&o.stdout);
        for name in &names {
            assert!(
                script.contains(name.as_str()),
                "{shell} completions lack `{name}`"
            );
        }
    }
    let o = segd_cmd()
        .args(["completions", "tcsh"])
        .output()
        .expect("run segd");
    assert_eq!(
        o.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
}

#[test]
fn man_prints_a_roff_page_of_every_subcommand() {
    let o = segd_cmd().arg("man").output().expect("run segd");
    assert!(o.status.success(), "{o:?}");
    // roff writes a hyphen as `\-`.
    let page = String::from_utf8_lossy(&o.stdout).replace(r"\-", "-");
    assert!(page.contains("\n.TH segd 1"), "{page}");
    for name in subcommands() {
        assert!(page.contains(&name), "the man page lacks `{name}`");
    }
}

/// `examples/github-actions.yml` runs as written: segd built from the
/// variables at its top (the version this is), every `segd` line a valid
/// command line, PostgreSQL 15 as the database.
#[test]
fn the_github_actions_example_is_a_workflow_of_valid_segd_commands() {
    use clap::Parser as _;
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/github-actions.yml");
    let text = std::fs::read_to_string(path).expect("read the example workflow");
    assert!(!text.contains("<your"), "a placeholder is left");
    let doc: serde_json::Value = serde_norway::from_str(&text).expect("the workflow is YAML");
    let env = &doc["env"];
    assert_eq!(
        env["SEGD_VERSION"],
        format!("v{}", env!("CARGO_PKG_VERSION")),
        "the example builds this version"
    );
    assert!(env["SEGD_REPOSITORY"].is_string());
    assert_eq!(
        env["SEGD_DATABASE_URL"],
        "postgres://postgres:postgres@localhost:5432/segd"
    );
    let job = &doc["jobs"]["segd"];
    let pg = &job["services"]["postgres"];
    assert_eq!(pg["image"], "postgres:15");
    assert_eq!(pg["env"]["POSTGRES_DB"], "segd");
    assert_eq!(pg["ports"][0], "5432:5432");
    let runs: Vec<&str> = job["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter_map(|s| s["run"].as_str())
        .collect();
    assert!(runs.iter().any(|r| {
        r.contains(r#"cargo install --git "$SEGD_REPOSITORY" --tag "$SEGD_VERSION" --locked segd"#)
    }));
    let segd_lines: Vec<&str> = runs
        .iter()
        .flat_map(|r| r.lines())
        .map(str::trim)
        .filter(|l| l.starts_with("segd "))
        .collect();
    assert_eq!(
        segd_lines,
        [
            "segd validate --format github",
            "segd plan --detailed-exitcode"
        ]
    );
    for line in segd_lines {
        if let Err(e) = segd::cli::Cli::try_parse_from(line.split_whitespace()) {
            panic!("`{line}` does not parse: {e}");
        }
    }
}
