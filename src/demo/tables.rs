//! The reference data the generator draws from: connectors, currencies,
//! countries, names and the weights of every mix.

use super::Connector;

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
pub(super) const LINK_WEIGHTS: [u32; 7] = [40, 12, 12, 14, 8, 8, 6];

/// Whether a connector of `kind` can hold a payment method of `pm_type`.
pub(super) fn accepts(kind: &str, pm_type: &str) -> bool {
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
pub(super) struct Currency {
    pub(super) code: &'static str,
    /// Minor units of this currency per US cent, as a fraction.
    pub(super) rate: (i64, i64),
}

pub(super) const USD: Currency = Currency {
    code: "USD",
    rate: (1, 1),
};
pub(super) const EUR: Currency = Currency {
    code: "EUR",
    rate: (92, 100),
};
pub(super) const GBP: Currency = Currency {
    code: "GBP",
    rate: (79, 100),
};
pub(super) const CAD: Currency = Currency {
    code: "CAD",
    rate: (136, 100),
};
pub(super) const AUD: Currency = Currency {
    code: "AUD",
    rate: (150, 100),
};
pub(super) const CHF: Currency = Currency {
    code: "CHF",
    rate: (88, 100),
};
pub(super) const SEK: Currency = Currency {
    code: "SEK",
    rate: (1050, 100),
};
pub(super) const DKK: Currency = Currency {
    code: "DKK",
    rate: (690, 100),
};
pub(super) const NOK: Currency = Currency {
    code: "NOK",
    rate: (1060, 100),
};
pub(super) const PLN: Currency = Currency {
    code: "PLN",
    rate: (400, 100),
};

#[derive(Debug)]
pub(super) struct Country {
    pub(super) code: &'static str,
    /// Share of customers, per mille-ish (weights need not add up to anything).
    pub(super) weight: u32,
    pub(super) currency: Currency,
    pub(super) region: &'static str,
    pub(super) suffixes: &'static [&'static str],
}

pub(super) const fn country(
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
pub(super) const COUNTRIES: &[Country] = &[
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
pub(super) const NO_COUNTRY_WEIGHT: u32 = 15;
pub(super) const GENERIC_SUFFIXES: &[&str] = &["Inc.", "Ltd", "Group"];
pub(super) const REGIONS: &[&str] = &["amer", "emea", "apac"];

pub(super) const FIRST_NAMES: &[&str] = &[
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
pub(super) const LAST_NAMES: &[&str] = &[
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
pub(super) const COMPANY_WORDS: &[&str] = &[
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
pub(super) const COMPANY_NOUNS: &[&str] = &[
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
pub(super) const BILLING_ROLES: &[&str] = &[
    "billing", "accounts", "finance", "ap", "invoices", "payments", "admin", "hello", "ops",
];
pub(super) const PERSONAL_DOMAINS: &[&str] = &[
    "example.com",
    "example.org",
    "example.net",
    "mail.example",
    "inbox.example",
    "post.example",
];

pub(super) const PLANS: &[(&str, u32)] = &[
    ("free", 30),
    ("starter", 30),
    ("pro", 28),
    ("enterprise", 12),
];
pub const MONITOR_NAMES: &[&str] = &["api-calls", "storage", "seats", "bandwidth"];
pub(super) const PM_STATUSES: &[(&str, u32)] = &[
    ("active", 74),
    ("expired", 12),
    ("failed", 6),
    ("pending", 8),
];
pub(super) const PM_MIX_US: &[(&str, u32)] = &[
    ("card", 65),
    ("ach", 20),
    ("paypal", 10),
    ("bank_transfer", 5),
];
pub(super) const PM_MIX_SEPA: &[(&str, u32)] = &[
    ("card", 55),
    ("sepa_debit", 25),
    ("paypal", 12),
    ("bank_transfer", 8),
];
pub(super) const PM_MIX_OTHER: &[(&str, u32)] =
    &[("card", 70), ("paypal", 20), ("bank_transfer", 10)];
pub(super) const MONITOR_STATES: &[(&str, u32)] = &[("ok", 75), ("alerting", 12), ("no_data", 13)];

/// How reliably a customer pays, which shapes its past-due invoices.
#[derive(Debug, Clone, Copy)]
pub(super) enum Payer {
    Good,
    Late,
    Delinquent,
}

/// Oldest customers: five years back.
pub(super) const MAX_AGE_DAYS: u64 = 5 * 365;
pub(super) const DAY_SECS: u64 = 86_400;
