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
