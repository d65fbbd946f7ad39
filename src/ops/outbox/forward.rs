//! Forwarding a cached message (`forward ID`, the console's `F`): to whom the operator says,
//! its text quoted under a "Forwarded message" header block, its attachments attached again.

use super::*;
use crate::mail::parse;

/// "Fwd: " once, whatever the original's prefix case.
pub fn forward_subject(original: &str) -> String {
    let t = original.trim();
    let lower = t.to_ascii_lowercase();
    if lower.starts_with("fwd:") || lower.starts_with("fw:") {
        t.to_string()
    } else {
        format!("Fwd: {t}")
    }
}

/// The forwarded message's letter: from the account holding it (unless one is named).
pub(super) fn letter(
    cx: &Ctx,
    config: &Config,
    store: &Store,
    id: i64,
    req: SendRequest,
) -> Result<Letter> {
    let holders = access::message(cx, config, store, id, Need::Read)?;
    let base = store
        .reply_base(id)?
        .ok_or_else(|| access::no_such(cx, &Target::Message(id)))?;
    let name = match &req.account {
        Some(n) => access::account(cx, config, store, n, Need::Act)?.0.clone(),
        None => match holders.iter().find_map(|h| {
            config
                .account_by_id(h)
                .filter(|(_, a)| Standing::of(a, &cx.operator).allows(Need::Act))
                .map(|(n, _)| n.clone())
        }) {
            Some(n) => n,
            None => access::pick_account(cx, config, store, None, Need::Act)?
                .0
                .clone(),
        },
    };
    let account = Account::from_config(config, &name)?;
    let head = Head {
        from: sender(&account, req.from.as_deref())?,
        to: req.to.clone(),
        cc: req.cc.clone(),
        subject: req
            .subject
            .clone()
            .unwrap_or_else(|| forward_subject(base.subject.as_deref().unwrap_or(""))),
        text: forwarded(&base, &req.text),
    };
    let mut letter = Letter::new(account, head, req, Threading::default())?;
    letter.draft.attachments.extend(attachments_of(&base));
    Ok(letter)
}

/// The operator's text, then the original's headers and text.
pub fn forwarded_text(
    own: &str,
    from: &str,
    date: Option<&str>,
    subject: &str,
    to: &str,
    text: &str,
) -> String {
    let mut s = own.trim_end().to_string();
    if !s.is_empty() {
        s.push_str("\n\n");
    }
    s.push_str("---------- Forwarded message ----------\n");
    s.push_str(&format!("From: {from}\n"));
    if let Some(d) = date {
        s.push_str(&format!("Date: {d}\n"));
    }
    s.push_str(&format!("Subject: {subject}\nTo: {to}\n\n"));
    s.push_str(text);
    s
}

fn forwarded(base: &ReplyBase, own: &str) -> String {
    let text = base.text_body.clone().or_else(|| {
        let body = base.body.as_deref()?;
        parse::parse_body(body).map(|b| b.text)
    });
    let from = mailbox_text(
        base.from_name.as_deref(),
        base.from_addr.as_deref().unwrap_or("unknown"),
    );
    let to: Vec<String> = addresses(&base.to_json)
        .into_iter()
        .map(|(n, a)| mailbox_text(n.as_deref(), &a))
        .collect();
    forwarded_text(
        own,
        &from,
        base.date.as_deref(),
        base.subject.as_deref().unwrap_or(""),
        &to.join(", "),
        text.as_deref().unwrap_or(""),
    )
}

/// The original's attachments, as they were (needs its cached body).
fn attachments_of(base: &ReplyBase) -> Vec<compose::Attachment> {
    let Some(body) = base.body.as_deref() else {
        return Vec::new();
    };
    let Some(parsed) = parse::parse_body(body) else {
        return Vec::new();
    };
    parsed
        .attachments
        .iter()
        .filter_map(|a| {
            let (name, data) = parse::attachment_bytes(body, a.index)?;
            Some(compose::Attachment {
                filename: name
                    .or_else(|| a.name.clone())
                    .unwrap_or_else(|| format!("attachment-{}", a.index)),
                content_type: a.content_type.clone(),
                data,
            })
        })
        .collect()
}
