//! Webhook destinations (SPEC §3): link-local and cloud metadata addresses are
//! refused by `validate` and never sent to; loopback stays allowed (the other
//! delivery tests send to a receiver on 127.0.0.1).

use super::*;

const REFUSED: [(&str, &str); 9] = [
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://[fe80::1]:8080/hook", "link-local"),
    ("http://[::ffff:169.254.169.254]/hook", "link-local"),
    // IPv4-compatible and NAT64 addresses count as the IPv4 address they carry.
    ("http://[::169.254.169.254]/hook", "link-local"),
    ("http://[64:ff9b::a9fe:a9fe]/hook", "link-local"),
    // Azure's WireServer, GCP's and Oracle Cloud's IPv6 metadata addresses.
    ("http://168.63.129.16/machine?comp=goalstate", "metadata"),
    ("http://[fd20:ce::254]/computeMetadata/v1/", "metadata"),
    ("http://[fd00:c1::a9fe:a9fe]/opc/v2/instance/", "metadata"),
    (
        "http://metadata.google.internal/computeMetadata/v1/",
        "metadata",
    ),
];

#[test]
fn validate_refuses_link_local_and_metadata_webhook_urls() {
    for (url, why) in REFUSED {
        let f = Fixture::empty();
        f.write("segments.d/targets.toml", SEGMENT);
        f.write(
            "communications.d/hook.toml",
            &webhook_comm("hook", "email_invoice", url, ""),
        );
        let o = f.validate("text").get_output().clone();
        let out = text(&o);
        assert_eq!(code(&o), 1, "{url}: {out}");
        // The url is on line 12 of the file, its value at column 7.
        assert!(
            out.contains("communications.d/hook.toml:12:7") && out.contains(why),
            "{url}: {out}"
        );
    }
    // Loopback and private receivers stay allowed.
    for url in [
        "http://127.0.0.1:9/hook",
        "http://10.1.2.3/hook",
        "http://[::1]/hook",
    ] {
        let f = Fixture::empty();
        f.write("segments.d/targets.toml", SEGMENT);
        f.write(
            "communications.d/hook.toml",
            &webhook_comm("hook", "email_invoice", url, ""),
        );
        f.validate("text").success();
    }
}

/// A refused URL written into the database behind segd's back (an old apply, a
/// hand edit) is not loaded, so nothing is sent there.
#[test]
fn a_refused_url_in_the_database_is_never_sent_to() {
    let billing = Billing::small();
    let b = Bench::sqlite();
    b.f.write(
        "communications.d/hook.toml",
        &webhook_comm(
            "hook-invoices",
            "email_invoice",
            "http://127.0.0.1:9/hook",
            "",
        ),
    );
    b.setup(&billing);
    b.db.exec(
        "UPDATE segd_definitions SET spec = replace(spec, 'http://127.0.0.1:9/hook', \
         'http://169.254.169.254/latest/meta-data/') WHERE name = 'hook-invoices'",
    );
    let o = b.segd(&["trigger", "hook-invoices"]);
    assert_ne!(code(&o), 0, "{}", text(&o));
    assert!(b.deliveries(&[]).is_empty(), "nothing is enqueued");
}
