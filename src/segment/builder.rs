//! The query under construction: the dialect, the bound values and the
//! joins a predicate needs.

use super::{Bind, Dialect};
use crate::model::{Condition, CustomDataKey, Field, Op};

#[derive(Clone)]
pub(super) struct Builder {
    pub(super) dialect: Dialect,
    pub(super) binds: Vec<Bind>,
    /// Whether the predicate being built is computed for every customer
    /// (under NOT COALESCE, in a select list, or on SQLite under
    /// `match = "any"`, whose OR is tested per customer): there EXISTS
    /// cannot become a join on PostgreSQL, no list drives on SQLite (see
    /// [`super::related`]), and a custom_data test is a set on SQLite (see
    /// [`super::custom_data::custom_data`]).
    pub(super) per_row: bool,
    /// PostgreSQL, `match = "any"` at the top: related blocks become joins
    /// (see [`joined`]), collected in `joins`.
    pub(super) any_join: bool,
    /// `LEFT JOIN …` clauses the query's `FROM customers c` must carry.
    pub(super) joins: Vec<String>,
    /// SQLite, `match = "all"`: what the query is driven from (see
    /// [`super::segment_predicate`]).
    pub(super) driver: Driver,
    /// SQLite: the customers the query is about, to which each list of a
    /// related block's customers is restricted (see [`super::related`]).
    pub(super) scope: Scope,
    /// SQLite: a test of the query's choice, the limit of the list that
    /// drives (taken by it), so that it reads rows only where chosen (see
    /// [`super::drive::chosen_driver`], and a customer block's sets of its
    /// links and of its default method, [`super::driven_set`]).
    pub(super) guard: Option<String>,
    /// SQLite: the blocks compiled are the customers' select of a merge (an
    /// `any`'s, or a merged `all`'s scanned customer block: [`super::merge`],
    /// [`Self::scanned`]), which tests every customer without being
    /// `per_row` (its custom data in place, for the index it may use, but
    /// where that select scans every customer anyway,
    /// [`super::merge_scans`], with [`Builder::everyone`]): a
    /// positive customer block's tests are ordered there as under
    /// `per_row` (see [`super::compile_block`]), and may be one set
    /// ([`super::driven_set`]).
    pub(super) own_scanned: bool,
    /// SQLite: the blocks compiled are asked of every customer, scanned (an
    /// `any`'s, or an `all`'s that no list or index range of the customers'
    /// own drives): a negated customer block may then be one set built for
    /// all of them (see [`super::driven_set`], which also asks for the
    /// scope of all customers, no merge's customers' select and no driver
    /// of customers), and a custom_data test a set (see
    /// [`super::custom_data::custom_data`]).
    pub(super) everyone: bool,
    /// SQLite: the blocks compiled are an `all` of one block, which reads
    /// nothing of the customers but its own tests: a customer block of one
    /// custom_data key's test alone is then read from the key's index alone,
    /// never a set (see [`super::custom_sets`]).
    pub(super) one_block: bool,
    /// SQLite, `match = "all"` driven by the customers: the one test of the
    /// customers' own (a positive customer block's field or custom_data
    /// key) an index may serve, or a key's test whose set drives; the
    /// others an index may serve are hidden from the planner (see
    /// [`super::drive::chosen_index`], [`super::drive::chosen_driver`]).
    /// `None`: none hidden.
    pub(super) kept_index: Option<OwnTest>,
    /// SQLite: a positive customer block that would be one set driven by
    /// its related rows where a sample finds few ([`super::driven_set`]) is
    /// that set alone, its sample collected here: the one-list form of a
    /// sampled count of an `any`, held where every such sample finds few
    /// ([`super::merge::count_any`]). `None`: each set behind its sample.
    pub(super) bare_sets: Option<Vec<String>>,
    /// SQLite: the custom_data tests that are a set a sample chooses (of
    /// the customers that pass where few have the key, else of those that
    /// fail: [`super::custom_data::custom_data`]) and a term of the query's
    /// top AND (not `per_row`: under an OR or a NOT no set drives), each one's sample in the
    /// order they are met as the query is compiled, and the one written as
    /// the set of those that pass alone, which the planner may drive from
    /// (see [`super::bare_keyed`]). `None`: each set behind its sample.
    pub(super) bare_key: Option<BareKey>,
    /// SQLite: whether a customer block's links drive it ahead of its
    /// default method: a set's choice where both may (see
    /// [`super::driven_set`]), or an arm's of a choice of driver, of any
    /// class (see [`super::drive::chosen_driver`]); the first block's of an
    /// `all` alone. `None`: as their classes say ([`super::links_drive`]).
    pub(super) links_first: Option<bool>,
    /// SQLite: a custom_data set of customers is probed, never driven from
    /// (`+c.rowid IN …`): another test drives (see [`super::ranged_key_count`]).
    pub(super) probed_sets: bool,
}

/// See [`Builder::bare_key`].
#[derive(Debug, Default, Clone)]
pub(super) struct BareKey {
    /// Which of the tests (counted in the order written) is the set of
    /// those that pass alone; `None`: none.
    pub(super) at: Option<usize>,
    /// The sample of each test met, whether few customers have its key.
    pub(super) samples: Vec<String>,
}

/// A test of a customer's own row or custom data, by what it reads.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum OwnTest {
    Field(Field),
    Key(CustomDataKey),
    /// A key's test no index range serves, the set of the customers that
    /// pass it ([`super::unindexed_set`]).
    Set(CustomDataKey, Condition),
}

/// SQLite, `match = "all"`: what a query is driven from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Driver {
    /// Not chosen (`match = "any"`, a predicate computed for every customer, a
    /// block under NOT, or every related block may hold most rows): the
    /// customers are scanned, each list of unpaid invoices probed, each other
    /// related block looked up per customer (see [`super::related`]).
    Unchosen,
    /// The next related block is the list the query is driven from.
    List,
    /// The customers, through their own tests or the narrow list that drove
    /// (see [`super::all_of`]): every related block is looked up per
    /// customer that passes them, and no list is built.
    Customers,
}

/// SQLite: which customers a query is about (placeholders bound to ids).
#[derive(Clone)]
pub(super) enum Scope {
    /// Every customer.
    All,
    /// One customer: a list holds that customer's rows only, not every
    /// customer's.
    One(String),
    /// The customers whose ids are after the first (when given) and at most
    /// the second (when given): a page of members read window by window.
    Window(Option<String>, Option<String>),
}

impl Builder {
    pub(super) fn new(dialect: Dialect) -> Self {
        Self {
            dialect,
            binds: Vec::new(),
            per_row: false,
            any_join: false,
            joins: Vec::new(),
            driver: Driver::Unchosen,
            scope: Scope::All,
            guard: None,
            own_scanned: false,
            everyone: false,
            one_block: false,
            kept_index: None,
            bare_sets: None,
            bare_key: None,
            links_first: None,
            probed_sets: false,
        }
    }

    /// `ask` compiled with [`Self::own_scanned`] and [`Self::everyone`] as
    /// given (the blocks of a merge's select of the customers), both as they
    /// were after.
    pub(super) fn scanned<T>(
        &mut self,
        own_scanned: bool,
        everyone: bool,
        ask: impl FnOnce(&mut Self) -> T,
    ) -> T {
        let kept = (
            std::mem::replace(&mut self.own_scanned, own_scanned),
            std::mem::replace(&mut self.everyone, everyone),
        );
        let asked = ask(self);
        (self.own_scanned, self.everyone) = kept;
        asked
    }

    /// The test `conds` on a related table aliased `alias`, restricted to the
    /// customers the query is about (see [`Self::scope`]).
    pub(super) fn scoped(&self, alias: &str, conds: &str) -> String {
        let key = format!("{alias}.customer_id");
        let bounds = match &self.scope {
            Scope::All => Vec::new(),
            Scope::One(p) => vec![format!("{key} = {p}")],
            Scope::Window(after, until) => {
                let after = after.iter().map(|p| format!("{key} > {p}"));
                after
                    .chain(until.iter().map(|p| format!("{key} <= {p}")))
                    .collect()
            }
        };
        if bounds.is_empty() {
            return conds.to_string();
        }
        format!("{} AND ({conds})", bounds.join(" AND "))
    }

    /// The joins collected while building a predicate, as text to follow
    /// `FROM customers c`.
    pub(super) fn join_clauses(&self) -> String {
        self.joins.iter().map(|j| format!(" {j}")).collect()
    }

    pub(super) fn bind(&mut self, b: Bind) -> String {
        self.binds.push(b);
        format!("${}", self.binds.len())
    }

    pub(super) fn text(&mut self, s: &str) -> String {
        self.bind(Bind::Text(s.to_string()))
    }

    /// `expr` compared with ASCII case folded, as SPEC §2.1 says (the value
    /// it is compared with is folded already). SQLite: its NOCASE
    /// collation, which folds the ASCII letters alone, as its `lower` does,
    /// but makes no lower-case copy of each row's text, and lets the NOCASE
    /// indexes of names and emails (migration 0011) serve an equality or a
    /// list. On 200,000 customers (CPU time), `email = …` was a scan of
    /// every email with `lower` (36 ms) and is one search of the index
    /// (0.01 ms); `email ne …` took 45 ms with `lower`, 15 ms so, `name ne
    /// …` 22 ms and 8. PostgreSQL: [`Self::lower`].
    pub(super) fn case_folded(&self, expr: &str) -> String {
        match self.dialect {
            Dialect::Sqlite => format!("{expr} COLLATE NOCASE"),
            Dialect::Postgres => self.lower(expr),
        }
    }

    /// ASCII-only lower case, as SPEC §2.1 says: PostgreSQL's `lower` folds only
    /// ASCII letters under the "C" collation (and is Unicode-aware otherwise);
    /// it is several times faster than `translate`.
    pub(super) fn lower(&self, expr: &str) -> String {
        match self.dialect {
            Dialect::Sqlite => format!("lower({expr})"),
            Dialect::Postgres => format!("lower({expr} COLLATE \"C\")"),
        }
    }

    pub(super) fn true_(&self) -> &'static str {
        match self.dialect {
            Dialect::Sqlite => "1",
            Dialect::Postgres => "TRUE",
        }
    }

    pub(super) fn false_(&self) -> &'static str {
        match self.dialect {
            Dialect::Sqlite => "0",
            Dialect::Postgres => "FALSE",
        }
    }

    /// A string operator on `expr` (for a case-insensitive field, its
    /// [`Self::case_folded`] form, and `want` folded), with `want` bound.
    /// On SQLite that form is a collation, which `=` and `<>` (and a list,
    /// [`Self::in_list`]) follow and `instr` or `substr` would not: a
    /// substring of such a field is a `LIKE` there (`string_condition`).
    ///
    /// PostgreSQL estimates how many rows a substring test keeps from the
    /// column's statistics where it is `starts_with` or `LIKE` (a support
    /// function, the histogram), and guesses 0.5% for `left(…) = …`: the
    /// monitors whose name starts with "storage" (37,207 of 148,541) were
    /// estimated at 743, and an `all` of them and no default payment method
    /// (fixed-seed shape-143, 200,000 customers) looked up each one's
    /// customer and methods in 229 ms; estimated at 36,700, it hashes both
    /// sets in 66 ms.
    pub(super) fn string_op(&mut self, expr: &str, op: Op, want: &str) -> String {
        if self.dialect == Dialect::Postgres && matches!(op, Op::Contains | Op::EndsWith) {
            let p = self.text(&like_pattern(op, want));
            return format!("{expr} LIKE {p}");
        }
        let p = self.text(want);
        match (op, self.dialect) {
            (Op::Eq, _) => format!("{expr} = {p}"),
            (Op::Ne, _) => format!("{expr} <> {p}"),
            (Op::Contains, Dialect::Sqlite) => format!("instr({expr}, {p}) > 0"),
            (Op::StartsWith, Dialect::Sqlite) => format!("substr({expr}, 1, length({p})) = {p}"),
            (Op::StartsWith, Dialect::Postgres) => format!("starts_with({expr}, {p})"),
            (Op::EndsWith, Dialect::Sqlite) if want.is_empty() => format!("{expr} = {expr}"),
            (Op::EndsWith, Dialect::Sqlite) => format!("substr({expr}, -length({p})) = {p}"),
            _ => self.false_().to_string(),
        }
    }

    /// `expr IN (…)` (`NOT IN` when `not`) over `values` (a list:
    /// [`Bind::Texts`], [`Bind::Dates`]), bound as one value: SQLite reads
    /// it as a set (`json_each`), PostgreSQL as an array (`= ANY`, `<> ALL`).
    /// Whatever its length, a list is one parameter: it never meets a
    /// backend's limit on parameters and the SQL text does not depend on it.
    /// segd's queries are unnamed statements, planned with their values
    /// (`persistent(false)`), so PostgreSQL reads the array as a constant:
    /// it estimates the rows the list keeps from the column's statistics,
    /// and hashes a list of 9 values or more, never comparing a row with
    /// each value. Read as a set (`jsonb_array_elements_text`), the list was
    /// estimated at 100 values whatever it held: the listing of the
    /// customers with a PayPal method (32,000 of 200,000) probed each
    /// customer's methods in turn, in 290-350 ms; as an array, 58-62 ms.
    pub(super) fn in_list(&mut self, expr: &str, not: bool, values: Bind) -> String {
        let p = self.bind(values);
        match (self.dialect, not) {
            (Dialect::Sqlite, false) => format!("{expr} IN (SELECT value FROM json_each({p}))"),
            (Dialect::Sqlite, true) => format!("{expr} NOT IN (SELECT value FROM json_each({p}))"),
            (Dialect::Postgres, false) => format!("{expr} = ANY({p})"),
            (Dialect::Postgres, true) => format!("{expr} <> ALL({p})"),
        }
    }
}

/// The `LIKE` pattern of a substring test (`op` contains, starts or ends
/// with `want`): `want`'s wildcards and escape character escaped with `\`,
/// SQLite's `LIKE … ESCAPE '\'` and PostgreSQL's default.
pub(super) fn like_pattern(op: Op, want: &str) -> String {
    let escaped = want
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    match op {
        Op::Contains => format!("%{escaped}%"),
        Op::StartsWith => format!("{escaped}%"),
        _ => format!("%{escaped}"),
    }
}
