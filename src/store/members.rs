//! What segment queries return: members, and the plans a database chose.

/// One member of a segment.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Member {
    pub id: String,
    pub name: Option<String>,
    pub email: Option<String>,
}

/// One step of the plan a database chose for a query, with the steps it
/// runs for each of its rows or once before it (SQLite's `EXPLAIN QUERY PLAN`
/// rows; PostgreSQL's `EXPLAIN` nodes, each with what it is to its parent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanNode {
    pub label: String,
    pub children: Vec<PlanNode>,
}

/// The longest plan step [`PlanNode`]'s `Display` shows, in characters.
const LABEL_CHARS: usize = 400;

impl std::fmt::Display for PlanNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        fn write(
            node: &PlanNode,
            depth: usize,
            f: &mut std::fmt::Formatter<'_>,
        ) -> std::fmt::Result {
            // A condition may quote a whole bound list: show its start.
            let label: String = node.label.chars().take(LABEL_CHARS).collect();
            let more = if label.len() < node.label.len() {
                "…"
            } else {
                ""
            };
            writeln!(f, "{:width$}{label}{more}", "", width = depth * 2)?;
            node.children
                .iter()
                .try_for_each(|c| write(c, depth + 1, f))
        }
        write(self, 0, f)
    }
}
