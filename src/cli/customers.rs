//! `mailroom customers`: the customer book.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use serde_json::json;

use super::Ctx;
use super::output::{emit, note, table};
use crate::error::Result;
use crate::mail::sanitize::clean_line;
use crate::ops::customers::{
    self, CustomerEdit, CustomerInput, CustomerRow, CustomerView, ImportReport,
};

#[derive(Debug, Subcommand)]
pub enum CustomersCmd {
    Add {
        #[arg(long)]
        name: String,
        #[arg(long)]
        company: Option<String>,
        #[arg(long)]
        email: Vec<String>,
        #[arg(long)]
        domain: Vec<String>,
        #[arg(long)]
        notes: Option<String>,
    },
    List,
    /// One customer with the communication timeline.
    Show {
        id: i64,
        /// Only the newest N messages of the timeline (a keyset page; `next` in the output
        /// is the cursor of the following page).
        #[arg(long, value_name = "N")]
        limit: Option<i64>,
        /// The page after this cursor (the previous page's `next`); needs --limit.
        #[arg(long, value_name = "CURSOR", requires = "limit")]
        after: Option<String>,
    },
    Edit {
        id: i64,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        company: Option<String>,
        /// Add an address.
        #[arg(long)]
        email: Vec<String>,
        #[arg(long)]
        remove_email: Vec<String>,
        #[arg(long)]
        domain: Vec<String>,
        #[arg(long)]
        remove_domain: Vec<String>,
        #[arg(long)]
        notes: Option<String>,
    },
    Remove {
        id: i64,
    },
    /// Import a CSV (name, company, emails, domains, notes; several values separated by ';').
    /// Columns may be separated by ',', ';' or tabs (read from the header line); in a ';' file,
    /// quote a cell holding several values: "a@x.org;b@y.org".
    Import {
        file: PathBuf,
    },
    /// Export as CSV to FILE or stdout.
    Export {
        file: Option<PathBuf>,
    },
}

fn row_text(c: &CustomerRow) -> Vec<String> {
    vec![
        c.id.to_string(),
        clean_line(&c.name),
        clean_line(c.company.as_deref().unwrap_or("")),
        c.emails.join(" "),
        c.domains.join(" "),
    ]
}

fn describe(c: &CustomerRow) -> String {
    let mut s = format!("customer {}: {}", c.id, clean_line(&c.name));
    if let Some(co) = &c.company {
        s.push_str(&format!(" ({})", clean_line(co)));
    }
    s.push('\n');
    if !c.emails.is_empty() {
        s.push_str(&format!("  emails:  {}\n", c.emails.join(", ")));
    }
    if !c.domains.is_empty() {
        s.push_str(&format!("  domains: {}\n", c.domains.join(", ")));
    }
    if let Some(n) = &c.notes {
        s.push_str(&format!("  notes:   {}\n", clean_line(n)));
    }
    s
}

pub fn run(ctx: &Ctx, cmd: CustomersCmd) -> Result<i32> {
    match cmd {
        CustomersCmd::Add {
            name,
            company,
            email,
            domain,
            notes,
        } => {
            let ch = customers::add(
                ctx,
                CustomerInput {
                    name,
                    company,
                    notes,
                    emails: email,
                    domains: domain,
                },
            )?;
            emit(ctx.json, &ch, || {
                format!(
                    "{}  ({} cached message(s) matched)",
                    describe(&ch.change.customer).trim_end().replacen(
                        "customer",
                        "added customer",
                        1
                    ),
                    ch.matched
                )
            });
        }
        CustomersCmd::List => {
            let all = customers::list(ctx)?;
            emit(ctx.json, &json!({"customers": all}), || {
                if all.is_empty() {
                    "no customers yet — add one with `mailroom customers add --name N --email E` or import a CSV".into()
                } else {
                    table(
                        &["ID", "NAME", "COMPANY", "EMAILS", "DOMAINS"],
                        &all.iter().map(row_text).collect::<Vec<_>>(),
                    )
                }
            });
        }
        CustomersCmd::Show { id, limit, after } => {
            let v = match limit {
                Some(n) => {
                    let after = after.as_deref().map(customers::parse_cursor).transpose()?;
                    customers::show_page(ctx, id, n, after.as_ref())?
                }
                None => customers::show(ctx, id)?,
            };
            emit(ctx.json, &json!({"customer": v}), || show_text(&v));
        }
        CustomersCmd::Edit {
            id,
            name,
            company,
            email,
            remove_email,
            domain,
            remove_domain,
            notes,
        } => {
            let edit = CustomerEdit {
                name,
                company,
                notes,
                add_emails: email,
                remove_emails: remove_email,
                add_domains: domain,
                remove_domains: remove_domain,
            };
            let ch = customers::edit(ctx, id, edit)?;
            emit(ctx.json, &ch, || {
                format!(
                    "{}  ({} cached message(s) matched)",
                    describe(&ch.change.customer).trim_end(),
                    ch.matched
                )
            });
        }
        CustomersCmd::Remove { id } => {
            let r = customers::remove(ctx, id)?;
            emit(ctx.json, &r, || {
                format!(
                    "removed customer {id} {}; their mail is unmatched again",
                    clean_line(&r.removed.name)
                )
            });
        }
        CustomersCmd::Import { file } => import(ctx, &file)?,
        CustomersCmd::Export { file } => export(ctx, file.as_deref())?,
    }
    Ok(0)
}

/// A customer and their timeline, thread by thread.
fn show_text(v: &CustomerView) -> String {
    let mut s = describe(&v.customer);
    if v.timeline.is_empty() {
        s.push_str("\nno messages on the timeline yet\n");
    }
    for t in &v.timeline {
        s.push_str(&format!(
            "\nthread {}: {}\n",
            t.thread_id,
            clean_line(t.subject.as_deref().unwrap_or("(no subject)"))
        ));
        for m in &t.messages {
            let arrow = if m.direction == "out" { "→" } else { "←" };
            let who = if m.direction == "out" {
                m.to.join(", ")
            } else {
                m.from.clone().unwrap_or_default()
            };
            s.push_str(&format!(
                "  {arrow} {:<6} {}  {}  {}  [{}: {}]\n",
                m.id,
                m.date.as_deref().unwrap_or("-"),
                clean_line(&who),
                clean_line(m.subject.as_deref().unwrap_or("")),
                m.why.rule,
                clean_line(m.why.detail.as_deref().unwrap_or("")),
            ));
        }
    }
    if let Some(Some(next)) = &v.next {
        s.push_str(&format!("\nmore: --after {next}\n"));
    }
    s
}

fn import(ctx: &Ctx, file: &Path) -> Result<()> {
    let r: ImportReport = customers::import(ctx, file)?;
    if !ctx.json {
        for e in &r.errors {
            note(format!("line {}: {}", e.line, clean_line(&e.reason)));
        }
        if !r.ignored_columns.is_empty() {
            note(format!("ignored columns: {}", r.ignored_columns.join(", ")));
        }
    }
    emit(ctx.json, &r, || {
        format!(
            "imported {}, updated {}, unchanged {}, {} bad row(s) ({}, columns separated by {})",
            r.imported,
            r.updated,
            r.unchanged,
            r.errors.len(),
            r.encoding,
            r.delimiter_label()
        )
    });
    Ok(())
}

fn export(ctx: &Ctx, file: Option<&Path>) -> Result<()> {
    let x = customers::export(ctx, file)?;
    let count = x.count;
    match &x.file {
        Some(path) => {
            emit(ctx.json, &json!({"exported": count, "file": path}), || {
                format!("exported {count} customer(s) to {}", path.display())
            });
        }
        None if ctx.json => {
            emit(
                true,
                &json!({"exported": count, "csv": String::from_utf8_lossy(&x.csv)}),
                String::new,
            );
        }
        None => {
            use std::io::Write;
            std::io::stdout().write_all(&x.csv)?;
        }
    }
    Ok(())
}
