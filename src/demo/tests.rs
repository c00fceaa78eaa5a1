use super::generator::*;
use super::tables::*;
use super::*;
use crate::model::fields::{
    CONNECTIONS, INVOICE_STATUSES, MONITOR_STATES as STATES, PAYMENT_STATUSES, PAYMENT_TYPES,
};
use chrono::{NaiveTime, TimeDelta};
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
