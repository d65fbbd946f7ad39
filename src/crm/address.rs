//! Address and domain normalisation: the one definition of "the same address" for matching,
//! the deny list and the customer book.
//!
//! Case-insensitive as a whole (RFC 5321 lets the local part be case-sensitive, but no mail
//! provider an operator meets treats it so, and a CRM that splits `Anna@x` from `anna@x` is
//! worse than one that merges them). Domains are stored as IDNA ASCII (punycode) so `müller.de`
//! and `xn--mller-kva.de` are one domain.

/// How addresses are compared; built once from the config.
#[derive(Debug, Clone, Copy, Default)]
pub struct Normalizer {
    /// Fold `user+tag@domain` to `user@domain` (config `general.fold_plus_addresses`).
    pub fold_plus: bool,
}

impl Normalizer {
    pub fn new(fold_plus: bool) -> Self {
        Normalizer { fold_plus }
    }

    /// The canonical form of an address, or None when it is not an address at all.
    pub fn address(&self, raw: &str) -> Option<String> {
        let (local, domain) = split(raw)?;
        let mut local = local.to_lowercase();
        if self.fold_plus
            && let Some(i) = local.find('+')
            && i > 0
        {
            local.truncate(i);
        }
        let domain = domain_ascii(domain)?;
        Some(format!("{local}@{domain}"))
    }
}

/// Splits `Name <user@host>` / `<user@host>` / `user@host` into local part and domain.
fn split(raw: &str) -> Option<(&str, &str)> {
    let mut s = raw.trim();
    if let (Some(a), Some(b)) = (s.rfind('<'), s.rfind('>'))
        && a < b
    {
        s = &s[a + 1..b];
    }
    let s = s.trim().trim_start_matches("mailto:");
    let (local, domain) = s.rsplit_once('@')?;
    let local = local.trim_matches('"');
    if local.is_empty() || local.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    Some((local, domain))
}

/// A domain in canonical form: lower-case IDNA ASCII without a trailing dot. Accepts `@x.org`
/// and `.x.org` as the user's way of saying "the domain x.org".
pub fn domain_ascii(raw: &str) -> Option<String> {
    let d = raw
        .trim()
        .trim_start_matches('@')
        .trim_start_matches('.')
        .trim_end_matches('.');
    if d.is_empty() || !d.contains('.') && d != "localhost" {
        return None;
    }
    let ascii = if d.is_ascii() {
        d.to_ascii_lowercase()
    } else {
        idna::domain_to_ascii(d).ok()?
    };
    let valid = ascii.split('.').all(|l| {
        !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    }) && ascii.len() <= 253;
    valid.then_some(ascii)
}

/// The domain part of a canonical address.
pub fn domain_of(addr: &str) -> &str {
    addr.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
}

/// `domain` itself and every parent that is still a registrable-looking name
/// (`a.b.example.com` → `a.b.example.com`, `b.example.com`, `example.com`).
pub fn domain_and_parents(domain: &str) -> impl Iterator<Item = &str> {
    let mut next = Some(domain);
    std::iter::from_fn(move || {
        let cur = next?;
        next = cur
            .split_once('.')
            .map(|(_, rest)| rest)
            .filter(|r| r.contains('.'));
        Some(cur)
    })
}

/// Whether `domain` is `pattern` or one of its subdomains.
pub fn domain_within(domain: &str, pattern: &str) -> bool {
    domain == pattern
        || (domain.len() > pattern.len()
            && domain.ends_with(pattern)
            && domain.as_bytes()[domain.len() - pattern.len() - 1] == b'.')
}

/// A deny/block pattern: an address (`a@b.c`) or a domain (`b.c`, with subdomains).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    Address(String),
    Domain(String),
}

impl Pattern {
    /// Parses what a user typed; None when it is neither an address nor a domain.
    pub fn parse(raw: &str) -> Option<Pattern> {
        let raw = raw.trim();
        if raw.starts_with('@') || !raw.contains('@') {
            domain_ascii(raw).map(Pattern::Domain)
        } else {
            Normalizer::default().address(raw).map(Pattern::Address)
        }
    }
    pub fn as_str(&self) -> &str {
        match self {
            Pattern::Address(a) | Pattern::Domain(a) => a,
        }
    }
    /// `addr` must already be canonical (see `Normalizer::address` without plus folding).
    pub fn matches(&self, addr: &str) -> bool {
        match self {
            Pattern::Address(a) => a == addr,
            Pattern::Domain(d) => domain_within(domain_of(addr), d),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_case_brackets_and_idn() {
        let n = Normalizer::default();
        assert_eq!(
            n.address("Anna <Anna.B@Example.COM>").as_deref(),
            Some("anna.b@example.com")
        );
        assert_eq!(
            n.address("x@Müller.de").as_deref(),
            Some("x@xn--mller-kva.de")
        );
        assert_eq!(
            n.address("x@xn--mller-kva.de").as_deref(),
            Some("x@xn--mller-kva.de")
        );
        assert_eq!(n.address("a+tag@x.org").as_deref(), Some("a+tag@x.org"));
        assert_eq!(
            Normalizer::new(true).address("a+tag@x.org").as_deref(),
            Some("a@x.org")
        );
        // A leading '+' is a real local part, not a tag.
        assert_eq!(
            Normalizer::new(true).address("+1@x.org").as_deref(),
            Some("+1@x.org")
        );
        assert_eq!(n.address("no-at-sign"), None);
        assert_eq!(n.address("a b@x.org"), None);
        assert_eq!(n.address("a@bad_domain!.org"), None);
        assert_eq!(n.address("a@nodot"), None);
    }

    #[test]
    fn domains_include_subdomains_only_on_label_boundaries() {
        assert!(domain_within("mail.spam.test", "spam.test"));
        assert!(domain_within("spam.test", "spam.test"));
        assert!(!domain_within("notspam.test", "spam.test"));
        let p: Vec<&str> = domain_and_parents("a.b.example.com").collect();
        assert_eq!(p, ["a.b.example.com", "b.example.com", "example.com"]);
        assert_eq!(
            Pattern::parse("@Spam.Test"),
            Some(Pattern::Domain("spam.test".into()))
        );
        assert_eq!(
            Pattern::parse("Bob@Spam.Test"),
            Some(Pattern::Address("bob@spam.test".into()))
        );
        assert!(
            Pattern::parse("Spam.Test")
                .unwrap()
                .matches("x@eu.spam.test")
        );
        assert!(
            !Pattern::parse("bob@spam.test")
                .unwrap()
                .matches("bobby@spam.test")
        );
        assert_eq!(Pattern::parse("not a domain"), None);
    }
}
