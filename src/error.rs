//! Rendering an error once, with its causes.

/// The error and each of its sources, joined by `: ` on one line; a source
/// whose text is already shown (some errors repeat their source's message in
/// their own) is skipped.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let more = e.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    #[error("cannot read {0}")]
    struct Outer(&'static str, #[source] std::io::Error);

    #[test]
    fn a_chain_shows_each_cause_once() {
        let io = std::io::Error::other("disk on fire");
        assert_eq!(
            super::chain(&Outer("a.toml", io)),
            "cannot read a.toml: disk on fire"
        );
        let repeated = std::io::Error::other(Outer("b.toml", std::io::Error::other("gone")));
        assert_eq!(super::chain(&repeated), "cannot read b.toml: gone");
    }
}
