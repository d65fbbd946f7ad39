//! Folder discovery: LIST with SPECIAL-USE attributes (RFC 6154), falling back to well-known
//! names in several languages and layouts; names decoded from modified UTF-7 (RFC 3501 5.1.3).

use async_imap::imap_proto::{MailboxDatum, Response, StatusAttribute};
use futures::TryStreamExt;

use super::connect::{ImapSession, call_limit, called};
use crate::error::Result;
pub use crate::model::{FolderInfo, Role};

/// LISTs every folder and assigns roles: SPECIAL-USE first, then well-known names.
pub async fn list_folders(session: &mut ImapSession) -> Result<Vec<FolderInfo>> {
    let limit = call_limit(session);
    let r = tokio::time::timeout(limit, async {
        let names = session.list(Some(""), Some("*")).await?;
        names.try_collect::<Vec<_>>().await
    })
    .await;
    let names = called(session, "listing folders (LIST)", r)?;
    let mut folders: Vec<FolderInfo> = names
        .iter()
        .map(|n| folder_info(n.name(), n.delimiter(), n.attributes()))
        .collect();
    assign_roles(&mut folders);
    Ok(folders)
}

/// A folder's counters, from LIST-STATUS (RFC 5819) or STATUS: enough to tell that nothing
/// changed since the last pass without selecting it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FolderStatus {
    pub messages: Option<u32>,
    pub uidnext: Option<u32>,
    pub uidvalidity: Option<u32>,
    pub highestmodseq: Option<u64>,
}

/// The folders and, where the server gave them, their counters (by wire name).
#[derive(Debug, Clone, Default)]
pub struct Listing {
    pub folders: Vec<FolderInfo>,
    pub status: std::collections::HashMap<String, FolderStatus>,
}

/// What the server can do for a listing.
#[derive(Debug, Clone, Copy, Default)]
pub struct ListCaps {
    pub list_status: bool,
    pub special_use: bool,
    pub condstore: bool,
}

impl ListCaps {
    pub fn from_words(words: &[String]) -> ListCaps {
        let has = |c: &str| words.iter().any(|w| w.eq_ignore_ascii_case(c));
        ListCaps {
            list_status: has("LIST-STATUS"),
            special_use: has("SPECIAL-USE"),
            condstore: has("CONDSTORE") || has("QRESYNC"),
        }
    }
}

fn status_items(condstore: bool) -> &'static str {
    if condstore {
        "MESSAGES UIDNEXT UIDVALIDITY HIGHESTMODSEQ"
    } else {
        "MESSAGES UIDNEXT UIDVALIDITY"
    }
}

/// `LIST "" "*"`, with `RETURN (SPECIAL-USE STATUS (…))` where the server has LIST-STATUS: every
/// folder and its counters in one command.
pub fn list_command(caps: ListCaps) -> String {
    if !caps.list_status {
        return "LIST \"\" \"*\"".to_string();
    }
    let special = if caps.special_use { "SPECIAL-USE " } else { "" };
    format!(
        "LIST \"\" \"*\" RETURN ({special}STATUS ({}))",
        status_items(caps.condstore)
    )
}

/// Takes a LIST or STATUS response into the listing; false for anything else.
pub fn collect(listing: &mut Listing, r: &Response<'_>) -> bool {
    match r {
        Response::MailboxData(MailboxDatum::List(l)) => {
            listing.folders.push(folder_info(
                &l.name,
                l.delimiter.as_deref(),
                &l.name_attributes,
            ));
            true
        }
        Response::MailboxData(MailboxDatum::Status { mailbox, status }) => {
            let st = listing.status.entry(mailbox.to_string()).or_default();
            for a in status {
                match a {
                    StatusAttribute::Messages(n) => st.messages = Some(*n),
                    StatusAttribute::UidNext(n) => st.uidnext = Some(*n),
                    StatusAttribute::UidValidity(n) => st.uidvalidity = Some(*n),
                    StatusAttribute::HighestModSeq(n) => st.highestmodseq = Some(*n),
                    _ => {}
                }
            }
            true
        }
        _ => false,
    }
}

/// Roles assigned once everything is in.
pub fn finish(mut listing: Listing) -> Listing {
    assign_roles(&mut listing.folders);
    listing
}

fn folder_info(
    wire: &str,
    delimiter: Option<&str>,
    attrs: &[async_imap::imap_proto::NameAttribute<'_>],
) -> FolderInfo {
    let attributes: Vec<String> = attrs
        .iter()
        .map(|a| format!("{a:?}"))
        .map(|a| attr_text(&a))
        .collect();
    let selectable = !attributes
        .iter()
        .any(|a| a.eq_ignore_ascii_case("\\Noselect") || a.eq_ignore_ascii_case("\\NonExistent"));
    FolderInfo {
        name: decode_utf7(wire),
        wire_name: wire.to_string(),
        delimiter: delimiter.map(str::to_string),
        attributes,
        selectable,
        role: None,
        role_source: None,
    }
}

/// Every folder, and the counters of those the caller wants: LIST-STATUS where the server has
/// it (one command); else LIST and then one STATUS per folder in `wanted` (wire names), all in
/// one flight (HIGHESTMODSEQ only on a CONDSTORE server).
///
/// A server reports the selected folder's counters as the session last saw them, so a NOOP
/// goes in the same flight; the server may run the two in parallel, so when the NOOP brings
/// news of the selected folder, its counters are dropped (the folder is then synced).
pub async fn list_with_status(
    session: &mut ImapSession,
    caps: ListCaps,
    wanted: &[String],
) -> Result<Listing> {
    let mut listing = Listing::default();
    let noop = super::exec::send(session, "checking for changes (NOOP)", "NOOP").await?;
    let what = "listing folders (LIST)";
    let list = super::exec::send(session, what, &list_command(caps)).await?;
    let out = super::exec::answers(session, what, &[noop, list], |_, r| {
        Ok(collect(&mut listing, r))
    })
    .await?;
    for r in out {
        r?;
    }
    let heard = super::unsolicited::take(session);
    if !heard.is_quiet()
        && let Some(sel) = session.get_ref().link().selected.clone()
    {
        listing.status.remove(&sel);
    }
    if !caps.list_status && !wanted.is_empty() {
        let listed: Vec<&String> = wanted
            .iter()
            .filter(|w| {
                listing
                    .folders
                    .iter()
                    .any(|f| f.wire_name == **w && f.selectable)
            })
            .collect();
        let mut tags = Vec::new();
        for w in &listed {
            let cmd = format!(
                "STATUS {} ({})",
                super::append::quote(w),
                status_items(caps.condstore)
            );
            tags.push(super::exec::send(session, "STATUS", &cmd).await?);
        }
        // A folder whose STATUS is refused is simply selected as usual.
        let _ = super::exec::answers(session, "STATUS", &tags, |_, r| {
            Ok(collect(&mut listing, r))
        })
        .await?;
    }
    Ok(finish(listing))
}

/// imap-proto's NameAttribute Debug output is e.g. `Extension("\\Sent")`, `NoSelect`, `Sent`;
/// normalise to the wire spelling.
fn attr_text(debug: &str) -> String {
    if let Some(inner) = debug
        .strip_prefix("Extension(\"")
        .and_then(|s| s.strip_suffix("\")"))
    {
        return inner.replace("\\\\", "\\");
    }
    let word = match debug {
        "NoInferiors" => "Noinferiors",
        "NoSelect" => "Noselect",
        other => other,
    };
    format!("\\{word}")
}

/// A listed folder by name: its decoded name or its wire spelling (modified UTF-7), as a user
/// may write either in config.toml.
pub fn find_named<'a>(folders: &'a [FolderInfo], name: &str) -> Option<&'a FolderInfo> {
    folders
        .iter()
        .find(|f| f.name == name || f.wire_name == name)
}

/// The Sent folder for copies when no setting names one: the one the user chose (`folders NAME
/// --sent`), if it is still listed and holds mail, else the one with role sent. None when the
/// chosen one is gone: copies must not silently land elsewhere.
pub fn sent_folder<'a>(folders: &'a [FolderInfo], chosen: Option<&str>) -> Option<&'a FolderInfo> {
    match chosen {
        Some(name) => find_named(folders, name).filter(|f| f.selectable),
        None => folders.iter().find(|f| f.role == Some(Role::Sent)),
    }
}

pub fn assign_roles(folders: &mut [FolderInfo]) {
    for role in Role::ALL {
        if folders.iter().any(|f| f.role == Some(role)) {
            continue;
        }
        let by_attr = folders.iter().position(|f| {
            f.role.is_none()
                && f.attributes
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(special_use(role)))
        });
        let found = by_attr.map(|i| (i, "special_use")).or_else(|| {
            if role == Role::Inbox {
                return folders
                    .iter()
                    .position(|f| f.name.eq_ignore_ascii_case("INBOX"))
                    .map(|i| (i, "name"));
            }
            // Prefer the shortest matching path (INBOX.Sent over INBOX.Archive.Sent).
            folders
                .iter()
                .enumerate()
                .filter(|(_, f)| {
                    f.role.is_none() && f.selectable && !f.name.eq_ignore_ascii_case("INBOX")
                })
                .filter(|(_, f)| {
                    let leaf = leaf_name(f).to_lowercase();
                    let full = f.name.to_lowercase();
                    names(role).iter().any(|n| {
                        leaf == *n
                            || full == format!("[gmail]/{n}")
                            || full == format!("[google mail]/{n}")
                    })
                })
                .min_by_key(|(_, f)| f.name.len())
                .map(|(i, _)| (i, "name"))
        });
        if let Some((i, src)) = found {
            folders[i].role = Some(role);
            folders[i].role_source = Some(src);
        }
    }
}

fn leaf_name(f: &FolderInfo) -> &str {
    match &f.delimiter {
        Some(d) if !d.is_empty() => f.name.rsplit(d.as_str()).next().unwrap_or(&f.name),
        _ => &f.name,
    }
}

/// Decodes IMAP modified UTF-7 (`&AOk-` → `é`, `&-` → `&`); invalid input is kept as is.
pub fn decode_utf7(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('&') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let Some(end) = after.find('-') else {
            out.push_str(&rest[pos..]);
            return out;
        };
        let chunk = &after[..end];
        if chunk.is_empty() {
            out.push('&');
        } else {
            match decode_b64_utf16(chunk) {
                Some(text) => out.push_str(&text),
                None => out.push_str(&rest[pos..pos + 2 + end]),
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

fn decode_b64_utf16(chunk: &str) -> Option<String> {
    use base64::Engine;
    let std_b64: String = chunk.replace(',', "/");
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(std_b64.trim_end_matches('='))
        .ok()?;
    if bytes.len() % 2 != 0 {
        return None;
    }
    let units: Vec<u16> = bytes
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16(&units).ok()
}

/// Encodes UTF-8 into modified UTF-7 for the wire.
pub fn encode_utf7(s: &str) -> String {
    use base64::Engine;
    let mut out = String::new();
    let mut pending: Vec<u16> = Vec::new();
    let flush = |pending: &mut Vec<u16>, out: &mut String| {
        if pending.is_empty() {
            return;
        }
        let bytes: Vec<u8> = pending.iter().flat_map(|u| u.to_be_bytes()).collect();
        let enc = base64::engine::general_purpose::STANDARD_NO_PAD
            .encode(bytes)
            .replace('/', ",");
        out.push('&');
        out.push_str(&enc);
        out.push('-');
        pending.clear();
    };
    for c in s.chars() {
        if (' '..='~').contains(&c) {
            flush(&mut pending, &mut out);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut buf = [0u16; 2];
            pending.extend_from_slice(c.encode_utf16(&mut buf));
        }
    }
    flush(&mut pending, &mut out);
    out
}

fn special_use(role: Role) -> &'static str {
    match role {
        Role::Inbox => "\\Inbox",
        Role::Sent => "\\Sent",
        Role::Drafts => "\\Drafts",
        Role::Trash => "\\Trash",
        Role::Junk => "\\Junk",
        Role::Archive => "\\Archive",
    }
}
/// Well-known names (last path component, case-insensitive) when SPECIAL-USE is missing.
fn names(role: Role) -> &'static [&'static str] {
    match role {
        Role::Inbox => &["inbox"],
        Role::Sent => &[
            "sent",
            "sent items",
            "sent messages",
            "sent mail",
            "sent-mail",
            "gesendet",
            "gesendete objekte",
            "gesendete elemente",
            "envoyés",
            "éléments envoyés",
            "messages envoyés",
            "wysłane",
            "elementos enviados",
            "enviados",
            "posta inviata",
            "inviati",
            "verzonden",
            "verzonden items",
            "skickat",
            "skickade objekt",
            "sendt",
            "sendte elementer",
            "отправленные",
            "送信済み",
            "已发送",
        ],
        Role::Drafts => &[
            "drafts",
            "draft",
            "entwürfe",
            "brouillons",
            "borradores",
            "bozze",
            "kopie robocze",
            "concepten",
            "черновики",
        ],
        Role::Trash => &[
            "trash",
            "deleted items",
            "deleted messages",
            "bin",
            "papierkorb",
            "gelöschte elemente",
            "corbeille",
            "papelera",
            "cestino",
            "kosz",
            "prullenbak",
            "корзина",
        ],
        Role::Junk => &[
            "junk",
            "spam",
            "junk e-mail",
            "junk email",
            "bulk mail",
            "spamverdacht",
            "indésirables",
            "correo no deseado",
            "posta indesiderata",
        ],
        Role::Archive => &[
            "archive", "archives", "all mail", "archiv", "archivo", "archivio", "archiwum",
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(name: &str, attrs: &[&str]) -> FolderInfo {
        FolderInfo {
            name: name.into(),
            wire_name: encode_utf7(name),
            delimiter: Some("/".into()),
            attributes: attrs.iter().map(|s| s.to_string()).collect(),
            selectable: true,
            role: None,
            role_source: None,
        }
    }

    #[test]
    fn utf7_roundtrip() {
        assert_eq!(decode_utf7("Envoy&AOk-s"), "Envoyés");
        assert_eq!(decode_utf7("Wys&AUI-ane"), "Wysłane");
        assert_eq!(decode_utf7("A&-B"), "A&B");
        assert_eq!(decode_utf7("&ZeVnLIqe-"), "日本語");
        for s in ["Envoyés", "A&B", "日本語/Sent", "plain", "Wysłane"] {
            assert_eq!(decode_utf7(&encode_utf7(s)), s);
        }
        assert_eq!(encode_utf7("Envoyés"), "Envoy&AOk-s");
    }

    #[test]
    fn roles_special_use_then_names() {
        let mut fs = vec![
            f("INBOX", &[]),
            f("Sent Items", &[]),
            f("Gesendet", &["\\Sent"]),
            f("Papierkorb", &[]),
            f("[Gmail]/Spam", &[]),
        ];
        assign_roles(&mut fs);
        assert_eq!(fs[2].role, Some(Role::Sent));
        assert_eq!(fs[2].role_source, Some("special_use"));
        assert_eq!(fs[1].role, None);
        assert_eq!(fs[3].role, Some(Role::Trash));
        assert_eq!(fs[4].role, Some(Role::Junk));
        let mut fs = vec![
            f("INBOX", &[]),
            f("INBOX/Envoyés", &[]),
            f("[Gmail]/Sent Mail", &[]),
        ];
        fs[1].delimiter = Some("/".into());
        assign_roles(&mut fs);
        assert_eq!(fs[1].role, Some(Role::Sent));
        assert_eq!(fs[0].role, Some(Role::Inbox));
    }
}
