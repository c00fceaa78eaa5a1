//! The filter types and fields of SPEC §2.1, and which operators fit each.

use super::Op;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FilterType {
    Customer,
    Invoice,
    PaymentMethod,
    Connector,
    Monitor,
}

impl FilterType {
    pub const ALL: [FilterType; 5] = [
        FilterType::Customer,
        FilterType::Invoice,
        FilterType::PaymentMethod,
        FilterType::Connector,
        FilterType::Monitor,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Customer => "customer",
            Self::Invoice => "invoice",
            Self::PaymentMethod => "payment_method",
            Self::Connector => "connector",
            Self::Monitor => "monitor",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The fields a block of this type may hold (custom_data aside).
    pub fn fields(self) -> impl Iterator<Item = Field> {
        Field::ALL
            .into_iter()
            .filter(move |f| f.filter_type() == self)
    }
}

pub const INVOICE_STATUSES: &[&str] =
    &["draft", "open", "paid", "partially_paid", "overdue", "void"];
/// The statuses of an invoice not yet paid (nor void, nor a draft).
pub const UNPAID_STATUSES: [&str; 3] = ["open", "partially_paid", "overdue"];
pub const PAYMENT_TYPES: &[&str] = &["card", "ach", "sepa_debit", "bank_transfer", "paypal"];
pub const PAYMENT_STATUSES: &[&str] = &["active", "expired", "failed", "pending"];
pub const CONNECTIONS: &[&str] = &["connected", "disconnected", "error"];
pub const MONITOR_STATES: &[&str] = &["ok", "alerting", "no_data"];

/// What kind of value a field holds, which decides the operators that fit it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// Free text; `ci` = compared ASCII case-insensitively.
    Text {
        ci: bool,
    },
    /// One of a fixed list of lowercase values.
    Enum(&'static [&'static str]),
    /// ISO 3166-1 alpha-2 code, upper-cased on input.
    Country,
    /// A whole number of days, ≥ 0.
    Days,
    /// A date or RFC 3339 time; a plain value only.
    Time,
    Bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Field {
    CustomerName,
    CustomerEmail,
    CustomerConnectorName,
    CustomerDefaultPaymentMethod,
    CustomerDefaultPaymentMethodStatus,
    CustomerCountry,
    InvoiceStatus,
    InvoiceDueDateExceededByDays,
    InvoiceDueInDays,
    InvoiceCreatedAfter,
    PaymentMethodPaymentType,
    PaymentMethodStatus,
    PaymentMethodConnector,
    PaymentMethodIsDefault,
    ConnectorName,
    ConnectorConnection,
    MonitorName,
    MonitorState,
}

impl Field {
    pub const ALL: [Field; 18] = [
        Field::CustomerName,
        Field::CustomerEmail,
        Field::CustomerConnectorName,
        Field::CustomerDefaultPaymentMethod,
        Field::CustomerDefaultPaymentMethodStatus,
        Field::CustomerCountry,
        Field::InvoiceStatus,
        Field::InvoiceDueDateExceededByDays,
        Field::InvoiceDueInDays,
        Field::InvoiceCreatedAfter,
        Field::PaymentMethodPaymentType,
        Field::PaymentMethodStatus,
        Field::PaymentMethodConnector,
        Field::PaymentMethodIsDefault,
        Field::ConnectorName,
        Field::ConnectorConnection,
        Field::MonitorName,
        Field::MonitorState,
    ];

    pub fn filter_type(self) -> FilterType {
        use Field::*;
        match self {
            CustomerName
            | CustomerEmail
            | CustomerConnectorName
            | CustomerDefaultPaymentMethod
            | CustomerDefaultPaymentMethodStatus
            | CustomerCountry => FilterType::Customer,
            InvoiceStatus
            | InvoiceDueDateExceededByDays
            | InvoiceDueInDays
            | InvoiceCreatedAfter => FilterType::Invoice,
            PaymentMethodPaymentType
            | PaymentMethodStatus
            | PaymentMethodConnector
            | PaymentMethodIsDefault => FilterType::PaymentMethod,
            ConnectorName | ConnectorConnection => FilterType::Connector,
            MonitorName | MonitorState => FilterType::Monitor,
        }
    }

    /// The key naming the field in a `[[filter]]` block.
    pub fn key(self) -> &'static str {
        use Field::*;
        match self {
            CustomerName | ConnectorName | MonitorName => "name",
            CustomerEmail => "email",
            CustomerConnectorName => "connector_name",
            CustomerDefaultPaymentMethod => "default_payment_method",
            CustomerDefaultPaymentMethodStatus => "default_payment_method_status",
            CustomerCountry => "country",
            InvoiceStatus | PaymentMethodStatus => "status",
            InvoiceDueDateExceededByDays => "due_date_exceeded_by_days",
            InvoiceDueInDays => "due_in_days",
            InvoiceCreatedAfter => "created_after",
            PaymentMethodPaymentType => "payment_type",
            PaymentMethodConnector => "connector",
            PaymentMethodIsDefault => "is_default",
            ConnectorConnection => "connection",
            MonitorState => "state",
        }
    }

    pub fn lookup(filter_type: FilterType, key: &str) -> Option<Field> {
        filter_type.fields().find(|f| f.key() == key)
    }

    pub fn kind(self) -> ValueKind {
        use Field::*;
        match self {
            CustomerName
            | CustomerEmail
            | CustomerConnectorName
            | PaymentMethodConnector
            | ConnectorName => ValueKind::Text { ci: true },
            MonitorName => ValueKind::Text { ci: false },
            CustomerDefaultPaymentMethod | PaymentMethodPaymentType => {
                ValueKind::Enum(PAYMENT_TYPES)
            }
            CustomerDefaultPaymentMethodStatus | PaymentMethodStatus => {
                ValueKind::Enum(PAYMENT_STATUSES)
            }
            CustomerCountry => ValueKind::Country,
            InvoiceStatus => ValueKind::Enum(INVOICE_STATUSES),
            InvoiceDueDateExceededByDays | InvoiceDueInDays => ValueKind::Days,
            InvoiceCreatedAfter => ValueKind::Time,
            PaymentMethodIsDefault => ValueKind::Bool,
            ConnectorConnection => ValueKind::Enum(CONNECTIONS),
            MonitorState => ValueKind::Enum(MONITOR_STATES),
        }
    }

    /// Whether a customer field is read from related rows (the customer's
    /// connector links or its default payment method), not the customer's own.
    pub fn reaches_related(self) -> bool {
        matches!(
            self,
            Field::CustomerConnectorName
                | Field::CustomerDefaultPaymentMethod
                | Field::CustomerDefaultPaymentMethodStatus
        )
    }

    /// Nullable columns accept `exists` (SPEC §2.2).
    pub fn nullable(self) -> bool {
        matches!(
            self,
            Field::CustomerEmail | Field::CustomerCountry | Field::PaymentMethodConnector
        )
    }

    /// The operators that fit this field.
    pub fn ops(self) -> Vec<Op> {
        use Op::*;
        if self == Field::CustomerConnectorName {
            return vec![Eq, In, Contains, StartsWith, EndsWith];
        }
        let mut ops = match self.kind() {
            ValueKind::Text { .. } => vec![Eq, Ne, In, NotIn, Contains, StartsWith, EndsWith],
            ValueKind::Enum(_) | ValueKind::Country | ValueKind::Bool => vec![Eq, Ne, In, NotIn],
            ValueKind::Days => vec![Eq, Ne, In, NotIn, Gt, Gte, Lt, Lte],
            ValueKind::Time => vec![Eq],
        };
        if self.nullable() {
            ops.push(Exists);
        }
        ops
    }

    /// A one-line description for help texts and the JSON Schema.
    pub fn doc(self) -> &'static str {
        use Field::*;
        match self {
            CustomerName => "customer name (ASCII case-insensitive)",
            CustomerEmail => "customer email (ASCII case-insensitive); nullable",
            CustomerConnectorName => {
                "the customer is linked to a connector of this name (ASCII case-insensitive)"
            }
            CustomerDefaultPaymentMethod => "type of the customer's default payment method",
            CustomerDefaultPaymentMethodStatus => "status of the customer's default payment method",
            CustomerCountry => "ISO 3166-1 alpha-2 country code (upper-cased); nullable",
            InvoiceStatus => "invoice status",
            InvoiceDueDateExceededByDays => {
                "days from the due date to the evaluation date, for unpaid invoices due on or before it"
            }
            InvoiceDueInDays => {
                "days from the evaluation date to the due date, for unpaid invoices due on or after it"
            }
            InvoiceCreatedAfter => {
                "invoice created strictly after this date (00:00:00 UTC) or RFC 3339 time"
            }
            PaymentMethodPaymentType => "payment method type",
            PaymentMethodStatus => "payment method status",
            PaymentMethodConnector => {
                "name of the connector the method lives in (ASCII case-insensitive); nullable"
            }
            PaymentMethodIsDefault => "whether it is the customer's default method",
            ConnectorName => "a connector the customer is linked to (ASCII case-insensitive)",
            ConnectorConnection => "that connector's connection state",
            MonitorName => "a usage monitor on the customer",
            MonitorState => "that monitor's state",
        }
    }
}

/// ISO 3166-1 alpha-2 codes (officially assigned, plus `XK` for Kosovo, which
/// billing systems use widely).
pub const COUNTRIES: &[&str] = &[
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ",
    "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS",
    "BT", "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN",
    "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE", "DJ", "DK", "DM", "DO", "DZ", "EC", "EE",
    "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA", "GB", "GD", "GE", "GF",
    "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK", "HM",
    "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM",
    "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC",
    "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK",
    "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA",
    "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG",
    "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW",
    "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS",
    "ST", "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO",
    "TR", "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI",
    "VN", "VU", "WF", "WS", "XK", "YE", "YT", "ZA", "ZM", "ZW",
];

pub fn is_country(code: &str) -> bool {
    COUNTRIES.binary_search(&code).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn countries_sorted_for_binary_search() {
        assert!(COUNTRIES.windows(2).all(|w| w[0] < w[1]));
        assert!(is_country("DE") && is_country("XK") && !is_country("JJ"));
    }

    #[test]
    fn every_field_found_by_its_key() {
        for f in Field::ALL {
            assert_eq!(Field::lookup(f.filter_type(), f.key()), Some(f));
        }
    }
}
