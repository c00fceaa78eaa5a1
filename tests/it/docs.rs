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

// ---------------------------------------------------------------------------
// Links of README.md and docs/*.md
// ---------------------------------------------------------------------------

/// A heading's anchor as GitHub makes it: lower case, punctuation but `-`
/// and `_` dropped, each space a `-`.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a Markdown text's headings; a repeated one gets `-1`,
/// `-2`, … as on GitHub.
fn anchors(markdown: &str) -> std::collections::BTreeSet<String> {
    use pulldown_cmark::{Event, Parser, Tag, TagEnd};
    let mut out = std::collections::BTreeSet::new();
    let mut seen: std::collections::BTreeMap<String, usize> = Default::default();
    let mut heading: Option<String> = None;
    for event in Parser::new(markdown) {
        match event {
            Event::Start(Tag::Heading { .. }) => heading = Some(String::new()),
            Event::Text(t) | Event::Code(t) => {
                if let Some(h) = &mut heading {
                    h.push_str(&t);
                }
            }
            Event::End(TagEnd::Heading(_)) => {
                if let Some(h) = heading.take() {
                    let base = slug(&h);
                    let n = seen.entry(base.clone()).or_insert(0);
                    out.insert(if *n == 0 {
                        base.clone()
                    } else {
                        format!("{base}-{n}")
                    });
                    *n += 1;
                }
            }
            _ => {}
        }
    }
    out
}

/// Every link and image target of a Markdown text.
fn link_targets(markdown: &str) -> Vec<String> {
    use pulldown_cmark::{Event, Parser, Tag};
    Parser::new(markdown)
        .filter_map(|e| match e {
            Event::Start(Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. }) => {
                Some(dest_url.to_string())
            }
            _ => None,
        })
        .collect()
}

#[test]
fn slugs_follow_github() {
    assert_eq!(slug("segd deliveries"), "segd-deliveries");
    assert_eq!(slug("In CI (GitHub Actions)"), "in-ci-github-actions");
    assert_eq!(slug("`segd.toml` — settings"), "segdtoml--settings");
    assert_eq!(
        slug("Planner statistics and query plans"),
        "planner-statistics-and-query-plans"
    );
    let a = anchors("# A\n## A\n## b_c?\n");
    assert_eq!(a.into_iter().collect::<Vec<_>>(), ["a", "a-1", "b_c"]);
}

/// Every relative link of the README and docs/ names a file inside the
/// repository, and every `#anchor` a heading of the page it points to.
#[test]
fn relative_links_in_readme_and_docs_resolve_inside_the_repository() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .canonicalize()
        .expect("the repository folder");
    let mut pages = vec![repo.join("README.md")];
    let mut docs: Vec<_> = std::fs::read_dir(repo.join("docs"))
        .expect("read docs/")
        .map(|e| e.expect("a docs/ entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    pages.extend(docs);
    let mut broken = Vec::new();
    let mut checked = 0;
    for page in &pages {
        let text = std::fs::read_to_string(page).expect("read a page");
        let shown = page
            .strip_prefix(&repo)
            .unwrap_or(page)
            .display()
            .to_string();
        for target in link_targets(&text) {
            let is_external = target.contains("://") || target.starts_with("mailto:");
            if is_external {
                continue;
            }
            checked += 1;
            let (path, anchor) = match target.split_once('#') {
                Some((p, a)) => (p, Some(a)),
                None => (target.as_str(), None),
            };
            let file = if path.is_empty() {
                page.clone()
            } else {
                page.parent().unwrap_or(&repo).join(path)
            };
            let Ok(file) = file.canonicalize() else {
                broken.push(format!("{shown}: {target}: no such file"));
                continue;
            };
            if !file.starts_with(&repo) {
                broken.push(format!("{shown}: {target}: outside the repository"));
                continue;
            }
            if let Some(anchor) = anchor {
                let is_markdown = file.extension().is_some_and(|e| e == "md");
                let text = std::fs::read_to_string(&file).unwrap_or_default();
                if !is_markdown || !anchors(&text).contains(anchor) {
                    broken.push(format!("{shown}: {target}: no heading #{anchor}"));
                }
            }
        }
    }
    assert!(checked > 20, "only {checked} relative links found");
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}
