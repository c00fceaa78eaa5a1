//! The random segment generator: every filter type, field and operator, `negate`
//! and `match = "any"`, with the values drawn from [`Pools`]. Shared by the
//! property test (`segments::sql_agrees_with_the_reference_evaluator`, whose
//! pools hit its small random datasets) and the shapes benchmark
//! (`benches/segment_shapes.rs`, which includes this file by path and draws its
//! pools from the demo data), so the bench times the shapes the test checks.

use proptest::prelude::*;
use proptest::sample::{select, subsequence};
use proptest::strategy::Union;
use segd::model::{
    Condition, CustomDataKey, Field, Filter, FilterType, MatchMode, Name, Op, Scalar, Segment,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The values conditions compare with. Each is drawn uniformly from its pool,
/// so a value listed twice is drawn twice as often.
#[derive(Debug, Clone)]
pub struct Pools {
    /// One non-empty pool for every field of [`Field::ALL`].
    pub fields: BTreeMap<Field, Vec<Scalar>>,
    /// The custom_data keys conditions name, each with its own values.
    pub custom_data: Vec<(String, CustomPool)>,
    /// Whether now and then an `in`/`not_in` list is padded past
    /// [`LONG_LIST`] values that match nothing.
    pub long_lists: bool,
}

/// The length a padded list exceeds.
pub const LONG_LIST: usize = 40_000;

/// `LONG_LIST` distinct values of the kind of `like` that no data holds
/// (strings no pool has, day counts decades away, numbers far out), or none
/// for a kind with too few values (booleans, instants).
fn padding(like: &Scalar) -> Vec<Scalar> {
    let n = LONG_LIST as i64 + 1;
    match like {
        Scalar::Str(_) => (0..n).map(|i| Scalar::Str(format!("~pad {i}"))).collect(),
        Scalar::Int(_) => (0..n).map(|i| Scalar::Int(100_000 + i)).collect(),
        Scalar::Float(_) => (0..n).map(|i| Scalar::Float(1e9 + i as f64)).collect(),
        Scalar::Bool(_) | Scalar::Time(_) => Vec::new(),
    }
}

/// The values of one custom_data key, by the operators they serve (each non-empty).
#[derive(Debug, Clone)]
pub struct CustomPool {
    /// For `contains`, `starts_with`, `ends_with` (and the others).
    pub texts: Vec<Scalar>,
    /// For `gt`, `gte`, `lt`, `lte` (and the others).
    pub numbers: Vec<Scalar>,
    /// For `eq`, `ne`, `in`, `not_in` only, besides the texts and numbers.
    pub others: Vec<Scalar>,
}

impl CustomPool {
    fn values(&self, op: Op) -> BoxedStrategy<Scalar> {
        match op {
            Op::Contains | Op::StartsWith | Op::EndsWith => select(self.texts.clone()).boxed(),
            Op::Gt | Op::Gte | Op::Lt | Op::Lte => select(self.numbers.clone()).boxed(),
            _ => {
                let mut all = self.texts.clone();
                all.extend(self.numbers.iter().cloned());
                all.extend(self.others.iter().cloned());
                select(all).boxed()
            }
        }
    }
}

fn with_op(op: Op, values: BoxedStrategy<Scalar>, long_lists: bool) -> BoxedStrategy<Condition> {
    let long = prop::bool::weighted(if long_lists { 0.05 } else { 0.0 });
    match op {
        Op::Exists => any::<bool>().prop_map(Condition::Exists).boxed(),
        Op::In | Op::NotIn => (prop::collection::vec(values, 1..4), long)
            .prop_map(move |(vs, long)| {
                let mut distinct: Vec<Scalar> = Vec::new();
                for v in vs {
                    if !distinct.contains(&v) {
                        distinct.push(v);
                    }
                }
                if long {
                    // The given values first, then the padding.
                    distinct.extend(padding(&distinct[0]));
                }
                Condition::List(op, distinct)
            })
            .boxed(),
        _ => values.prop_map(move |v| Condition::Compare(op, v)).boxed(),
    }
}

fn field_condition(pools: &Pools, field: Field) -> BoxedStrategy<Condition> {
    let values = pools
        .fields
        .get(&field)
        .cloned()
        .expect("a value pool for every field");
    let long_lists = pools.long_lists;
    select(field.ops())
        .prop_flat_map(move |op| with_op(op, select(values.clone()).boxed(), long_lists))
        .boxed()
}

/// One custom_data key (uniformly) and a condition on it.
fn custom_entry(pools: &Pools) -> BoxedStrategy<(CustomDataKey, Condition)> {
    let long_lists = pools.long_lists;
    let entries = pools.custom_data.iter().map(|(key, pool)| {
        let (key, pool) = (
            CustomDataKey::parse(key).expect("a valid key"),
            pool.clone(),
        );
        select(Op::ALL.to_vec())
            .prop_flat_map(move |op| with_op(op, pool.values(op), long_lists))
            .prop_map(move |c| (key.clone(), c))
    });
    Union::new(entries).boxed()
}

fn filter(pools: Arc<Pools>) -> impl Strategy<Value = Filter> {
    select(FilterType::ALL.to_vec())
        .prop_flat_map(move |filter_type| {
            let fields: Vec<Field> = filter_type.fields().collect();
            let most = fields.len().min(3);
            let chosen_pools = pools.clone();
            let conditions = subsequence(fields, 0..=most).prop_flat_map(move |chosen| {
                chosen
                    .into_iter()
                    .map(|f| field_condition(&chosen_pools, f).prop_map(move |c| (f, c)))
                    .collect::<Vec<_>>()
            });
            // A key drawn twice keeps its last condition.
            let custom_data = if filter_type == FilterType::Customer {
                prop::collection::vec(custom_entry(&pools), 0..=2)
                    .prop_map(|entries| entries.into_iter().collect::<BTreeMap<_, _>>())
                    .boxed()
            } else {
                Just(BTreeMap::new()).boxed()
            };
            (prop::bool::weighted(0.25), conditions, custom_data).prop_map(
                move |(negate, conditions, custom_data)| Filter {
                    filter_type,
                    negate,
                    conditions: conditions.into_iter().collect(),
                    custom_data,
                },
            )
        })
        .prop_filter("a block holds at least one condition", |f| {
            !f.conditions.is_empty() || !f.custom_data.is_empty()
        })
}

/// A segment of 0 to 4 blocks (no block one time in nine), `match` all or any.
pub fn segment(pools: Arc<Pools>) -> impl Strategy<Value = Segment> {
    (
        select(vec![MatchMode::All, MatchMode::Any]),
        prop_oneof![
            1 => prop::collection::vec(filter(pools.clone()), 0..=0),
            8 => prop::collection::vec(filter(pools), 1..=4),
        ],
    )
        .prop_map(|(match_mode, filters)| Segment {
            name: Name::parse("random").expect("a valid name"),
            description: None,
            match_mode,
            protect: false,
            filters,
        })
}

/// What `segments` leave out of: every field with every operator that fits it,
/// every operator on custom data, `negate` on every filter type and
/// `match = "any"`. Empty when they hold them all.
pub fn uncovered(segments: &[Segment]) -> Vec<String> {
    let mut seen: BTreeSet<(Field, Op)> = BTreeSet::new();
    let mut custom: BTreeSet<Op> = BTreeSet::new();
    let mut negated: BTreeSet<FilterType> = BTreeSet::new();
    for f in segments.iter().flat_map(|s| &s.filters) {
        seen.extend(f.conditions.iter().map(|(field, c)| (*field, c.op())));
        custom.extend(f.custom_data.values().map(Condition::op));
        if f.negate {
            negated.insert(f.filter_type);
        }
    }
    let any = segments.iter().any(|s| s.match_mode == MatchMode::Any);
    Field::ALL
        .into_iter()
        .flat_map(|f| f.ops().into_iter().map(move |op| (f, op)))
        .filter(|pair| !seen.contains(pair))
        .map(|(f, op)| format!("{}.{} {}", f.filter_type().as_str(), f.key(), op.as_str()))
        .chain(
            Op::ALL
                .into_iter()
                .filter(|op| !custom.contains(op))
                .map(|op| format!("custom_data {}", op.as_str())),
        )
        .chain(
            FilterType::ALL
                .into_iter()
                .filter(|t| !negated.contains(t))
                .map(|t| format!("negate on {}", t.as_str())),
        )
        .chain((!any).then(|| "match = \"any\"".to_string()))
        .collect()
}
