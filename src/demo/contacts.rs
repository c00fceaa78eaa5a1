//! Names and email addresses of companies and people.

use super::dice::Dice;
use super::tables::*;
use std::fmt::Write as _;

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
pub(super) fn company_contact(d: &mut Dice, country: Option<&Country>) -> (String, String) {
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
pub(super) fn person_contact(d: &mut Dice) -> (String, String) {
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
