//! Realistic, deterministic demo billing data for `segd demo-data` (SPEC §5): rows
//! for every SPEC §4 billing table as a pure function of a seed, a customer count
//! and the date the data is relative to. No IO and no clock.
//!
//! Customer `n` draws from its own ChaCha8 stream (the seed's key, stream `n`), so
//! it looks the same whatever the batch size and the customer count; the ids of
//! payment methods, invoices and monitors are numbered in order. Customers come in
//! batches ([`Generator::next_batch`]) so a million of them never sit in memory.
//!
//! Email addresses use reserved example domains (RFC 2606, RFC 6761): a communication
//! triggered on demo data must never reach a real mailbox.

use chrono::{DateTime, Datelike as _, NaiveDate, NaiveTime, TimeDelta, Timelike as _, Utc};
use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;
use std::fmt::Write as _;
use std::sync::Arc;

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoSpec {
    pub seed: u64,
    pub customers: u64,
    /// The date the data is relative to: due dates, ages and "last updated" times
    /// fall around it, and every timestamp lies before its midnight (UTC).
    pub today: NaiveDate,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DemoError {
    #[error("the date {0} is out of range for demo data: use a year from 1900 to 9000")]
    TodayOutOfRange(NaiveDate),
}

/// A billing connector (payment provider account).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connector {
    pub id: &'static str,
    pub name: &'static str,
    pub kind: &'static str,
    pub connection: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Customer {
    pub id: Arc<str>,
    pub name: String,
    pub email: Option<String>,
    pub country: Option<&'static str>,
    /// A JSON object as text, or NULL.
    pub custom_data: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerConnector {
    pub customer_id: Arc<str>,
    pub connector_id: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentMethod {
    pub id: String,
    pub customer_id: Arc<str>,
    /// The `type` column.
    pub kind: &'static str,
    pub status: &'static str,
    pub connector_id: Option<&'static str>,
    pub is_default: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoice {
    pub id: String,
    pub customer_id: Arc<str>,
    pub number: String,
    pub status: &'static str,
    pub amount_cents: i64,
    pub currency: &'static str,
    pub due_date: NaiveDate,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Monitor {
    pub id: String,
    pub customer_id: Arc<str>,
    pub name: &'static str,
    pub state: &'static str,
    pub updated_at: DateTime<Utc>,
}

/// The rows of a run of consecutive customers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    pub customers: Vec<Customer>,
    pub customer_connectors: Vec<CustomerConnector>,
    pub payment_methods: Vec<PaymentMethod>,
    pub invoices: Vec<Invoice>,
    pub monitors: Vec<Monitor>,
}

impl Batch {
    pub fn counts(&self) -> RowCounts {
        RowCounts {
            connectors: 0,
            customers: self.customers.len() as u64,
            customer_connectors: self.customer_connectors.len() as u64,
            payment_methods: self.payment_methods.len() as u64,
            invoices: self.invoices.len() as u64,
            monitors: self.monitors.len() as u64,
        }
    }
}

/// Rows per billing table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RowCounts {
    pub connectors: u64,
    pub customers: u64,
    pub customer_connectors: u64,
    pub payment_methods: u64,
    pub invoices: u64,
    pub monitors: u64,
}

impl RowCounts {
    pub fn total(&self) -> u64 {
        self.connectors
            + self.customers
            + self.customer_connectors
            + self.payment_methods
            + self.invoices
            + self.monitors
    }
}

impl std::ops::AddAssign for RowCounts {
    fn add_assign(&mut self, o: Self) {
        self.connectors += o.connectors;
        self.customers += o.customers;
        self.customer_connectors += o.customer_connectors;
        self.payment_methods += o.payment_methods;
        self.invoices += o.invoices;
        self.monitors += o.monitors;
    }
}

impl std::fmt::Display for RowCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} connectors, {} customers, {} customer_connectors, {} payment_methods, {} invoices, {} monitors",
            self.connectors,
            self.customers,
            self.customer_connectors,
            self.payment_methods,
            self.invoices,
            self.monitors
        )
    }
}

/// A timestamp in the SPEC §4 SQLite form: UTC text `YYYY-MM-DDTHH:MM:SSZ`.
pub fn timestamp_text(t: &DateTime<Utc>) -> String {
    let mut s = String::with_capacity(20);
    let _ = write!(
        s,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    s
}

/// A date in the SPEC §4 SQLite form: `YYYY-MM-DD`.
pub fn date_text(d: NaiveDate) -> String {
    let mut s = String::with_capacity(10);
    let _ = write!(s, "{:04}-{:02}-{:02}", d.year(), d.month(), d.day());
    s
}

// ---------------------------------------------------------------------------
// Reference data

/// The fixed set of connectors, in every connection state.
pub const CONNECTORS: &[Connector] = &[
    Connector {
        id: "con_stripe",
        name: "Stripe",
        kind: "stripe",
        connection: "connected",
    },
    Connector {
        id: "con_adyen",
        name: "Adyen",
        kind: "adyen",
        connection: "connected",
    },
    Connector {
        id: "con_gocardless",
        name: "GoCardless",
        kind: "gocardless",
        connection: "error",
    },
    Connector {
        id: "con_paypal",
        name: "PayPal",
        kind: "paypal",
        connection: "connected",
    },
    Connector {
        id: "con_chargebee",
        name: "Chargebee",
        kind: "chargebee",
        connection: "disconnected",
    },
    Connector {
        id: "con_braintree",
        name: "Braintree",
        kind: "braintree",
        connection: "connected",
    },
    Connector {
        id: "con_stripe_legacy",
        name: "Stripe Legacy",
        kind: "stripe",
        connection: "disconnected",
    },
];

/// How often customers are linked to each connector (same order as `CONNECTORS`).
const LINK_WEIGHTS: [u32; 7] = [40, 12, 12, 14, 8, 8, 6];

/// Whether a connector of `kind` can hold a payment method of `pm_type`.
fn accepts(kind: &str, pm_type: &str) -> bool {
    match kind {
        "stripe" => matches!(pm_type, "card" | "ach" | "sepa_debit"),
        "adyen" => matches!(pm_type, "card" | "sepa_debit"),
        "gocardless" => matches!(pm_type, "ach" | "sepa_debit"),
        "paypal" => pm_type == "paypal",
        "chargebee" => matches!(pm_type, "card" | "ach" | "sepa_debit" | "paypal"),
        "braintree" => matches!(pm_type, "card" | "paypal"),
        _ => false,
    }
}

#[derive(Debug, Clone, Copy)]
struct Currency {
    code: &'static str,
    /// Minor units of this currency per US cent, as a fraction.
    rate: (i64, i64),
}

const USD: Currency = Currency {
    code: "USD",
    rate: (1, 1),
};
const EUR: Currency = Currency {
    code: "EUR",
    rate: (92, 100),
};
const GBP: Currency = Currency {
    code: "GBP",
    rate: (79, 100),
};
const CAD: Currency = Currency {
    code: "CAD",
    rate: (136, 100),
};
const AUD: Currency = Currency {
    code: "AUD",
    rate: (150, 100),
};
const CHF: Currency = Currency {
    code: "CHF",
    rate: (88, 100),
};
const SEK: Currency = Currency {
    code: "SEK",
    rate: (1050, 100),
};
const DKK: Currency = Currency {
    code: "DKK",
    rate: (690, 100),
};
const NOK: Currency = Currency {
    code: "NOK",
    rate: (1060, 100),
};
const PLN: Currency = Currency {
    code: "PLN",
    rate: (400, 100),
};

#[derive(Debug)]
struct Country {
    code: &'static str,
    /// Share of customers, per mille-ish (weights need not add up to anything).
    weight: u32,
    currency: Currency,
    region: &'static str,
    suffixes: &'static [&'static str],
}

const fn country(
    code: &'static str,
    weight: u32,
    currency: Currency,
    region: &'static str,
    suffixes: &'static [&'static str],
) -> Country {
    Country {
        code,
        weight,
        currency,
        region,
        suffixes,
    }
}

/// Customers' countries, weighted like a SaaS customer base: US heavy, then Europe.
const COUNTRIES: &[Country] = &[
    country("US", 340, USD, "amer", &["Inc.", "LLC", "Corp."]),
    country("GB", 95, GBP, "emea", &["Ltd", "Ltd.", "plc"]),
    country("DE", 85, EUR, "emea", &["GmbH", "AG", "GmbH & Co. KG"]),
    country("FR", 55, EUR, "emea", &["SAS", "SARL", "SA"]),
    country("CA", 50, CAD, "amer", &["Inc.", "Ltd."]),
    country("NL", 35, EUR, "emea", &["B.V.", "N.V."]),
    country("AU", 35, AUD, "apac", &["Pty Ltd"]),
    country("ES", 25, EUR, "emea", &["S.L.", "S.A."]),
    country("IT", 25, EUR, "emea", &["S.r.l.", "S.p.A."]),
    country("IN", 25, USD, "apac", &["Pvt Ltd"]),
    country("SE", 20, SEK, "emea", &["AB"]),
    country("BR", 20, USD, "amer", &["Ltda."]),
    country("JP", 20, USD, "apac", &["K.K."]),
    country("CH", 18, CHF, "emea", &["AG", "GmbH", "SA"]),
    country("IE", 15, EUR, "emea", &["Ltd", "DAC"]),
    country("PL", 15, PLN, "emea", &["Sp. z o.o."]),
    country("MX", 15, USD, "amer", &["S.A. de C.V."]),
    country("AT", 12, EUR, "emea", &["GmbH"]),
    country("BE", 12, EUR, "emea", &["BV", "SRL"]),
    country("SG", 12, USD, "apac", &["Pte. Ltd."]),
    country("DK", 10, DKK, "emea", &["ApS", "A/S"]),
    country("NO", 10, NOK, "emea", &["AS"]),
    country("FI", 8, EUR, "emea", &["Oy"]),
    country("NZ", 8, USD, "apac", &["Ltd"]),
    country("PT", 8, EUR, "emea", &["Lda."]),
];
/// Weight of customers without a country (NULL).
const NO_COUNTRY_WEIGHT: u32 = 15;
const GENERIC_SUFFIXES: &[&str] = &["Inc.", "Ltd", "Group"];
const REGIONS: &[&str] = &["amer", "emea", "apac"];

const FIRST_NAMES: &[&str] = &[
    "Anna",
    "Ben",
    "Carla",
    "David",
    "Emma",
    "Felix",
    "Grace",
    "Hannah",
    "Isabel",
    "Jonas",
    "Kai",
    "Laura",
    "Liam",
    "Mia",
    "Noah",
    "Olivia",
    "Paul",
    "Quinn",
    "Rosa",
    "Sofia",
    "Tom",
    "Uma",
    "Victor",
    "Wei",
    "Yuki",
    "Zoë",
    "José",
    "Søren",
    "François",
    "Amélie",
    "Łukasz",
    "Priya",
    "Aarav",
    "Chloé",
    "Mateo",
    "Sven",
    "Ingrid",
    "Hiroshi",
    "Siobhan",
    "Connor",
    "Fatima",
    "Omar",
    "Lucía",
    "Björn",
    "James",
    "Mary",
    "Robert",
    "Jennifer",
    "Michael",
    "Sarah",
];
const LAST_NAMES: &[&str] = &[
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Garcia",
    "Miller",
    "Davis",
    "Martinez",
    "Müller",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Dubois",
    "Martin",
    "Bernard",
    "de Vries",
    "Jansen",
    "van Dijk",
    "Rossi",
    "Russo",
    "Nowak",
    "Kowalski",
    "O'Brien",
    "Murphy",
    "Kelly",
    "Tanaka",
    "Sato",
    "Patel",
    "Sharma",
    "Nguyen",
    "Kim",
    "Lee",
    "Andersson",
    "Johansson",
    "Hansen",
    "Nielsen",
    "Silva",
    "Santos",
    "Dupont",
    "Lefèvre",
    "García",
    "López",
    "Wilson",
    "Taylor",
    "Clark",
    "Walker",
    "Wright",
    "Becker",
    "Moreau",
    "Bakker",
];
const COMPANY_WORDS: &[&str] = &[
    "Acme",
    "Northwind",
    "Blue Harbor",
    "Silverline",
    "Brightpath",
    "Redwood",
    "Ironclad",
    "Lumen",
    "Quantum",
    "Evergreen",
    "Pinecrest",
    "Summit",
    "Atlas",
    "Nimbus",
    "Cobalt",
    "Vertex",
    "Horizon",
    "Falcon",
    "Maple",
    "Orbit",
    "Helix",
    "Crescent",
    "Granite",
    "Sterling",
    "Polar",
    "Keystone",
    "Riverbend",
    "Tidal",
    "Zenith",
    "Nordlicht",
    "Étoile",
    "Bluebird",
    "Copperleaf",
    "Foxglove",
    "Kestrel",
    "Lighthouse",
    "Meridian",
    "Oakridge",
    "Solstice",
    "Wavelength",
];
const COMPANY_NOUNS: &[&str] = &[
    "Analytics",
    "Labs",
    "Logistics",
    "Software",
    "Systems",
    "Health",
    "Robotics",
    "Media",
    "Foods",
    "Energy",
    "Studios",
    "Consulting",
    "Networks",
    "Dynamics",
    "Bio",
    "Payments",
    "Retail",
    "Cloud",
    "Security",
    "Ventures",
    "Design",
    "Learning",
    "Motors",
    "Data",
    "Travel",
];
const BILLING_ROLES: &[&str] = &[
    "billing", "accounts", "finance", "ap", "invoices", "payments", "admin", "hello", "ops",
];
const PERSONAL_DOMAINS: &[&str] = &[
    "example.com",
    "example.org",
    "example.net",
    "mail.example",
    "inbox.example",
    "post.example",
];

const PLANS: &[(&str, u32)] = &[
    ("free", 30),
    ("starter", 30),
    ("pro", 28),
    ("enterprise", 12),
];
pub const MONITOR_NAMES: &[&str] = &["api-calls", "storage", "seats", "bandwidth"];
const PM_STATUSES: &[(&str, u32)] = &[
    ("active", 74),
    ("expired", 12),
    ("failed", 6),
    ("pending", 8),
];
const PM_MIX_US: &[(&str, u32)] = &[
    ("card", 65),
    ("ach", 20),
    ("paypal", 10),
    ("bank_transfer", 5),
];
const PM_MIX_SEPA: &[(&str, u32)] = &[
    ("card", 55),
    ("sepa_debit", 25),
    ("paypal", 12),
    ("bank_transfer", 8),
];
const PM_MIX_OTHER: &[(&str, u32)] = &[("card", 70), ("paypal", 20), ("bank_transfer", 10)];
const MONITOR_STATES: &[(&str, u32)] = &[("ok", 75), ("alerting", 12), ("no_data", 13)];

/// How reliably a customer pays, which shapes its past-due invoices.
#[derive(Debug, Clone, Copy)]
enum Payer {
    Good,
    Late,
    Delinquent,
}

/// Oldest customers: five years back.
const MAX_AGE_DAYS: u64 = 5 * 365;
const DAY_SECS: u64 = 86_400;

// ---------------------------------------------------------------------------
// Drawing

/// Draws from one customer's stream. Only `next_u64` of the ChaCha8 stream is
/// used (no distribution of `rand`), so the data depends on the stream alone.
struct Dice(ChaCha8Rng);

impl Dice {
    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.0.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    fn weighted_index(&mut self, weights: impl Iterator<Item = u32> + Clone) -> usize {
        let total: u64 = weights.clone().map(u64::from).sum();
        let mut x = self.below(total.max(1));
        let mut last = 0;
        for (i, w) in weights.enumerate() {
            last = i;
            if x < u64::from(w) {
                return i;
            }
            x -= u64::from(w);
        }
        last
    }

    fn weighted<T: Copy>(&mut self, items: &[(T, u32)]) -> T {
        items[self.weighted_index(items.iter().map(|(_, w)| *w))].0
    }
}

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
        let mut rng = ChaCha8Rng::from_seed(self.key);
        rng.set_stream(number);
        Dice(rng)
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
fn invoice_status(d: &mut Dice, past_due: i64, payer: Payer) -> &'static str {
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

/// Appends `s` folded to lowercase ASCII letters and digits (accents dropped,
/// spaces and punctuation removed), keeping the case when `keep_case`.
fn push_ascii(out: &mut String, s: &str, keep_case: bool) {
    for c in s.chars() {
        let folded = match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' => c,
            'á' | 'à' | 'â' | 'ä' | 'å' | 'ã' => 'a',
            'é' | 'è' | 'ê' | 'ë' => 'e',
            'É' => 'E',
            'í' | 'ì' | 'î' | 'ï' => 'i',
            'ó' | 'ò' | 'ô' | 'ö' | 'ø' => 'o',
            'ú' | 'ù' | 'û' | 'ü' => 'u',
            'ç' => 'c',
            'ñ' => 'n',
            'ł' => 'l',
            'Ł' => 'L',
            'Ø' => 'O',
            'Ö' => 'O',
            'Ü' => 'U',
            'Ä' => 'A',
            _ => continue,
        };
        out.push(if keep_case {
            folded
        } else {
            folded.to_ascii_lowercase()
        });
    }
}

/// A company name (with a legal suffix fitting its country) and a billing address.
fn company_contact(d: &mut Dice, country: Option<&Country>) -> (String, String) {
    let word = d.pick(COMPANY_WORDS);
    let noun = d.pick(COMPANY_NOUNS);
    let (base, domain_parts): (String, Vec<&str>) = match d.below(100) {
        0..85 => (format!("{word} {noun}"), vec![word, noun]),
        85..93 => {
            let a = d.pick(LAST_NAMES);
            let b = d.pick(LAST_NAMES);
            (format!("{a} & {b}"), vec![a, b])
        }
        _ => (word.to_string(), vec![word]),
    };
    let name = if d.percent(75) {
        let suffixes = country.map_or(GENERIC_SUFFIXES, |c| c.suffixes);
        format!("{base} {}", d.pick(suffixes))
    } else {
        base
    };
    // Email: a role mailbox or a person at the company; mostly lowercase.
    let keep_case = d.percent(12);
    let mut email = String::with_capacity(40);
    if d.percent(75) {
        let role = d.pick(BILLING_ROLES);
        if keep_case {
            let mut chars = role.chars();
            if let Some(c) = chars.next() {
                email.push(c.to_ascii_uppercase());
                email.push_str(chars.as_str());
            }
        } else {
            email.push_str(role);
        }
    } else {
        let first = d.pick(FIRST_NAMES);
        let last = d.pick(LAST_NAMES);
        push_ascii(&mut email, first, keep_case);
        email.push('.');
        push_ascii(&mut email, last, keep_case);
    }
    email.push('@');
    let hyphen = d.percent(30);
    for (i, part) in domain_parts.iter().enumerate() {
        if i > 0 && hyphen {
            email.push('-');
        }
        push_ascii(&mut email, part, keep_case);
    }
    email.push_str(".example");
    (name, email)
}

/// A person's name and personal address.
fn person_contact(d: &mut Dice) -> (String, String) {
    let first = d.pick(FIRST_NAMES);
    let last = d.pick(LAST_NAMES);
    let name = format!("{first} {last}");
    let keep_case = d.percent(16);
    let mut email = String::with_capacity(40);
    match d.below(100) {
        0..40 => {
            push_ascii(&mut email, first, keep_case);
            email.push('.');
            push_ascii(&mut email, last, keep_case);
        }
        40..55 => {
            push_ascii(&mut email, first, keep_case);
            push_ascii(&mut email, last, keep_case);
        }
        55..70 => {
            push_ascii(&mut email, first.get(..1).unwrap_or(first), keep_case);
            email.push('.');
            push_ascii(&mut email, last, keep_case);
        }
        70..80 => {
            push_ascii(&mut email, first, keep_case);
            email.push('_');
            push_ascii(&mut email, last, keep_case);
        }
        80..90 => push_ascii(&mut email, first, keep_case),
        _ => {
            push_ascii(&mut email, last, keep_case);
            email.push('.');
            push_ascii(&mut email, first, keep_case);
        }
    }
    if d.percent(45) {
        let n = if d.percent(50) {
            d.between(1, 99)
        } else {
            d.between(1960, 2005)
        };
        let _ = write!(email, "{n}");
    }
    email.push('@');
    let domain = d.pick(PERSONAL_DOMAINS);
    if keep_case && d.percent(35) {
        // "Example.com"
        let mut chars = domain.chars();
        if let Some(c) = chars.next() {
            email.push(c.to_ascii_uppercase());
            email.push_str(chars.as_str());
        }
    } else {
        email.push_str(domain);
    }
    (name, email)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::fields::{
        CONNECTIONS, INVOICE_STATUSES, MONITOR_STATES as STATES, PAYMENT_STATUSES, PAYMENT_TYPES,
    };
    use std::collections::{BTreeMap, BTreeSet};

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 30).unwrap()
    }

    fn spec(seed: u64, customers: u64) -> DemoSpec {
        DemoSpec {
            seed,
            customers,
            today: today(),
        }
    }

    fn all(seed: u64, customers: u64, batch: usize) -> Vec<Batch> {
        Generator::new(spec(seed, customers))
            .unwrap()
            .batches(batch)
            .collect()
    }

    /// Every row of one run, flattened into one batch.
    fn flat(seed: u64, customers: u64, batch: usize) -> Batch {
        let mut out = Batch::default();
        for b in all(seed, customers, batch) {
            out.customers.extend(b.customers);
            out.customer_connectors.extend(b.customer_connectors);
            out.payment_methods.extend(b.payment_methods);
            out.invoices.extend(b.invoices);
            out.monitors.extend(b.monitors);
        }
        out
    }

    #[test]
    fn same_seed_gives_the_same_rows_whatever_the_batch_size() {
        let a = flat(7, 700, 100);
        assert_eq!(a, flat(7, 700, 100));
        assert_eq!(a, flat(7, 700, 33));
        assert_eq!(a, flat(7, 700, 10_000));
    }

    #[test]
    fn fewer_customers_give_a_prefix() {
        let big = flat(7, 300, 50);
        let small = flat(7, 120, 50);
        assert_eq!(&big.customers[..120], &small.customers[..]);
        assert_eq!(&big.invoices[..small.invoices.len()], &small.invoices[..]);
    }

    #[test]
    fn another_seed_gives_other_rows() {
        let a = flat(1, 200, 100);
        let b = flat(2, 200, 100);
        assert_ne!(a.customers, b.customers);
        assert_ne!(a.invoices, b.invoices);
        let names_a: BTreeSet<_> = a.customers.iter().map(|c| &c.name).collect();
        let same = b
            .customers
            .iter()
            .zip(&a.customers)
            .filter(|(x, y)| x.name == y.name)
            .count();
        assert!(same < 20, "{same} of 200 names coincide");
        assert!(names_a.len() > 100);
    }

    #[test]
    fn another_today_moves_the_dates() {
        let a = flat(3, 50, 50);
        let mut s = spec(3, 50);
        s.today = NaiveDate::from_ymd_opt(2027, 1, 30).unwrap();
        let b: Vec<Batch> = Generator::new(s).unwrap().batches(50).collect();
        let shift = TimeDelta::days(61);
        assert_eq!(a.invoices[0].due_date + shift, b[0].invoices[0].due_date);
        assert_eq!(
            a.customers[0].created_at + shift,
            b[0].customers[0].created_at
        );
    }

    #[test]
    fn counts_and_batches() {
        let mut g = Generator::new(spec(5, 25)).unwrap();
        assert_eq!(g.next_batch(10).map(|b| b.customers.len()), Some(10));
        assert_eq!(g.next_batch(10).map(|b| b.customers.len()), Some(10));
        assert_eq!(g.next_batch(10).map(|b| b.customers.len()), Some(5));
        assert_eq!(g.next_batch(10), None);
        assert_eq!(g.generated(), 25);
        assert!(Generator::new(spec(5, 0)).unwrap().next_batch(10).is_none());
        let mut s = spec(5, 1);
        s.today = NaiveDate::from_ymd_opt(9999, 1, 1).unwrap();
        assert!(Generator::new(s).is_err());
    }

    #[test]
    fn ids_are_unique_and_numbered() {
        let b = flat(11, 2_000, 300);
        assert_eq!(&*b.customers[0].id, "cus_000001");
        assert_eq!(&*b.customers[1999].id, "cus_002000");
        fn unique<'a>(ids: impl Iterator<Item = &'a str>) -> bool {
            let ids: Vec<&str> = ids.collect();
            ids.len() == ids.iter().collect::<BTreeSet<_>>().len()
        }
        assert!(unique(b.customers.iter().map(|c| c.id.as_ref())));
        assert!(unique(b.payment_methods.iter().map(|c| c.id.as_str())));
        assert!(unique(b.invoices.iter().map(|c| c.id.as_str())));
        assert!(unique(b.invoices.iter().map(|c| c.number.as_str())));
        assert!(unique(b.monitors.iter().map(|c| c.id.as_str())));
        assert_eq!(b.invoices[0].id, "inv_0000001");
        let links: BTreeSet<_> = b
            .customer_connectors
            .iter()
            .map(|l| (&l.customer_id, l.connector_id))
            .collect();
        assert_eq!(links.len(), b.customer_connectors.len());
        for inv in &b.invoices {
            let year = inv.created_at.year();
            assert!(inv.number.starts_with(&format!("INV-{year}-")), "{inv:?}");
        }
    }

    #[test]
    fn invariants_hold() {
        let b = flat(42, 3_000, 1_000);
        let connectors: BTreeSet<&str> = CONNECTORS.iter().map(|c| c.id).collect();
        let customers: BTreeSet<&str> = b.customers.iter().map(|c| c.id.as_ref()).collect();
        for c in CONNECTORS {
            assert!(CONNECTIONS.contains(&c.connection));
        }
        // At most one default method per customer.
        let mut defaults: BTreeMap<&str, usize> = BTreeMap::new();
        for m in &b.payment_methods {
            assert!(PAYMENT_TYPES.contains(&m.kind), "{m:?}");
            assert!(PAYMENT_STATUSES.contains(&m.status), "{m:?}");
            assert!(customers.contains(m.customer_id.as_ref()));
            if let Some(c) = m.connector_id {
                assert!(connectors.contains(c), "{m:?}");
            }
            if m.is_default {
                *defaults.entry(&m.customer_id).or_default() += 1;
            }
        }
        assert!(defaults.values().all(|&n| n == 1));
        for l in &b.customer_connectors {
            assert!(connectors.contains(l.connector_id));
            assert!(customers.contains(l.customer_id.as_ref()));
        }
        let midnight = today().and_time(NaiveTime::MIN).and_utc();
        for c in &b.customers {
            assert!(c.created_at < midnight);
            if let Some(cd) = &c.custom_data {
                let v: serde_json::Value = serde_json::from_str(cd).unwrap();
                assert!(v.is_object(), "{cd}");
            }
            if let Some(country) = c.country {
                assert_eq!(country.len(), 2);
                assert!(country.chars().all(|ch| ch.is_ascii_uppercase()));
            }
            if let Some(e) = &c.email {
                assert!(e.is_ascii() && e.contains('@') && !e.contains(' '), "{e}");
            }
        }
        for i in &b.invoices {
            assert!(INVOICE_STATUSES.contains(&i.status), "{i:?}");
            assert!(customers.contains(i.customer_id.as_ref()));
            assert!(i.amount_cents > 0);
            assert_eq!(i.currency.len(), 3);
            assert!(i.created_at.date_naive() <= i.due_date);
        }
        for m in &b.monitors {
            assert!(MONITOR_NAMES.contains(&m.name));
            assert!(STATES.contains(&m.state));
            assert!(m.updated_at < midnight);
        }
    }

    #[test]
    fn the_data_has_every_value_and_realistic_shares() {
        let n = 5_000u64;
        let b = flat(9, n, 1_000);
        let set = |v: Vec<&'static str>| v.into_iter().collect::<BTreeSet<_>>();
        assert_eq!(
            set(b.invoices.iter().map(|i| i.status).collect()),
            set(INVOICE_STATUSES.to_vec())
        );
        assert_eq!(
            set(b.payment_methods.iter().map(|m| m.kind).collect()),
            set(PAYMENT_TYPES.to_vec())
        );
        assert_eq!(
            set(b.payment_methods.iter().map(|m| m.status).collect()),
            set(PAYMENT_STATUSES.to_vec())
        );
        assert_eq!(
            set(b.monitors.iter().map(|m| m.state).collect()),
            set(STATES.to_vec())
        );
        assert_eq!(
            set(CONNECTORS.iter().map(|c| c.connection).collect()),
            set(CONNECTIONS.to_vec())
        );
        // About 3 invoices and 1.2 payment methods per customer.
        let per = |rows: usize| rows as f64 / n as f64;
        assert!(
            (2.6..3.3).contains(&per(b.invoices.len())),
            "{}",
            per(b.invoices.len())
        );
        assert!((1.1..1.35).contains(&per(b.payment_methods.len())));
        assert!((0.7..1.2).contains(&per(b.customer_connectors.len())));
        // US heavy; some NULL countries, emails and custom_data; mixed-case emails.
        let us = b
            .customers
            .iter()
            .filter(|c| c.country == Some("US"))
            .count();
        assert!(us > b.customers.len() / 4);
        assert!(b.customers.iter().any(|c| c.country.is_none()));
        assert!(b.customers.iter().any(|c| c.email.is_none()));
        assert!(b.customers.iter().any(|c| c.custom_data.is_none()));
        assert!(
            b.customers
                .iter()
                .filter_map(|c| c.email.as_deref())
                .any(|e| e.chars().any(|ch| ch.is_ascii_uppercase()))
        );
        assert!(
            b.customers
                .iter()
                .filter_map(|c| c.custom_data.as_deref())
                .any(|cd| cd.contains("\"trial\":true"))
        );
        assert!(b.payment_methods.iter().any(|m| m.connector_id.is_none()));
        // Due dates around today: past due, due today, due soon.
        let t = today();
        assert!(b.invoices.iter().any(|i| i.due_date == t));
        assert!(
            b.invoices
                .iter()
                .any(|i| i.due_date > t && i.due_date <= t + TimeDelta::days(7))
        );
        assert!(
            b.invoices
                .iter()
                .any(|i| i.status == "overdue" && (t - i.due_date).num_days() > 30)
        );
        assert!(
            b.invoices
                .iter()
                .all(|i| i.status != "overdue" || i.due_date < t)
        );
    }

    #[test]
    fn storage_text_forms() {
        let t = DateTime::parse_from_rfc3339("2026-03-04T05:06:07Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(timestamp_text(&t), "2026-03-04T05:06:07Z");
        assert_eq!(
            date_text(NaiveDate::from_ymd_opt(2026, 1, 9).unwrap()),
            "2026-01-09"
        );
        let b = flat(13, 300, 300);
        let is_ts = |s: &str| {
            s.len() == 20
                && DateTime::parse_from_rfc3339(s).is_ok()
                && s.ends_with('Z')
                && s.as_bytes()[10] == b'T'
        };
        for c in &b.customers {
            assert!(is_ts(&timestamp_text(&c.created_at)));
            assert_eq!(c.created_at.timestamp_subsec_nanos(), 0);
        }
        for i in &b.invoices {
            assert!(is_ts(&timestamp_text(&i.created_at)));
            let d = date_text(i.due_date);
            assert_eq!(
                NaiveDate::parse_from_str(&d, "%Y-%m-%d").ok(),
                Some(i.due_date)
            );
            assert_eq!(d.len(), 10);
        }
        for m in &b.monitors {
            assert!(is_ts(&timestamp_text(&m.updated_at)));
        }
    }

    #[test]
    fn known_first_customer_is_stable() {
        // Pins the generator's output: a change here changes everyone's demo data
        // (ChaCha8 streams are value-stable across rand_chacha versions).
        let b = flat(1, 1, 1);
        let c = &b.customers[0];
        assert_eq!(&*c.id, "cus_000001");
        assert_eq!(c.name, "Vertex Travel");
        assert_eq!(
            c.email.as_deref(),
            Some("victor.rossi@vertex-travel.example")
        );
        assert_eq!(c.country, Some("US"));
        assert_eq!(
            c.custom_data.as_deref(),
            Some(r#"{"plan":"enterprise","region":"amer","seats":631}"#)
        );
        assert_eq!(timestamp_text(&c.created_at), "2026-08-29T13:24:36Z");
        let i = &b.invoices[3];
        assert_eq!(
            (
                i.id.as_str(),
                i.number.as_str(),
                i.status,
                i.amount_cents,
                i.currency
            ),
            ("inv_0000004", "INV-2026-000004", "open", 1_233_280, "USD")
        );
        assert_eq!(date_text(i.due_date), "2026-12-22");
        assert_eq!(timestamp_text(&i.created_at), "2026-11-07T12:19:54Z");
    }
}
