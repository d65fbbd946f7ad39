//! The `sent_folder` step's decision: which folders a Sent copy can go to (the default and each
//! per-type override) and whether the server's LIST has them. No I/O, so it is tested against
//! made-up LIST results; the outbox looks folders up the same way (`outbox::sentbox`).

use crate::config::SentCopyOptions;
use crate::error::AppError;
use crate::imap::discovery::{self, FolderInfo, Role};

/// A folder the Sent copy can go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// None = the detected Sent folder (no `sent_copy.folder`).
    pub name: Option<String>,
    /// The config.toml keys that name it; empty for the detected Sent folder.
    pub settings: Vec<&'static str>,
}

/// The default first (`sent_copy.folder`, else the detected Sent), then each per-type override;
/// one entry per distinct name, carrying every setting that names it.
pub fn targets(sc: &SentCopyOptions) -> Vec<Target> {
    let mut out = vec![Target {
        name: sc.folder.clone(),
        settings: match sc.folder {
            Some(_) => vec!["sent_copy.folder"],
            None => Vec::new(),
        },
    }];
    for (name, setting) in [
        (&sc.folders.new, "sent_copy.folders.new"),
        (&sc.folders.reply, "sent_copy.folders.reply"),
    ] {
        let Some(name) = name else { continue };
        match out.iter_mut().find(|t| t.name.as_deref() == Some(name)) {
            Some(t) => t.settings.push(setting),
            None => out.push(Target {
                name: Some(name.clone()),
                settings: vec![setting],
            }),
        }
    }
    out
}

/// Every copy folder exists: where the write probe goes and the step's text.
#[derive(Debug)]
pub struct Resolved {
    /// The default copy folder.
    pub primary: FolderInfo,
    /// Each other folder a per-type setting names, once, with the settings naming it.
    pub others: Vec<(String, FolderInfo)>,
    pub detail: String,
}

/// Why one target cannot take copies.
enum Problem<'a> {
    /// No `sent_copy.folder`, and the server has no folder with role sent.
    NoSent,
    Missing {
        name: &'a str,
        keys: String,
    },
    /// The Sent folder chosen with `folders NAME --sent` is no longer listed (or holds no mail).
    ChosenGone {
        name: &'a str,
    },
    /// Listed, but \Noselect: only a parent of other folders. `detected`: no setting names it,
    /// the server marked it \Sent.
    NotSelectable {
        name: &'a str,
        keys: String,
        detected: bool,
    },
}

/// Checks every target against the LIST result (decoded names, or the wire spelling, as the
/// outbox accepts both). All problems are reported at once so one edit fixes them all.
/// `chosen_sent`: the Sent folder the user chose with `folders NAME --sent`, which stands for
/// the Sent folder (the server's \Sent or well-known name otherwise) like it does in the outbox.
pub fn resolve<'a>(
    sc: &'a SentCopyOptions,
    folders: &'a [FolderInfo],
    account: &str,
    chosen_sent: Option<&'a str>,
) -> Result<Resolved, AppError> {
    let targets = targets(sc);
    let mut found: Vec<(&Target, &FolderInfo)> = Vec::new();
    let mut problems: Vec<Problem> = Vec::new();
    for t in &targets {
        let hit = match &t.name {
            Some(n) => discovery::find_named(folders, n),
            None => match (discovery::sent_folder(folders, chosen_sent), chosen_sent) {
                (None, Some(chosen)) => {
                    problems.push(Problem::ChosenGone { name: chosen });
                    continue;
                }
                (hit, _) => hit,
            },
        };
        // The detected Sent folder is changed through sent_copy.folder.
        let keys = match t.settings.is_empty() {
            true => "sent_copy.folder".to_string(),
            false => t.settings.join(" and "),
        };
        match (hit, &t.name) {
            (Some(f), _) if f.selectable => found.push((t, f)),
            (Some(f), _) => problems.push(Problem::NotSelectable {
                name: &f.name,
                keys,
                detected: t.settings.is_empty(),
            }),
            (None, Some(n)) => problems.push(Problem::Missing { name: n, keys }),
            (None, None) => problems.push(Problem::NoSent),
        }
    }
    if !problems.is_empty() {
        return Err(failure(&problems, folders, account));
    }
    // The default is always the first target, so it is found when nothing failed.
    let Some(&(first, primary)) = found.first() else {
        return Err(failure(&[Problem::NoSent], folders, account));
    };
    let how = match (&first.name, primary.role_source, chosen_sent) {
        (Some(_), _, _) => "chosen in the settings",
        (None, _, Some(_)) => "chosen with `mailroom folders --sent`",
        (None, Some("special_use"), None) => "marked \\Sent by the server",
        _ => "found by its name",
    };
    let mut detail = format!("{} ({how})", primary.name);
    let mut others: Vec<(String, FolderInfo)> = Vec::new();
    for (t, f) in &found[1..] {
        if f.wire_name != primary.wire_name {
            let keys = t.settings.join(", ");
            detail.push_str(&format!("; {keys}: {}", f.name));
            match others.iter_mut().find(|(_, o)| o.wire_name == f.wire_name) {
                // Two settings spelling one folder differently (decoded and wire name).
                Some((k, _)) => k.push_str(&format!(", {keys}")),
                None => others.push((keys, (*f).clone())),
            }
        }
    }
    Ok(Resolved {
        primary: primary.clone(),
        others,
        detail,
    })
}

/// The step's failure: one problem told in full, several listed with one combined fix.
fn failure(problems: &[Problem], folders: &[FolderInfo], account: &str) -> AppError {
    let see = format!("`mailroom folders {account}` lists the server's folders");
    let choose_sent = format!(
        "choose it with `mailroom folders {account} --sent FOLDER` (or set sent_copy.folder in config.toml); {see}"
    );
    if let [one] = problems {
        return match one {
            Problem::NoSent => AppError::needs_user(
                "no Sent folder found",
                "the server marks none with \\Sent and none has a well-known name",
                choose_sent,
            ).with_code(crate::error::Code::FolderMissing),
            Problem::ChosenGone { name } => AppError::needs_user(
                format!("the Sent folder {name:?} is gone from the server"),
                format!(
                    "it was chosen with `mailroom folders {account} --sent`; the server lists no folder of that name that holds mail"
                ),
                choose_sent,
            ).with_code(crate::error::Code::FolderMissing),
            Problem::Missing { name, keys } => AppError::needs_user(
                format!("the folder {name:?} for Sent copies does not exist"),
                format!("{keys} in config.toml names it; the server lists no folder of that name"),
                format!(
                    "set {keys} in config.toml to a folder that exists{}, or create {name:?} on the server; {see}",
                    case_twin(name, folders)
                        .map(|t| format!(" (did you mean {t:?}? folder names are case-sensitive)"))
                        .unwrap_or_else(|| sent_hint(folders))
                ),
            ).with_code(crate::error::Code::FolderMissing),
            Problem::NotSelectable {
                name,
                keys,
                detected,
            } => AppError::needs_user(
                format!("the folder {name:?} for Sent copies cannot hold messages"),
                format!(
                    "{}; the server lists it as \\Noselect (only a parent of other folders)",
                    match detected {
                        true => "the server marks it \\Sent".to_string(),
                        false => format!("{keys} in config.toml names it"),
                    }
                ),
                format!(
                    "set {keys} in config.toml to a folder that holds messages{}; {see}",
                    sent_hint(folders)
                ),
            ).with_code(crate::error::Code::FolderNoselect),
        };
    }
    let lines: Vec<String> = problems
        .iter()
        .map(|p| match p {
            Problem::NoSent => {
                "no Sent folder found (sent_copy.folder is unset, and none is marked \\Sent or well-known by name)".into()
            }
            Problem::ChosenGone { name } => {
                format!("{name:?} (chosen with `mailroom folders --sent`) does not exist")
            }
            Problem::Missing { name, keys } => format!(
                "{name:?} ({keys}) does not exist{}",
                case_twin(name, folders)
                    .map(|t| format!(" (did you mean {t:?}?)"))
                    .unwrap_or_default()
            ),
            Problem::NotSelectable {
                name,
                keys,
                detected,
            } => format!(
                "{name:?} ({}) cannot hold messages (\\Noselect)",
                match detected {
                    true => "marked \\Sent",
                    false => keys,
                }
            ),
        })
        .collect();
    let fix = format!(
        "set each setting named above in config.toml to a folder that exists{}, or create the folder on the server; {see}",
        sent_hint(folders)
    );
    AppError::needs_user(
        format!(
            "{} problems with the folders for Sent copies",
            problems.len()
        ),
        lines.join("; "),
        fix,
    )
    .with_code(crate::error::Code::FolderMissing)
}

/// A usable folder whose name differs only in case (IMAP names are case-sensitive).
fn case_twin<'a>(name: &str, folders: &'a [FolderInfo]) -> Option<&'a str> {
    folders
        .iter()
        .find(|f| f.selectable && f.name.eq_ignore_ascii_case(name))
        .map(|f| f.name.as_str())
}

/// The usable folders with role sent, as a parenthesised hint ("" when there are none).
fn sent_hint(folders: &[FolderInfo]) -> String {
    let sent: Vec<String> = folders
        .iter()
        .filter(|f| f.selectable && f.role == Some(Role::Sent))
        .map(|f| format!("{:?}", f.name))
        .collect();
    match sent.len() {
        0 => String::new(),
        _ => format!(" (with role sent: {})", sent.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CopyFolders;

    fn f(name: &str) -> FolderInfo {
        FolderInfo {
            name: name.into(),
            wire_name: crate::imap::discovery::encode_utf7(name),
            delimiter: Some("/".into()),
            attributes: Vec::new(),
            selectable: true,
            role: None,
            role_source: None,
        }
    }

    fn sent(name: &str) -> FolderInfo {
        FolderInfo {
            role: Some(Role::Sent),
            role_source: Some("special_use"),
            attributes: vec!["\\Sent".into()],
            ..f(name)
        }
    }

    fn opts(folder: Option<&str>, new: Option<&str>, reply: Option<&str>) -> SentCopyOptions {
        SentCopyOptions {
            folder: folder.map(str::to_string),
            folders: CopyFolders {
                new: new.map(str::to_string),
                reply: reply.map(str::to_string),
            },
            ..Default::default()
        }
    }

    fn t(name: Option<&str>, settings: &[&'static str]) -> Target {
        Target {
            name: name.map(str::to_string),
            settings: settings.to_vec(),
        }
    }

    #[test]
    fn targets_are_the_default_then_each_override_deduplicated() {
        assert_eq!(targets(&opts(None, None, None)), [t(None, &[])]);
        assert_eq!(
            targets(&opts(None, None, Some("Replies"))),
            [
                t(None, &[]),
                t(Some("Replies"), &["sent_copy.folders.reply"])
            ]
        );
        assert_eq!(
            targets(&opts(Some("Out"), Some("Out"), Some("Re"))),
            [
                t(Some("Out"), &["sent_copy.folder", "sent_copy.folders.new"]),
                t(Some("Re"), &["sent_copy.folders.reply"])
            ]
        );
        assert_eq!(
            targets(&opts(None, Some("Both"), Some("Both"))),
            [
                t(None, &[]),
                t(
                    Some("Both"),
                    &["sent_copy.folders.new", "sent_copy.folders.reply"]
                )
            ]
        );
    }

    #[test]
    fn all_present_passes_and_names_the_overrides() {
        let list = [f("INBOX"), sent("Sent"), f("Sent/Replies"), f("Envoyés")];
        let r = resolve(
            &opts(None, Some("Envoyés"), Some("Sent/Replies")),
            &list,
            "work",
            None,
        )
        .unwrap();
        assert_eq!(r.primary.name, "Sent");
        assert_eq!(
            r.detail,
            "Sent (marked \\Sent by the server); sent_copy.folders.new: Envoyés; sent_copy.folders.reply: Sent/Replies"
        );
        // The wire spelling (modified UTF-7) is accepted too, as the outbox accepts it.
        assert!(resolve(&opts(None, None, Some("Envoy&AOk-s")), &list, "work", None).is_ok());
        // An override naming the default folder adds nothing to the text.
        let r = resolve(&opts(Some("Sent"), None, Some("Sent")), &list, "work", None).unwrap();
        assert_eq!(r.detail, "Sent (chosen in the settings)");
    }

    #[test]
    fn a_missing_override_names_folder_setting_and_fix() {
        let list = [f("INBOX"), sent("Sent"), f("Replies")];
        let e = resolve(&opts(None, None, Some("Replys")), &list, "work", None).unwrap_err();
        assert_eq!(
            e.summary,
            "the folder \"Replys\" for Sent copies does not exist"
        );
        assert!(e.detail.contains("sent_copy.folders.reply"), "{}", e.detail);
        assert_eq!(
            e.fix,
            "set sent_copy.folders.reply in config.toml to a folder that exists (with role sent: \"Sent\"), or create \"Replys\" on the server; `mailroom folders work` lists the server's folders"
        );
        // A name that differs only in case is pointed out.
        let e = resolve(&opts(None, Some("replies"), None), &list, "work", None).unwrap_err();
        assert!(e.fix.contains("did you mean \"Replies\"?"), "{}", e.fix);
        assert!(e.fix.contains("sent_copy.folders.new"), "{}", e.fix);
    }

    #[test]
    fn several_problems_are_reported_together() {
        let list = [f("INBOX"), sent("Sent")];
        let e = resolve(
            &opts(Some("Out"), Some("Out"), Some("Re")),
            &list,
            "w",
            None,
        )
        .unwrap_err();
        assert_eq!(e.summary, "2 problems with the folders for Sent copies");
        assert_eq!(
            e.detail,
            "\"Out\" (sent_copy.folder and sent_copy.folders.new) does not exist; \"Re\" (sent_copy.folders.reply) does not exist"
        );
        assert_eq!(
            e.fix,
            "set each setting named above in config.toml to a folder that exists (with role sent: \"Sent\"), or create the folder on the server; `mailroom folders w` lists the server's folders"
        );
        // Without a Sent folder, the unset sent_copy.folder is the setting to change.
        let e = resolve(
            &opts(None, None, Some("re")),
            &[f("INBOX"), f("Re")],
            "w",
            None,
        )
        .unwrap_err();
        assert_eq!(
            e.detail,
            "no Sent folder found (sent_copy.folder is unset, and none is marked \\Sent or well-known by name); \"re\" (sent_copy.folders.reply) does not exist (did you mean \"Re\"?)"
        );
        assert_eq!(
            e.fix,
            "set each setting named above in config.toml to a folder that exists, or create the folder on the server; `mailroom folders w` lists the server's folders"
        );
    }

    #[test]
    fn the_sent_folder_chosen_with_folders_sent_stands_for_the_detected_one() {
        let list = [f("INBOX"), sent("Sent"), f("Outgoing"), f("Replies")];
        let r = resolve(&opts(None, None, None), &list, "w", Some("Outgoing")).unwrap();
        assert_eq!(r.primary.name, "Outgoing");
        assert_eq!(r.detail, "Outgoing (chosen with `mailroom folders --sent`)");
        // A setting still beats the choice, for its own messages or for all.
        let r = resolve(
            &opts(None, None, Some("Replies")),
            &list,
            "w",
            Some("Outgoing"),
        )
        .unwrap();
        assert_eq!(r.primary.name, "Outgoing");
        assert_eq!(r.others[0].1.name, "Replies");
        let r = resolve(
            &opts(Some("Sent"), None, None),
            &list,
            "w",
            Some("Outgoing"),
        )
        .unwrap();
        assert_eq!(r.primary.name, "Sent");
        // Gone from the server (or now a \Noselect parent): said so, with how to choose again.
        for list in [
            vec![f("INBOX"), sent("Sent")],
            vec![
                f("INBOX"),
                FolderInfo {
                    selectable: false,
                    ..f("Outgoing")
                },
            ],
        ] {
            let e = resolve(&opts(None, None, None), &list, "w", Some("Outgoing")).unwrap_err();
            assert_eq!(
                e.summary,
                "the Sent folder \"Outgoing\" is gone from the server"
            );
            assert!(
                e.fix
                    .starts_with("choose it with `mailroom folders w --sent FOLDER`"),
                "{}",
                e.fix
            );
        }
    }

    #[test]
    fn no_detected_sent_and_noselect_folders_fail() {
        let e = resolve(&opts(None, None, None), &[f("INBOX")], "w", None).unwrap_err();
        assert_eq!(e.summary, "no Sent folder found");
        assert_eq!(
            e.fix,
            "choose it with `mailroom folders w --sent FOLDER` (or set sent_copy.folder in config.toml); `mailroom folders w` lists the server's folders"
        );
        let parent = FolderInfo {
            selectable: false,
            attributes: vec!["\\Noselect".into()],
            ..f("Archive")
        };
        let list = [f("INBOX"), sent("Sent"), parent];
        let e = resolve(&opts(None, None, Some("Archive")), &list, "w", None).unwrap_err();
        assert_eq!(
            e.summary,
            "the folder \"Archive\" for Sent copies cannot hold messages"
        );
        assert!(e.fix.contains("sent_copy.folders.reply"), "{}", e.fix);
        assert!(e.fix.contains("\"Sent\""), "{}", e.fix);
        // A \Sent-marked parent folder: no setting chose it, sent_copy.folder is the way out.
        let list = [
            f("INBOX"),
            FolderInfo {
                selectable: false,
                ..sent("Sent")
            },
        ];
        let e = resolve(&opts(None, None, None), &list, "w", None).unwrap_err();
        assert!(
            e.detail.starts_with("the server marks it \\Sent"),
            "{}",
            e.detail
        );
        assert!(
            e.fix.starts_with("set sent_copy.folder in config.toml"),
            "{}",
            e.fix
        );
    }
}
