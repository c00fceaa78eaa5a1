//! Drawing the rows: one ChaCha8 stream per customer.

use super::contacts::{company_contact, person_contact};
use super::dice::Dice;
use super::tables::*;
use super::*;
use chrono::{NaiveTime, TimeDelta};
use rand::SeedableRng as _;
use rand_chacha::ChaCha8Rng;

// ---------------------------------------------------------------------------
// The generator

/// Yields the demo data in batches of consecutive customers.
#[derive(Debug, Clone)]
pub struct Generator {
    spec: DemoSpec,
    key: [u8; 32],
    midnight: DateTime<Utc>,
    /// Customers generated so far.
    done: u64,
    payment_methods: u64,
    invoices: u64,
    monitors: u64,
}

impl Generator {
    pub fn new(spec: DemoSpec) -> Result<Self, DemoError> {
        if !(1900..=9000).contains(&spec.today.year()) {
            return Err(DemoError::TodayOutOfRange(spec.today));
        }
        Ok(Self {
            key: ChaCha8Rng::seed_from_u64(spec.seed).get_seed(),
            midnight: spec.today.and_time(NaiveTime::MIN).and_utc(),
            spec,
            done: 0,
            payment_methods: 0,
            invoices: 0,
            monitors: 0,
        })
    }

    pub fn spec(&self) -> &DemoSpec {
        &self.spec
    }

    /// The connectors, the same for every seed.
    pub fn connectors(&self) -> &'static [Connector] {
        CONNECTORS
    }

    /// Customers generated so far.
    pub fn generated(&self) -> u64 {
        self.done
    }

    /// The next `max` customers (fewer at the end) with their rows; `None` when all
    /// customers have been generated.
    pub fn next_batch(&mut self, max: usize) -> Option<Batch> {
        let left = self.spec.customers - self.done;
        if left == 0 {
            return None;
        }
        let n = left.min(max.max(1) as u64);
        let mut batch = Batch {
            customers: Vec::with_capacity(n as usize),
            customer_connectors: Vec::with_capacity(n as usize),
            payment_methods: Vec::with_capacity(n as usize * 3 / 2),
            invoices: Vec::with_capacity(n as usize * 4),
            monitors: Vec::with_capacity(n as usize),
        };
        for _ in 0..n {
            self.done += 1;
            self.customer(self.done, &mut batch);
        }
        Some(batch)
    }

    /// The remaining batches, as an iterator.
    pub fn batches(mut self, size: usize) -> impl Iterator<Item = Batch> {
        std::iter::from_fn(move || self.next_batch(size))
    }
    fn dice(&self, number: u64) -> Dice {
        Dice::new(self.key, number)
    }

    fn days_ago(&self, days: u64) -> NaiveDate {
        self.spec.today - TimeDelta::days(days as i64)
    }

    /// Customer number `number` (1-based) and its related rows.
    fn customer(&mut self, number: u64, out: &mut Batch) {
        let mut d = self.dice(number);
        // Shared by the customer's rows.
        let id: Arc<str> = Arc::from(format!("cus_{number:06}"));

        // Older customers are rarer: the minimum of two uniform draws.
        let age_days = 1 + d.below(MAX_AGE_DAYS).min(d.below(MAX_AGE_DAYS));
        let created_at = self.midnight - TimeDelta::days(age_days as i64)
            + TimeDelta::seconds(d.below(DAY_SECS) as i64);

        let country = {
            let weights = COUNTRIES
                .iter()
                .map(|c| c.weight)
                .chain([NO_COUNTRY_WEIGHT]);
            COUNTRIES.get(d.weighted_index(weights))
        };
        let plan = d.weighted(PLANS);
        let seats = match plan {
            "free" => d.between(1, 3),
            "starter" => d.between(1, 5),
            // Skewed towards small teams: uniform below a uniform bound.
            "pro" => {
                let bound = d.below(48) + 1;
                3 + d.below(bound)
            }
            _ => {
                let bound = d.below(1976) + 1;
                25 + d.below(bound)
            }
        };
        let region = match country {
            Some(c) => c.region,
            None => d.pick(REGIONS),
        };
        let custom_data = match d.below(1000) {
            0..30 => None,
            30..40 => Some("{}".to_string()),
            _ => {
                let trial_pct = match (plan, age_days) {
                    ("enterprise", _) => 4,
                    (_, 0..30) => 50,
                    _ => 10,
                };
                let trial = if d.percent(trial_pct) {
                    ",\"trial\":true"
                } else if d.percent(7) {
                    ",\"trial\":false"
                } else {
                    ""
                };
                Some(format!(
                    "{{\"plan\":\"{plan}\",\"region\":\"{region}\",\"seats\":{seats}{trial}}}"
                ))
            }
        };

        let company = plan == "enterprise" || d.percent(70);
        let (name, email) = if company {
            company_contact(&mut d, country)
        } else {
            person_contact(&mut d)
        };
        let name = match d.below(100) {
            0..2 => name.to_lowercase(),
            2 => name.to_uppercase(),
            _ => name,
        };
        let email = if d.percent(3) { None } else { Some(email) };

        out.customers.push(Customer {
            id: id.clone(),
            name,
            email,
            country: country.map(|c| c.code),
            custom_data,
            created_at,
        });

        // Connectors the customer is linked to: 0-2, distinct.
        let mut linked: Vec<&'static Connector> = Vec::with_capacity(2);
        let links = d.weighted(&[(0usize, 15), (1, 60), (2, 25)]);
        for _ in 0..links {
            let weights = CONNECTORS.iter().zip(LINK_WEIGHTS).map(|(c, w)| {
                if linked.iter().any(|l| l.id == c.id) {
                    0
                } else {
                    w
                }
            });
            let c = &CONNECTORS[d.weighted_index(weights)];
            linked.push(c);
            out.customer_connectors.push(CustomerConnector {
                customer_id: id.clone(),
                connector_id: c.id,
            });
        }

        self.payment_methods_for(&mut d, &id, country, plan, &linked, out);
        self.invoices_for(&mut d, &id, country, plan, seats, age_days, created_at, out);
        self.monitors_for(&mut d, &id, plan, created_at, out);
    }

    fn payment_methods_for(
        &mut self,
        d: &mut Dice,
        customer_id: &Arc<str>,
        country: Option<&Country>,
        plan: &str,
        linked: &[&'static Connector],
        out: &mut Batch,
    ) {
        let n = d.weighted(&[(0usize, 14), (1, 56), (2, 22), (3, 8)]);
        if n == 0 {
            return;
        }
        let mix = match country {
            Some(c) if c.code == "US" => PM_MIX_US,
            Some(c) if c.currency.code == "EUR" => PM_MIX_SEPA,
            _ => PM_MIX_OTHER,
        };
        let first = out.payment_methods.len();
        for _ in 0..n {
            let kind = if plan == "enterprise" && d.percent(35) {
                "bank_transfer"
            } else {
                d.weighted(mix)
            };
            let status = d.weighted(PM_STATUSES);
            let fitting: Vec<&'static Connector> = linked
                .iter()
                .copied()
                .filter(|c| accepts(c.kind, kind))
                .collect();
            let connector_id = if !fitting.is_empty() && d.percent(92) {
                Some(d.pick(&fitting).id)
            } else if d.percent(25) {
                // Sometimes a method lives in a connector the customer is not linked to.
                let any: Vec<&'static Connector> = CONNECTORS
                    .iter()
                    .filter(|c| accepts(c.kind, kind))
                    .collect();
                (!any.is_empty()).then(|| d.pick(&any).id)
            } else {
                None
            };
            self.payment_methods += 1;
            out.payment_methods.push(PaymentMethod {
                id: format!("pm_{:07}", self.payment_methods),
                customer_id: customer_id.clone(),
                kind,
                status,
                connector_id,
                is_default: false,
            });
        }
        // At most one default: the first active method, else the first one.
        if d.percent(88) {
            let methods = &mut out.payment_methods[first..];
            let i = methods
                .iter()
                .position(|m| m.status == "active")
                .unwrap_or(0);
            if let Some(m) = methods.get_mut(i) {
                m.is_default = true;
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn invoices_for(
        &mut self,
        d: &mut Dice,
        customer_id: &Arc<str>,
        country: Option<&Country>,
        plan: &str,
        seats: u64,
        age_days: u64,
        customer_created: DateTime<Utc>,
        out: &mut Batch,
    ) {
        let wanted = d.weighted(&[
            (0u64, 6),
            (1, 14),
            (2, 20),
            (3, 22),
            (4, 18),
            (5, 12),
            (6, 8),
        ]);
        // A young customer has had fewer billing periods.
        let n = wanted.min(1 + age_days / 15);
        let payer = d.weighted(&[(Payer::Good, 80), (Payer::Late, 15), (Payer::Delinquent, 5)]);
        let terms: u64 = if plan == "enterprise" {
            d.weighted(&[(30, 50), (45, 25), (60, 25)])
        } else {
            d.weighted(&[(14, 30), (30, 70)])
        };
        // Monthly amount in US cents.
        let monthly: u64 = match plan {
            "free" => d.between(500, 4_900),
            "starter" => 1_500 * seats,
            "pro" => 4_900 * seats,
            _ => 50_000 + 2_000 * seats,
        };
        let currency = country.map_or(USD, |c| c.currency);
        // Days since the latest invoice was issued: monthly billing.
        let latest = d.between(1, 30);
        for j in (0..n).rev() {
            let jitter = if j == 0 { 0 } else { d.below(3) };
            let days_ago = (latest + 30 * j + jitter).min(age_days).max(1);
            let created_date = self.days_ago(days_ago);
            let created_at = (created_date.and_time(NaiveTime::MIN).and_utc()
                + TimeDelta::seconds(d.between(6 * 3600, 22 * 3600) as i64))
            .max(customer_created);
            let due_date = created_date + TimeDelta::days(terms as i64);
            let past_due = (self.spec.today - due_date).num_days();
            let mut status = invoice_status(d, past_due, payer);
            if days_ago <= 3 && past_due < 0 && d.percent(40) {
                status = "draft";
            }
            let usage = monthly * d.between(90, 110) / 100;
            let (num, den) = currency.rate;
            let amount_cents = (usage as i64 * num / den).max(100);
            self.invoices += 1;
            out.invoices.push(Invoice {
                id: format!("inv_{:07}", self.invoices),
                customer_id: customer_id.clone(),
                number: format!("INV-{}-{:06}", created_date.year(), self.invoices),
                status,
                amount_cents,
                currency: currency.code,
                due_date,
                created_at,
            });
        }
    }

    fn monitors_for(
        &mut self,
        d: &mut Dice,
        customer_id: &Arc<str>,
        plan: &str,
        customer_created: DateTime<Utc>,
        out: &mut Batch,
    ) {
        let chance = match plan {
            "free" => 15,
            "starter" => 30,
            "pro" => 55,
            _ => 85,
        };
        if !d.percent(chance) {
            return;
        }
        let n = d.weighted(&[(1usize, 45), (2, 30), (3, 15), (4, 10)]);
        // A random selection of distinct names (partial Fisher-Yates).
        let mut names = [0usize, 1, 2, 3];
        for i in 0..n {
            let j = i + d.below((names.len() - i) as u64) as usize;
            names.swap(i, j);
        }
        for &k in &names[..n] {
            let state = d.weighted(MONITOR_STATES);
            let seconds_ago = if state == "no_data" {
                d.between(2 * DAY_SECS, 60 * DAY_SECS)
            } else {
                d.between(60, 3 * DAY_SECS)
            };
            let updated_at =
                (self.midnight - TimeDelta::seconds(seconds_ago as i64)).max(customer_created);
            self.monitors += 1;
            out.monitors.push(Monitor {
                id: format!("mon_{:07}", self.monitors),
                customer_id: customer_id.clone(),
                name: MONITOR_NAMES[k],
                state,
                updated_at,
            });
        }
    }
}

/// An invoice's status given how many days past its due date it is at `today`
/// (negative: due in the future) and how its customer pays.
pub(super) fn invoice_status(d: &mut Dice, past_due: i64, payer: Payer) -> &'static str {
    let table: &[(&str, u32)] = match (past_due, payer) {
        (..0, _) => &[
            ("open", 78),
            ("paid", 12),
            ("partially_paid", 5),
            ("draft", 3),
            ("void", 2),
        ],
        (0, _) => &[("open", 80), ("partially_paid", 10), ("paid", 10)],
        (1..=90, Payer::Good) => &[
            ("paid", 88),
            ("overdue", 5),
            ("open", 3),
            ("partially_paid", 2),
            ("void", 2),
        ],
        (1..=90, Payer::Late) => &[
            ("paid", 45),
            ("overdue", 35),
            ("open", 8),
            ("partially_paid", 9),
            ("void", 3),
        ],
        (1..=90, Payer::Delinquent) => &[
            ("overdue", 70),
            ("open", 10),
            ("partially_paid", 10),
            ("paid", 8),
            ("void", 2),
        ],
        (_, Payer::Good) => &[("paid", 95), ("void", 4), ("overdue", 1)],
        (_, Payer::Late) => &[
            ("paid", 80),
            ("overdue", 12),
            ("void", 5),
            ("partially_paid", 3),
        ],
        (_, Payer::Delinquent) => &[
            ("overdue", 60),
            ("paid", 25),
            ("void", 10),
            ("partially_paid", 5),
        ],
    };
    d.weighted(table)
}
