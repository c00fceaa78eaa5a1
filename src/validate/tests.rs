//! One test per diagnostic kind, with a snapshot of the rendered text.

use super::{SourceFile, TemplateSource, Tree, validate};
use crate::diag::render_text;
use std::collections::BTreeMap;

struct Templates(BTreeMap<&'static str, &'static str>);

impl TemplateSource for Templates {
    fn read(&self, path: &str) -> Result<(String, String), String> {
        self.0
            .get(path)
            .map(|t| (path.to_string(), t.to_string()))
            .ok_or_else(|| "no such file".to_string())
    }
}

const BASE_SEGMENT: &str =
    "[segment]\nname = \"base\"\n\n[[filter]]\ntype = \"customer\"\ncountry = \"DE\"\n";

fn file(path: &str, text: &str) -> SourceFile {
    SourceFile {
        path: path.to_string(),
        display: path.to_string(),
        text: text.to_string(),
    }
}

/// Validates the given files (plus a valid `base` segment) and renders the diagnostics.
fn check(files: &[(&str, &str)]) -> String {
    let mut tree = Tree {
        segments: vec![file("segments.d/base.toml", BASE_SEGMENT)],
        ..Tree::default()
    };
    for (path, text) in files {
        let f = file(path, text);
        if path.starts_with("segments.d/") {
            tree.segments.push(f);
        } else if path.starts_with("communications.d/") {
            tree.communications.push(f);
        } else {
            tree.settings = Some(f);
        }
    }
    let templates = Templates(BTreeMap::from([
        ("templates/ok.txt", "Hello {{ customer.name }}"),
        ("templates/bad.txt", "Hello\n{{ customer.nmae }}\n{% for %}"),
        ("templates/unknown.txt", "Hello\n\n{{ clinet.name }}"),
    ]));
    render_text(&validate(&tree, &templates).diagnostics, false)
}

fn segment(filter: &str) -> String {
    format!("[segment]\nname = \"s\"\n\n[[filter]]\n{filter}\n")
}

fn communication(comm_extra: &str, trigger: &str, section: &str) -> String {
    format!(
        "[communication]\nname = \"c\"\nsegment = \"base\"\nevent = \"email_invoice\"\n{comm_extra}\n\n[trigger]\n{trigger}\n\n{section}\n"
    )
}

const WEBHOOK: &str =
    "[webhook]\nurl = \"https://hooks.acme.test/x\"\nsecret_env = \"HOOK_SECRET\"";
const MANUAL: &str = "type = \"manual\"";

fn email(body: &str) -> String {
    format!("[email]\nfrom = \"b@acme.test\"\nsubject = \"Hi\"\n{body}")
}

macro_rules! snapshot_cases {
    ($($name:ident: $files:expr;)*) => {$(
        #[test]
        fn $name() {
            let files: Vec<(&str, String)> = $files;
            let refs: Vec<(&str, &str)> = files.iter().map(|(p, t)| (*p, t.as_str())).collect();
            insta::assert_snapshot!(check(&refs));
        }
    )*};
}

const S: &str = "segments.d/s.toml";
const C: &str = "communications.d/c.toml";

snapshot_cases! {
    toml_syntax_error: vec![(S, "[segment\nname = \"s\"\n".into())];
    missing_segment_table: vec![(S, "name = \"s\"\n".into())];
    missing_name: vec![(S, "[segment]\ndescription = \"x\"\n".into())];
    bad_name: vec![(S, "[segment]\nname = \"Overdue EU\"\n".into())];
    bad_name_hides_nothing: vec![(S, "[segment]\nname = \"Overdue EU\"\nmatch = \"some\"\n\n[[filter]]\ntype = \"customer\"\ncountry = \"Germany\"\n".into())];
    comm_bad_name_hides_nothing: vec![(C, "[communication]\nname = \"Dunning 1\"\nsegment = \"base\"\nevent = \"email_invoice\"\nchannel = \"sms\"\n\n[trigger]\ntype = \"manual\"\n".into())];
    duplicate_name: vec![(S, "[segment]\nname = \"base\"\n".into())];
    no_filter_warning: vec![(S, "[segment]\nname = \"s\"\n".into())];
    unknown_segment_key: vec![(S, "[segment]\nname = \"s\"\ndescripton = \"x\"\n".into())];
    bad_match: vec![(S, "[segment]\nname = \"s\"\nmatch = \"al\"\n".into())];
    unknown_filter_type: vec![(S, segment("type = \"invoices\""))];
    missing_filter_type: vec![(S, segment("status = \"open\""))];
    unknown_field_did_you_mean: vec![(S, segment("type = \"invoice\"\ndue_date_exceded_by_days = 3"))];
    wrong_value_type: vec![(S, segment("type = \"invoice\"\ndue_date_exceeded_by_days = \"30\""))];
    bad_enum: vec![(S, segment("type = \"invoice\"\nstatus = \"opne\""))];
    operator_not_fitting: vec![(S, segment("type = \"customer\"\nemail = { gte = \"a\" }"))];
    connector_name_ne: vec![(S, segment("type = \"customer\"\nconnector_name = { ne = \"Stripe\" }"))];
    exists_on_non_nullable: vec![(S, segment("type = \"customer\"\nname = { exists = true }"))];
    unknown_operator: vec![(S, segment("type = \"customer\"\nemail = { like = \"%x%\" }"))];
    two_operators: vec![(S, segment("type = \"invoice\"\ndue_in_days = { gte = 1, lte = 7 }"))];
    empty_in_list: vec![(S, segment("type = \"invoice\"\nstatus = { in = [] }"))];
    unpaid_is_three_statuses: vec![(S, segment("type = \"invoice\"\nstatus = { in = [\"open\", \"unpaid\"] }"))];
    duplicate_in_values: vec![(S, segment("type = \"invoice\"\nstatus = { in = [\"open\", \"open\"] }"))];
    negative_days: vec![(S, segment("type = \"invoice\"\ndue_in_days = -1"))];
    bad_country: vec![(S, segment("type = \"customer\"\ncountry = \"JJ\""))];
    created_after_without_offset: vec![(S, segment("type = \"invoice\"\ncreated_after = \"2026-01-01T10:00:00\""))];
    created_after_operator: vec![(S, segment("type = \"invoice\"\ncreated_after = { gt = 2026-01-01 }"))];
    custom_data_type_mismatch: vec![(S, segment("type = \"customer\"\ncustom_data = { seats = { gte = \"10\" } }"))];
    custom_data_on_invoice: vec![(S, segment("type = \"invoice\"\ncustom_data = { plan = \"x\" }"))];
    negate_not_bool: vec![(S, segment("type = \"invoice\"\nnegate = \"yes\"\nstatus = \"open\""))];
    comm_missing_trigger: vec![(C, "[communication]\nname = \"c\"\nsegment = \"base\"\nevent = \"email_invoice\"\nchannel = \"webhook\"\n\n".to_string() + WEBHOOK)];
    comm_missing_segment_reference: vec![(C, communication("channel = \"webhook\"", MANUAL, WEBHOOK).replace("\"base\"", "\"bsae\""))];
    comm_bad_event: vec![(C, communication("channel = \"webhook\"", MANUAL, WEBHOOK).replace("email_invoice", "invoice"))];
    comm_section_not_fitting_channel: vec![(C, communication("channel = \"webhook\"", MANUAL, &format!("{WEBHOOK}\n\n{}", email("body = \"x\""))))];
    comm_missing_channel_section: vec![(C, communication("channel = \"email\"", MANUAL, ""))];
    comm_manual_with_schedule: vec![(C, communication("channel = \"webhook\"", "type = \"manual\"\nschedule = \"0 9 * * *\"", WEBHOOK))];
    comm_automatic_without_schedule: vec![(C, communication("channel = \"webhook\"", "type = \"automatic\"", WEBHOOK))];
    comm_bad_cron: vec![(C, communication("channel = \"webhook\"", "type = \"automatic\"\nschedule = \"0 25 * * *\"", WEBHOOK))];
    comm_cron_day_name: vec![(C, communication("channel = \"webhook\"", "type = \"automatic\"\nschedule = \"0 7 * * MONDAY\"", WEBHOOK))];
    comm_cron_field_count: vec![(C, communication("channel = \"webhook\"", "type = \"automatic\"\nschedule = \"0 9 * *\"", WEBHOOK))];
    comm_bad_timezone: vec![(C, communication("channel = \"webhook\"", "type = \"automatic\"\nschedule = \"0 9 * * *\"\ntimezone = \"europe/berlin\"", WEBHOOK))];
    comm_bad_duration: vec![(C, communication("channel = \"webhook\"\nmin_interval = \"soon\"", MANUAL, WEBHOOK))];
    comm_max_recipients_zero: vec![(C, communication("channel = \"webhook\"\nmax_recipients = 0", MANUAL, WEBHOOK))];
    comm_body_and_template: vec![(C, communication("channel = \"email\"", MANUAL, &email("body = \"x\"\ntemplate = \"templates/ok.txt\"")))];
    comm_neither_body_nor_template: vec![(C, communication("channel = \"email\"", MANUAL, &email("")))];
    comm_template_missing: vec![(C, communication("channel = \"email\"", MANUAL, &email("template = \"templates/nope.txt\"")))];
    comm_template_outside_dir: vec![(C, communication("channel = \"email\"", MANUAL, &email("template = \"../etc/passwd\"")))];
    comm_template_file_errors: vec![(C, communication("channel = \"email\"", MANUAL, &email("template = \"templates/bad.txt\"")))];
    comm_template_file_unknown_variable: vec![(C, communication("channel = \"email\"", MANUAL, &email("template = \"templates/unknown.txt\"")))];
    comm_subject_unknown_variable: vec![(C, communication("channel = \"email\"", MANUAL, "[email]\nfrom = \"b@acme.test\"\nsubject = \"Hi {{ client }}\"\nbody = \"x\""))];
    comm_bad_from: vec![(C, communication("channel = \"email\"", MANUAL, "[email]\nfrom = \"billing\"\nsubject = \"Hi\"\nbody = \"x\""))];
    comm_webhook_bad_url: vec![(C, communication("channel = \"webhook\"", MANUAL, "[webhook]\nurl = \"ftp://x\"\nsecret_env = \"S\""))];
    comm_webhook_missing_secret_env: vec![(C, communication("channel = \"webhook\"", MANUAL, "[webhook]\nurl = \"https://x.test\""))];
    comm_webhook_bad_secret_env: vec![(C, communication("channel = \"webhook\"", MANUAL, "[webhook]\nurl = \"https://x.test\"\nsecret_env = \"MY-SECRET\""))];
    comm_inline_secret_key: vec![(C, communication("channel = \"webhook\"", MANUAL, &format!("{WEBHOOK}\nsecret = \"whsec_c2VjcmV0\"")))];
    comm_inline_secret_value: vec![(C, communication("channel = \"webhook\"", MANUAL, "[webhook]\nurl = \"https://x.test\"\nsecret_env = \"whsec_c2VjcmV0\""))];
    comm_url_with_credentials: vec![(C, communication("channel = \"webhook\"", MANUAL, "[webhook]\nurl = \"https://user:hunter2@x.test\"\nsecret_env = \"S\""))];
    comm_timezone_on_manual_warning: vec![(C, communication("channel = \"webhook\"", "type = \"manual\"\ntimezone = \"UTC\"", WEBHOOK))];
    comm_unknown_section: vec![(C, communication("channel = \"webhook\"", MANUAL, WEBHOOK) + "\n[sms]\nto = \"+49\"\n")];
    settings_unknown_key_and_bad_values: vec![("segd.toml", "listen = \"localhost\"\nresync = \"0s\"\ndatabase_url = \"postgres://u:hunter2@db/segd\"\n[delivery]\nconcurrency = 0\nretry_schedule = [\"0s\", \"soon\"]\nworkers = 3\n".into())];
}

#[test]
fn secrets_never_appear_in_diagnostics() {
    let out = [
        communication(
            "channel = \"webhook\"",
            MANUAL,
            &format!("{WEBHOOK}\nsecret = \"whsec_c2VjcmV0\""),
        ),
        communication(
            "channel = \"webhook\"",
            MANUAL,
            "[webhook]\nurl = \"https://u:hunter2@x.test\"\nsecret_env = \"whsec_c2VjcmV0\"",
        ),
    ]
    .iter()
    .map(|c| check(&[(C, c)]))
    .collect::<String>()
        + &check(&[("segd.toml", "smtp_url = \"smtp://u:hunter2@mail.test\"\n")]);
    assert!(
        !out.contains("c2VjcmV0") && !out.contains("hunter2"),
        "{out}"
    );
    assert!(out.contains("error"));
}

#[test]
fn valid_definitions_are_returned_and_invalid_ones_left_out() {
    let mut tree = Tree {
        segments: vec![
            file("segments.d/base.toml", BASE_SEGMENT),
            file(
                "segments.d/bad.toml",
                &segment("type = \"invoice\"\nstatus = \"nope\"").replace("\"s\"", "\"bad\""),
            ),
        ],
        ..Tree::default()
    };
    tree.communications = vec![
        file(
            "communications.d/ok.toml",
            &communication("channel = \"webhook\"", MANUAL, WEBHOOK).replace("\"c\"", "\"ok\""),
        ),
        file(
            "communications.d/uses-bad.toml",
            &communication("channel = \"webhook\"", MANUAL, WEBHOOK)
                .replace("\"c\"", "\"uses-bad\"")
                .replace("\"base\"", "\"bad\""),
        ),
    ];
    let out = validate(&tree, &Templates(BTreeMap::new()));
    let segs: Vec<&str> = out
        .definitions
        .segments
        .keys()
        .map(|n| n.as_str())
        .collect();
    let comms: Vec<&str> = out
        .definitions
        .communications
        .keys()
        .map(|n| n.as_str())
        .collect();
    assert_eq!(segs, ["base"]);
    assert_eq!(
        comms,
        ["ok"],
        "a communication on an invalid segment is not reconciled"
    );
    assert_eq!(
        out.errors(),
        1,
        "the invalid segment is reported once, not at its users"
    );
}

/// Values repeat as `Scalar`'s equality says: `0.0` is `-0.0`, an integer is
/// not a float, strings compare exactly; a list of any length is checked.
#[test]
fn repeated_list_values_are_the_equal_ones() {
    let cd = |list: &str| {
        check(&[(
            "segments.d/s.toml",
            &segment(&format!(
                "type = \"customer\"\ncustom_data = {{ k = {{ in = {list} }} }}"
            )),
        )])
    };
    assert!(
        cd("[0.0, -0.0]").contains("-0 appears twice"),
        "{}",
        cd("[0.0, -0.0]")
    );
    assert!(cd("[1, 2, 1]").contains("1 appears twice"));
    for distinct in [
        "[1, 1.0]",
        "[\"a\", \"A\"]",
        "[true, \"true\"]",
        "[1, \"1\"]",
    ] {
        assert_eq!(cd(distinct), "", "{distinct}");
    }
    let long: Vec<String> = (0..50_000).map(|i| i.to_string()).collect();
    assert_eq!(cd(&format!("[{}]", long.join(", "))), "");
    assert!(cd(&format!("[{}, 49999]", long.join(", "))).contains("49999 appears twice"));
}

#[test]
fn a_stored_communication_keeps_a_schedule_that_fires_rarely() {
    // The fifth Sunday of February: 2032-02-29, more than 5 years after 1970
    // and after 2026, but within 5 years of 2028, when it was applied.
    let mut tree = Tree {
        segments: vec![file("segments.d/base.toml", BASE_SEGMENT)],
        read_at: chrono::DateTime::parse_from_rfc3339("2028-01-01T00:00:00Z")
            .map(|t| t.to_utc())
            .ok(),
        ..Tree::default()
    };
    tree.communications = vec![file(
        "communications.d/c.toml",
        &communication(
            "channel = \"webhook\"",
            "type = \"automatic\"\nschedule = \"0 9 * 2 SUN#5\"",
            WEBHOOK,
        ),
    )];
    let out = validate(&tree, &Templates(BTreeMap::new()));
    assert!(out.is_valid(), "{}", render_text(&out.diagnostics, false));
    let desired = crate::plan::desired(&out.definitions, &out.templates);
    let stored = desired
        .iter()
        .find(|d| d.name == "c")
        .unwrap_or_else(|| panic!("c is not desired: {desired:?}"));
    assert!(
        super::stored_communication(&stored.spec, &stored.templates).is_ok(),
        "the applied communication no longer reads back: {}",
        stored.spec
    );
}

#[test]
fn a_default_tree_has_the_default_file_cap_and_reads_no_clock() {
    let tree = Tree::default();
    assert_eq!(tree.max_file_bytes, crate::config::DEFAULT_MAX_FILE_BYTES);
    assert_eq!(tree.read_at, None);
}
