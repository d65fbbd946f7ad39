//! Building outgoing messages with lettre: the exact RFC 5322 bytes SMTP sends (and the Sent
//! copy repeats), with our own Message-ID, threading headers, multipart text/HTML and
//! attachments. Also builds the reduced Sent copy when the account's copy options ask for one
//! (text only, headers only, attachments dropped): same Message-ID and Date, so verification by
//! Message-ID finds it, with a note saying what was left out.

use std::time::SystemTime;

use lettre::Address;
use lettre::address::Envelope;
use lettre::message::header::ContentType;
use lettre::message::{Attachment as LAttachment, Mailbox, MultiPart, SinglePart};

use crate::config::CopyContent;
use crate::error::{AppError, Result};

#[derive(Debug, Clone)]
pub struct Attachment {
    pub filename: String,
    pub content_type: String,
    pub data: Vec<u8>,
}

/// A message to send, before it becomes bytes.
#[derive(Debug, Clone)]
pub struct Draft {
    /// `Name <addr>` or `addr`.
    pub from: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    /// Envelope only: never written into the headers.
    pub bcc: Vec<String>,
    pub reply_to: Option<String>,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
    pub attachments: Vec<Attachment>,
    /// Without angle brackets.
    pub in_reply_to: Option<String>,
    /// Without angle brackets, oldest first.
    pub references: Vec<String>,
    /// Without angle brackets; `new_message_id` makes one.
    pub message_id: String,
    pub date: SystemTime,
}

/// What the Sent copy keeps.
#[derive(Debug, Clone, Copy, Default)]
pub struct CopyPlan {
    pub content: CopyContent,
    /// Attachments bigger than this are left out of the copy (0 = never).
    pub drop_attachments_over_bytes: u64,
}

#[derive(Debug, Clone)]
pub struct Built {
    /// The exact bytes for SMTP DATA and the (full) Sent copy.
    pub raw: Vec<u8>,
    pub envelope_from: String,
    /// Every envelope recipient (To, Cc and Bcc), deduplicated.
    pub rcpts: Vec<String>,
    /// The Sent copy when it differs from `raw`.
    pub copy_raw: Option<Vec<u8>>,
    /// What the copy leaves out (None when it is `raw`).
    pub copy_note: Option<String>,
}

/// A fresh Message-ID in the sender's domain (without angle brackets).
pub fn new_message_id(from_addr: &str) -> String {
    let domain = from_addr
        .rsplit_once('@')
        .map(|(_, d)| d.trim_end_matches('>').to_string())
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "mailroom.invalid".into());
    let t = chrono::Utc::now().timestamp_millis();
    format!("{t:x}.{}.mailroom@{domain}", crate::model::new_id())
}

fn bad_address(what: &str, value: &str, e: impl std::fmt::Display) -> AppError {
    AppError::usage(
        format!("{what} {value:?} is not a valid address ({e})"),
        "write an address like name@example.com or \"Name <name@example.com>\"",
    )
}

pub fn parse_mailbox(what: &str, value: &str) -> Result<Mailbox> {
    value
        .trim()
        .parse::<Mailbox>()
        .map_err(|e| bad_address(what, value, e))
}

/// The bare address of `Name <addr>` or `addr`, lower-cased.
pub fn bare_address(value: &str) -> Result<String> {
    Ok(parse_mailbox("address", value)?
        .email
        .to_string()
        .to_ascii_lowercase())
}

/// Guesses a content type from the file name; unknown types are sent as octet-stream.
pub fn guess_content_type(filename: &str) -> &'static str {
    let ext = filename
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "txt" | "log" | "md" => "text/plain",
        "csv" => "text/csv",
        "html" | "htm" => "text/html",
        "pdf" => "application/pdf",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "svg" => "image/svg+xml",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        "json" => "application/json",
        "xml" => "application/xml",
        "ics" => "text/calendar",
        "doc" => "application/msword",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xls" => "application/vnd.ms-excel",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "odt" => "application/vnd.oasis.opendocument.text",
        "eml" => "message/rfc822",
        _ => "application/octet-stream",
    }
}

/// Reads an attachment file, naming the fix when it cannot.
pub fn read_attachment(path: &std::path::Path) -> Result<Attachment> {
    let data = std::fs::read(path).map_err(|e| {
        AppError::usage(
            format!("cannot read the attachment {} ({e})", path.display()),
            "check the --attach path",
        )
    })?;
    let filename = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "attachment".into());
    Ok(Attachment {
        content_type: guess_content_type(&filename).to_string(),
        filename,
        data,
    })
}

fn human_size(n: usize) -> String {
    let n = n as f64;
    if n >= 1024.0 * 1024.0 {
        format!("{:.1} MB", n / (1024.0 * 1024.0))
    } else if n >= 1024.0 {
        format!("{:.1} KB", n / 1024.0)
    } else {
        format!("{n} bytes")
    }
}

fn angle(id: &str) -> String {
    format!(
        "<{}>",
        id.trim().trim_start_matches('<').trim_end_matches('>')
    )
}

/// Builds the bytes to send and, when the plan asks for it, the reduced Sent copy.
pub fn build(draft: &Draft, plan: &CopyPlan) -> Result<Built> {
    if draft.to.is_empty() && draft.cc.is_empty() && draft.bcc.is_empty() {
        return Err(AppError::usage(
            "the message has no recipient",
            "add --to ADDRESS (or --cc/--bcc)",
        ));
    }
    let from = parse_mailbox("--from", &draft.from)?;
    let mut rcpts: Vec<Address> = Vec::new();
    for (what, list) in [
        ("--to", &draft.to),
        ("--cc", &draft.cc),
        ("--bcc", &draft.bcc),
    ] {
        for a in list {
            let mb = parse_mailbox(what, a)?;
            if !rcpts
                .iter()
                .any(|r| r.to_string().eq_ignore_ascii_case(mb.email.as_ref()))
            {
                rcpts.push(mb.email);
            }
        }
    }
    let envelope = Envelope::new(Some(from.email.clone()), rcpts.clone()).map_err(|e| {
        AppError::usage(
            format!("cannot form the SMTP envelope ({e})"),
            "check the sender and recipients",
        )
    })?;
    let raw = message(draft, &from, &envelope, Body::Full)?;
    let (copy_raw, copy_note) = copy_variant(draft, &from, &envelope, plan)?;
    Ok(Built {
        raw,
        envelope_from: from.email.to_string(),
        rcpts: rcpts.iter().map(|a| a.to_string()).collect(),
        copy_raw,
        copy_note,
    })
}

/// A draft's bytes for the Drafts folder: like `build`'s, but it may have no recipient yet
/// (the envelope, which is never written into the headers, then names the sender).
pub fn build_draft(draft: &Draft) -> Result<Vec<u8>> {
    let from = parse_mailbox("From", &draft.from)?;
    let mut rcpts: Vec<Address> = Vec::new();
    for a in draft.to.iter().chain(&draft.cc).chain(&draft.bcc) {
        rcpts.push(parse_mailbox("address", a)?.email);
    }
    if rcpts.is_empty() {
        rcpts.push(from.email.clone());
    }
    let envelope = Envelope::new(Some(from.email.clone()), rcpts).map_err(|e| {
        AppError::usage(
            format!("cannot form the draft ({e})"),
            "check the sender and recipients",
        )
    })?;
    message(draft, &from, &envelope, Body::Full)
}

enum Body<'a> {
    Full,
    /// Text (and HTML) plus the attachments not in `dropped`, then the note.
    Reduced {
        keep_html: bool,
        dropped: &'a [usize],
        note: &'a str,
    },
    /// Only the note as body.
    NoteOnly(&'a str),
}

fn copy_variant(
    draft: &Draft,
    from: &Mailbox,
    envelope: &Envelope,
    plan: &CopyPlan,
) -> Result<(Option<Vec<u8>>, Option<String>)> {
    let over = plan.drop_attachments_over_bytes;
    let describe = |i: usize| {
        let a = &draft.attachments[i];
        format!(
            "\"{}\" ({}, {})",
            a.filename,
            human_size(a.data.len()),
            a.content_type
        )
    };
    match plan.content {
        CopyContent::Full | CopyContent::NoAttachments => {
            let dropped: Vec<usize> = (0..draft.attachments.len())
                .filter(|&i| {
                    plan.content == CopyContent::NoAttachments
                        || (over > 0 && draft.attachments[i].data.len() as u64 > over)
                })
                .collect();
            if dropped.is_empty() {
                return Ok((None, None));
            }
            let why = if plan.content == CopyContent::NoAttachments {
                "this account keeps Sent copies without attachments".to_string()
            } else {
                format!(
                    "this account drops attachments over {} from Sent copies",
                    human_size(over as usize)
                )
            };
            let list: Vec<String> = dropped.iter().map(|&i| describe(i)).collect();
            let note = format!(
                "[mailroom] Left out of this Sent copy, but sent to the recipients in full: {}. ({why}.)",
                list.join(", ")
            );
            let bytes = message(
                draft,
                from,
                envelope,
                Body::Reduced {
                    keep_html: true,
                    dropped: &dropped,
                    note: &note,
                },
            )?;
            Ok((Some(bytes), Some(note)))
        }
        CopyContent::TextOnly => {
            let all: Vec<usize> = (0..draft.attachments.len()).collect();
            if draft.html.is_none() && all.is_empty() {
                return Ok((None, None));
            }
            let mut left = Vec::new();
            if draft.html.is_some() {
                left.push("the HTML version".to_string());
            }
            left.extend(all.iter().map(|&i| describe(i)));
            let note = format!(
                "[mailroom] This Sent copy keeps the text only; sent in full but left out here: {}.",
                left.join(", ")
            );
            let bytes = message(
                draft,
                from,
                envelope,
                Body::Reduced {
                    keep_html: false,
                    dropped: &all,
                    note: &note,
                },
            )?;
            Ok((Some(bytes), Some(note)))
        }
        CopyContent::HeadersOnly => {
            let note = "[mailroom] This Sent copy keeps the headers only; the body was sent to the recipients in full.".to_string();
            let bytes = message(draft, from, envelope, Body::NoteOnly(&note))?;
            Ok((Some(bytes), Some(note)))
        }
    }
}

fn message(draft: &Draft, from: &Mailbox, envelope: &Envelope, body: Body<'_>) -> Result<Vec<u8>> {
    let mut b = lettre::Message::builder()
        .from(from.clone())
        .subject(draft.subject.clone())
        .date(draft.date)
        .message_id(Some(angle(&draft.message_id)))
        .user_agent(format!("mailroom {}", env!("CARGO_PKG_VERSION")))
        .envelope(envelope.clone());
    for a in &draft.to {
        b = b.to(parse_mailbox("--to", a)?);
    }
    for a in &draft.cc {
        b = b.cc(parse_mailbox("--cc", a)?);
    }
    if let Some(r) = &draft.reply_to {
        b = b.reply_to(parse_mailbox("--reply-to", r)?);
    }
    if let Some(irt) = &draft.in_reply_to {
        b = b.in_reply_to(angle(irt));
    }
    if !draft.references.is_empty() {
        let refs: Vec<String> = draft.references.iter().map(|r| angle(r)).collect();
        b = b.references(refs.join(" "));
    }
    let text_part = |text: &str| SinglePart::plain(text.to_string());
    let alt = |html: Option<&String>, text: &str| -> Option<MultiPart> {
        html.map(|h| MultiPart::alternative_plain_html(text.to_string(), h.clone()))
    };
    let attach = |a: &Attachment| -> Result<SinglePart> {
        let ct = ContentType::parse(&a.content_type)
            .or_else(|_| ContentType::parse("application/octet-stream"))
            .map_err(|e| {
                AppError::local("bad content type", e.to_string(), "report this as a bug")
            })?;
        Ok(LAttachment::new(a.filename.clone()).body(a.data.clone(), ct))
    };
    let built = match body {
        Body::Full => {
            if draft.attachments.is_empty() {
                match alt(draft.html.as_ref(), &draft.text) {
                    Some(m) => b.multipart(m),
                    None => b.singlepart(text_part(&draft.text)),
                }
            } else {
                let mut mixed = match alt(draft.html.as_ref(), &draft.text) {
                    Some(m) => MultiPart::mixed().multipart(m),
                    None => MultiPart::mixed().singlepart(text_part(&draft.text)),
                };
                for a in &draft.attachments {
                    mixed = mixed.singlepart(attach(a)?);
                }
                b.multipart(mixed)
            }
        }
        Body::Reduced {
            keep_html,
            dropped,
            note,
        } => {
            let html = if keep_html { draft.html.as_ref() } else { None };
            let mut mixed = match alt(html, &draft.text) {
                Some(m) => MultiPart::mixed().multipart(m),
                None => MultiPart::mixed().singlepart(text_part(&draft.text)),
            };
            for (i, a) in draft.attachments.iter().enumerate() {
                if !dropped.contains(&i) {
                    mixed = mixed.singlepart(attach(a)?);
                }
            }
            mixed = mixed.singlepart(text_part(note));
            b.multipart(mixed)
        }
        Body::NoteOnly(note) => b.singlepart(text_part(note)),
    };
    let msg = built.map_err(|e| {
        AppError::usage(
            format!("cannot build the message ({e})"),
            "check the sender and recipients",
        )
    })?;
    Ok(msg.formatted())
}

/// "Re: " once, whatever the original's prefix case.
pub fn reply_subject(original: &str) -> String {
    let t = original.trim();
    if t.len() >= 3 && t[..3].eq_ignore_ascii_case("re:") {
        t.to_string()
    } else {
        format!("Re: {t}")
    }
}

/// The quoted original under the reply text.
pub fn quote_body(reply: &str, date: Option<&str>, who: &str, original: &str) -> String {
    let mut out = String::from(reply.trim_end());
    out.push_str("\n\n");
    match date {
        Some(d) => out.push_str(&format!("On {d}, {who} wrote:\n")),
        None => out.push_str(&format!("{who} wrote:\n")),
    }
    for line in original.trim_end().lines() {
        if line.is_empty() {
            out.push_str(">\n");
        } else {
            out.push_str("> ");
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MimeHeaders;

    fn draft() -> Draft {
        Draft {
            from: "Ålice Ämber <alice@example.test>".into(),
            to: vec!["bob@example.test".into()],
            cc: vec![],
            bcc: vec!["hidden@example.test".into()],
            reply_to: Some("desk@example.test".into()),
            subject: "Grüße — 日本語 subject".into(),
            text: "hello\nworld".into(),
            html: Some("<p>hello</p>".into()),
            attachments: vec![
                Attachment {
                    filename: "small.txt".into(),
                    content_type: "text/plain".into(),
                    data: b"tiny".to_vec(),
                },
                Attachment {
                    filename: "big.bin".into(),
                    content_type: "application/octet-stream".into(),
                    data: vec![7u8; 5000],
                },
            ],
            in_reply_to: Some("orig@example.test".into()),
            references: vec!["root@example.test".into(), "orig@example.test".into()],
            message_id: "mine@example.test".into(),
            date: SystemTime::now(),
        }
    }

    fn parse(bytes: &[u8]) -> mail_parser::Message<'_> {
        mail_parser::MessageParser::default().parse(bytes).unwrap()
    }

    #[test]
    fn full_message_has_headers_parts_and_no_bcc() {
        let b = build(&draft(), &CopyPlan::default()).unwrap();
        assert!(b.copy_raw.is_none());
        let text = String::from_utf8_lossy(&b.raw);
        assert!(
            !text.to_ascii_lowercase().contains("hidden@"),
            "Bcc stays out of the headers"
        );
        assert!(b.raw.is_ascii(), "non-ASCII headers are encoded");
        assert_eq!(b.rcpts, ["bob@example.test", "hidden@example.test"]);
        let m = parse(&b.raw);
        assert_eq!(m.subject(), Some("Grüße — 日本語 subject"));
        assert_eq!(m.message_id(), Some("mine@example.test"));
        assert_eq!(m.in_reply_to().as_text(), Some("orig@example.test"));
        assert_eq!(m.attachment_count(), 2);
        assert_eq!(
            m.body_text(0).as_deref(),
            Some("hello\r\nworld"),
            "lettre writes CRLF"
        );
        assert!(m.body_html(0).unwrap().contains("<p>hello</p>"));
        assert_eq!(
            m.from().unwrap().first().unwrap().name(),
            Some("Ålice Ämber")
        );
        assert_eq!(
            m.reply_to().unwrap().first().unwrap().address(),
            Some("desk@example.test")
        );
    }

    #[test]
    fn copy_drops_big_attachments_with_a_note() {
        let plan = CopyPlan {
            content: CopyContent::Full,
            drop_attachments_over_bytes: 1000,
        };
        let b = build(&draft(), &plan).unwrap();
        let copy = b.copy_raw.unwrap();
        let m = parse(&copy);
        assert_eq!(
            m.message_id(),
            Some("mine@example.test"),
            "same Message-ID for verification"
        );
        let names: Vec<_> = m
            .attachments()
            .filter_map(|a| a.attachment_name())
            .collect();
        assert_eq!(names, ["small.txt"]);
        assert!(b.copy_note.unwrap().contains("big.bin"));
        assert!(String::from_utf8_lossy(&copy).contains("Left out of this Sent copy"));
        // The full message still carries both.
        assert_eq!(parse(&b.raw).attachment_count(), 2);
    }

    #[test]
    fn text_only_and_headers_only_copies() {
        let plan = CopyPlan {
            content: CopyContent::TextOnly,
            drop_attachments_over_bytes: 0,
        };
        let b = build(&draft(), &plan).unwrap();
        let copy = b.copy_raw.unwrap();
        let m = parse(&copy);
        assert!(m.attachments().all(|a| a.attachment_name().is_none()));
        assert!(!String::from_utf8_lossy(&copy).contains("<p>hello</p>"));
        let plan = CopyPlan {
            content: CopyContent::HeadersOnly,
            drop_attachments_over_bytes: 0,
        };
        let b = build(&draft(), &plan).unwrap();
        let m = parse(b.copy_raw.as_ref().unwrap());
        assert_eq!(m.subject(), Some("Grüße — 日本語 subject"));
        assert!(m.body_text(0).unwrap().contains("headers only"));
    }

    #[test]
    fn rejects_bad_addresses_and_no_recipients() {
        let mut d = draft();
        d.to = vec!["not an address".into()];
        assert!(build(&d, &CopyPlan::default()).is_err());
        let mut d = draft();
        d.to.clear();
        d.bcc.clear();
        let e = build(&d, &CopyPlan::default()).unwrap_err();
        assert!(e.fix.contains("--to"));
    }

    #[test]
    fn reply_helpers() {
        assert_eq!(reply_subject("RE: x"), "RE: x");
        assert_eq!(reply_subject("hello"), "Re: hello");
        let q = quote_body("thanks", Some("Mon"), "Bob", "a\n\nb");
        assert_eq!(q, "thanks\n\nOn Mon, Bob wrote:\n> a\n>\n> b\n");
    }
}
