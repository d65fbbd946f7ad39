//! The customer book: validated changes, each followed by re-matching the cache, since a new
//! address or domain can claim mail that is already stored.

use serde::Serialize;

use super::address::{Normalizer, domain_ascii};
use super::matching::{MatchSummary, rematch_addresses, rematch_all};
use crate::config::Config;
use crate::error::{AppError, Result};
use crate::store::{CustomerRow, Store};

/// A customer as typed by a user (addresses not yet validated).
#[derive(Debug, Clone, Default)]
pub struct CustomerInput {
    pub name: String,
    pub company: Option<String>,
    pub notes: Option<String>,
    pub emails: Vec<String>,
    pub domains: Vec<String>,
}

/// Changes to one customer; `Some("")` clears company or notes.
#[derive(Debug, Clone, Default)]
pub struct CustomerEdit {
    pub name: Option<String>,
    pub company: Option<String>,
    pub notes: Option<String>,
    pub add_emails: Vec<String>,
    pub remove_emails: Vec<String>,
    pub add_domains: Vec<String>,
    pub remove_domains: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Changed {
    pub customer: CustomerRow,
    pub rematch: MatchSummary,
}

/// Canonical addresses (never plus-folded: the book keeps what the user typed, matching folds).
pub fn parse_emails(raw: &[String]) -> Result<Vec<String>> {
    let n = Normalizer::default();
    let mut out: Vec<String> = Vec::new();
    for r in raw
        .iter()
        .flat_map(|r| r.split(';'))
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let a = n.address(r).ok_or_else(|| {
            AppError::usage(
                format!("{r:?} is not an email address"),
                "write it as name@example.com",
            )
        })?;
        if !out.contains(&a) {
            out.push(a);
        }
    }
    Ok(out)
}

pub fn parse_domains(raw: &[String]) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for r in raw
        .iter()
        .flat_map(|r| r.split(';'))
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let d = domain_ascii(r).ok_or_else(|| {
            AppError::usage(format!("{r:?} is not a domain"), "write it as example.com")
        })?;
        if !out.contains(&d) {
            out.push(d);
        }
    }
    Ok(out)
}

fn opt(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

fn check_name(name: &str) -> Result<String> {
    let n = name.trim();
    if n.is_empty() {
        return Err(AppError::usage(
            "a customer needs a name",
            "pass --name NAME",
        ));
    }
    Ok(n.to_string())
}

pub fn not_found(id: i64) -> AppError {
    AppError::not_found("customer", &id.to_string(), "see `mailroom customers list`")
}

/// The customer a user names: an id (digits), an email address (has `@`) or an exact name
/// (case only decides between names that differ in case). A name several customers share is an
/// error that lists them, so the user can name one by id.
pub fn find(store: &Store, spec: &str) -> Result<i64> {
    let spec = spec.trim();
    if spec.is_empty() {
        return Err(AppError::usage(
            "name a customer",
            "pass --customer ID, an email address or the exact name",
        ));
    }
    if spec.bytes().all(|b| b.is_ascii_digit()) {
        let id: i64 = spec.parse().map_err(|_| not_found_named(spec))?;
        return match store.customer(id)? {
            Some(_) => Ok(id),
            None => Err(not_found(id)),
        };
    }
    if spec.contains('@') {
        let addr = Normalizer::default().address(spec).ok_or_else(|| {
            AppError::usage(
                format!("{spec:?} is not an email address"),
                "write it as name@example.com, or name the customer by id or name",
            )
        })?;
        return store.email_owner(&addr)?.ok_or_else(|| {
            AppError::not_found(
                "customer with the address",
                &addr,
                "see `mailroom customers list`, or add one with `mailroom customers add`",
            )
        });
    }
    let all = store.customers()?;
    let mut named: Vec<&CustomerRow> = all.iter().filter(|c| c.name == spec).collect();
    if named.is_empty() {
        let lower = spec.to_lowercase();
        named = all
            .iter()
            .filter(|c| c.name.to_lowercase() == lower)
            .collect();
    }
    match named.as_slice() {
        [] => Err(not_found_named(spec)),
        [one] => Ok(one.id),
        many => Err(ambiguous(spec, many)),
    }
}

fn not_found_named(name: &str) -> AppError {
    AppError::not_found(
        "customer",
        name,
        "see `mailroom customers list`; name a customer by id, email address or exact name",
    )
}

/// Several customers answer to `name`: each by id, name and company.
fn ambiguous(name: &str, many: &[&CustomerRow]) -> AppError {
    let list: Vec<String> = many
        .iter()
        .map(|c| match &c.company {
            Some(co) => format!("{} {} ({co})", c.id, c.name),
            None => format!("{} {}", c.id, c.name),
        })
        .collect();
    AppError::needs_user(
        format!("{} customers are named {name:?}", many.len()),
        format!("candidates: {}", list.join("; ")),
        format!(
            "name one by id (e.g. --customer {}) or by email address",
            many.first().map(|c| c.id).unwrap_or_default()
        ),
    )
    .with_code(crate::error::Code::CustomerAmbiguous)
}

/// Adds a customer and re-matches the cache.
pub fn add(store: &Store, config: &Config, input: CustomerInput) -> Result<Changed> {
    let name = check_name(&input.name)?;
    let emails = parse_emails(&input.emails)?;
    let domains = parse_domains(&input.domains)?;
    let id = store.atomically(|s| {
        let id = s.customer_insert(
            &name,
            opt(input.company).as_deref(),
            opt(input.notes).as_deref(),
        )?;
        for e in &emails {
            s.customer_add_email(id, e)?;
        }
        for d in &domains {
            s.customer_add_domain(id, d)?;
        }
        Ok(id)
    })?;
    let rematch = rematch_changed(store, config, &emails, !domains.is_empty(), &[])?;
    let customer = store.customer(id)?.ok_or_else(|| not_found(id))?;
    Ok(Changed { customer, rematch })
}

/// Re-matches after a book change: only what the named addresses (and `also`) can affect,
/// unless a domain changed — a domain reaches mail no lookup names, so then everything.
fn rematch_changed(
    store: &Store,
    config: &Config,
    emails: &[String],
    domains_changed: bool,
    also: &[i64],
) -> Result<MatchSummary> {
    if domains_changed {
        rematch_all(store, config)
    } else {
        rematch_addresses(store, config, emails, also)
    }
}

pub fn edit(store: &Store, config: &Config, id: i64, e: CustomerEdit) -> Result<Changed> {
    if store.customer(id)?.is_none() {
        return Err(not_found(id));
    }
    let name = e.name.as_deref().map(check_name).transpose()?;
    let add_emails = parse_emails(&e.add_emails)?;
    let remove_emails = parse_emails(&e.remove_emails)?;
    let add_domains = parse_domains(&e.add_domains)?;
    let remove_domains = parse_domains(&e.remove_domains)?;
    let company = e.company.map(|c| opt(Some(c)));
    let notes = e.notes.map(|n| opt(Some(n)));
    let before = store.customer_message_ids(id)?;
    store.atomically(|s| {
        s.customer_update(
            id,
            name.as_deref(),
            company.as_ref().map(|c| c.as_deref()),
            notes.as_ref().map(|n| n.as_deref()),
        )?;
        for a in &remove_emails {
            s.customer_remove_email(id, a)?;
        }
        for a in &add_emails {
            s.customer_add_email(id, a)?;
        }
        for d in &remove_domains {
            s.customer_remove_domain(id, d)?;
        }
        for d in &add_domains {
            s.customer_add_domain(id, d)?;
        }
        Ok(())
    })?;
    let emails: Vec<String> = add_emails
        .iter()
        .chain(remove_emails.iter())
        .cloned()
        .collect();
    let domains_changed = !add_domains.is_empty() || !remove_domains.is_empty();
    let rematch = if emails.is_empty() && !domains_changed {
        MatchSummary::default()
    } else {
        rematch_changed(store, config, &emails, domains_changed, &before)?
    };
    let customer = store.customer(id)?.ok_or_else(|| not_found(id))?;
    Ok(Changed { customer, rematch })
}

/// Removes a customer; its mail becomes unmatched again (and may return to triage).
pub fn remove(store: &Store, config: &Config, id: i64) -> Result<(CustomerRow, MatchSummary)> {
    let c = store.customer(id)?.ok_or_else(|| not_found(id))?;
    let before = store.customer_message_ids(id)?;
    store.customer_delete(id)?;
    let rematch = rematch_changed(store, config, &c.emails, !c.domains.is_empty(), &before)?;
    Ok((c, rematch))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_customer_is_named_by_id_address_or_exact_name() {
        let s = Store::open_in_memory().unwrap();
        let cfg = Config::default();
        let new = |name: &str, company: Option<&str>, email: &str| {
            add(
                &s,
                &cfg,
                CustomerInput {
                    name: name.into(),
                    company: company.map(String::from),
                    emails: vec![email.into()],
                    ..Default::default()
                },
            )
            .unwrap()
            .customer
            .id
        };
        let ada1 = new("Ada Lovelace", Some("Analytical"), "ada@one.example");
        let ada2 = new("Ada Lovelace", None, "ada@two.example");
        let grace = new("Grace Hopper", None, "grace@navy.example");
        assert_eq!(find(&s, &grace.to_string()).unwrap(), grace);
        assert_eq!(find(&s, "Grace Hopper").unwrap(), grace);
        assert_eq!(
            find(&s, " grace hopper ").unwrap(),
            grace,
            "case decides only ties"
        );
        assert_eq!(find(&s, "ADA@two.example").unwrap(), ada2);
        let e = find(&s, "Ada Lovelace").unwrap_err();
        assert_eq!(e.code, crate::error::Code::CustomerAmbiguous);
        assert!(
            e.detail
                .contains(&format!("{ada1} Ada Lovelace (Analytical)"))
                && e.detail.contains(&format!("{ada2} Ada Lovelace")),
            "{e}"
        );
        assert!(e.fix.contains(&format!("--customer {ada1}")), "{e}");
        for missing in ["999", "nobody@else.example", "Nobody"] {
            let e = find(&s, missing).unwrap_err();
            assert_eq!(e.code, crate::error::Code::NotFound, "{missing}: {e}");
        }
        assert_eq!(find(&s, "  ").unwrap_err().code, crate::error::Code::Usage);
    }

    #[test]
    fn validates_and_refuses_shared_addresses() {
        let s = Store::open_in_memory().unwrap();
        let cfg = Config::default();
        let a = add(
            &s,
            &cfg,
            CustomerInput {
                name: " Anna ".into(),
                emails: vec!["Anna@Example.org; anna@example.org".into()],
                domains: vec!["@Example.org".into()],
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(a.customer.name, "Anna");
        assert_eq!(a.customer.emails, ["anna@example.org"]);
        assert_eq!(a.customer.domains, ["example.org"]);
        let err = add(
            &s,
            &cfg,
            CustomerInput {
                name: "Bob".into(),
                emails: vec!["ANNA@example.org".into()],
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(err.summary.contains("already belongs to customer"), "{err}");
        // Nothing of the failed add was kept.
        assert_eq!(s.customers().unwrap().len(), 1);
        assert!(
            add(
                &s,
                &cfg,
                CustomerInput {
                    name: "  ".into(),
                    ..Default::default()
                }
            )
            .is_err()
        );
        assert!(parse_emails(&["not an address".into()]).is_err());
        let e = edit(
            &s,
            &cfg,
            a.customer.id,
            CustomerEdit {
                company: Some(String::new()),
                add_emails: vec!["a2@example.org".into()],
                remove_emails: vec!["anna@example.org".into()],
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(e.customer.emails, ["a2@example.org"]);
        assert_eq!(e.customer.company, None);
        assert!(edit(&s, &cfg, 999, CustomerEdit::default()).is_err());
    }
}
