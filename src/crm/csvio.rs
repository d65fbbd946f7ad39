//! Customer CSV import and export. A header row names the columns (case-insensitive): `name`
//! (required), `company`, `emails`, `domains`, `notes`; several values in one cell are separated
//! by `;`. Files come from spreadsheets, so the encoding is sniffed: a BOM decides (UTF-8 or
//! UTF-16), else valid UTF-8, else Windows-1252 (what Excel writes on Western systems).
//!
//! The delimiter is sniffed from the header too: Excel and LibreOffice write `;` in locales whose
//! decimal separator is a comma (German, French, Polish…), and "Unicode text" exports use tabs.
//! Whichever of `,` `;` tab yields a `name` column wins. In a `;` file a cell with several values
//! must be quoted (`"a@x.org;b@y.org"`, as spreadsheets do); unquoted, its values become extra
//! fields, and a row with more fields than the header is refused rather than shifted.
//!
//! Good rows are imported, bad rows are reported by line number; importing the same file again
//! changes nothing. A row updates the existing customer that owns any of its addresses (or, for
//! rows without addresses, the one with the same name and company). Addresses and domains are
//! only ever added by an import, never removed, so pairings made in triage survive a re-import.

use std::collections::HashMap;

use serde::Serialize;

use super::book::{parse_domains, parse_emails};
use super::matching::rematch_all;
use crate::config::Config;
use crate::error::{AppError, Result};
use crate::store::{CustomerRow, Store};

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RowError {
    pub line: u64,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct ImportReport {
    pub imported: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub errors: Vec<RowError>,
    /// Which encoding the file was read as.
    pub encoding: String,
    /// Which delimiter the header was read with: `,`, `;` or a tab.
    pub delimiter: String,
    /// Header columns that are not ours (ignored).
    pub ignored_columns: Vec<String>,
}

impl ImportReport {
    /// The delimiter as a person reads it: "`,`", "`;`" or "tab".
    pub fn delimiter_label(&self) -> &'static str {
        delimiter_label(self.delimiter.bytes().next().unwrap_or(b','))
    }
}

/// Decodes spreadsheet bytes; returns the text and the encoding's name.
pub fn decode(bytes: &[u8]) -> (String, &'static str) {
    if let Some((enc, bom_len)) = encoding_rs::Encoding::for_bom(bytes) {
        let (text, _) = enc.decode_without_bom_handling(&bytes[bom_len..]);
        return (text.into_owned(), enc.name());
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => (s.to_string(), "UTF-8"),
        Err(_) => {
            let (text, _, _) = encoding_rs::WINDOWS_1252.decode(bytes);
            (text.into_owned(), "windows-1252")
        }
    }
}

/// The delimiters a spreadsheet writes, `,` first: it wins ties.
const DELIMITERS: [u8; 3] = [b',', b';', b'\t'];

/// The header line's delimiter: one that yields a `name` column, the one with the most columns
/// if several do (a header of just `name` followed by a tab), `,` if none does (the caller then
/// reports the missing column).
fn sniff_delimiter(text: &str) -> u8 {
    let mut best: Option<(u8, usize)> = None;
    for d in DELIMITERS {
        let mut rdr = csv::ReaderBuilder::new()
            .delimiter(d)
            .has_headers(false)
            .flexible(true)
            .from_reader(text.as_bytes());
        let Some(Ok(header)) = rdr.records().next() else {
            continue;
        };
        let named = header.iter().any(|h| h.trim().eq_ignore_ascii_case("name"));
        if named && best.is_none_or(|(_, n)| header.len() > n) {
            best = Some((d, header.len()));
        }
    }
    best.map_or(b',', |(d, _)| d)
}

/// Excel's optional first line `sep=;` names the delimiter (Excel writes and honours it; it is
/// not the header). Returns the delimiter and the line's length, or why it cannot be used.
fn sep_line(text: &str) -> Option<std::result::Result<(u8, usize), String>> {
    let first = text.split_inclusive('\n').next()?;
    let value = first
        .get(..4)
        .filter(|p| p.eq_ignore_ascii_case("sep="))
        .map(|_| first[4..].trim_end_matches(['\r', '\n']))?;
    Some(match value.as_bytes() {
        [d] if DELIMITERS.contains(d) => Ok((*d, first.len())),
        _ => Err(format!(
            "the first line {:?} names a delimiter mailroom does not read",
            first.trim_end()
        )),
    })
}

fn delimiter_label(d: u8) -> &'static str {
    match d {
        b';' => "`;`",
        b'\t' => "tab",
        _ => "`,`",
    }
}

#[derive(Default)]
struct Columns {
    name: Option<usize>,
    company: Option<usize>,
    emails: Option<usize>,
    domains: Option<usize>,
    notes: Option<usize>,
}

/// A customer as the file describes it, validated.
struct Row {
    name: String,
    company: Option<Option<String>>,
    notes: Option<Option<String>>,
    emails: Vec<String>,
    domains: Vec<String>,
}

fn cell(rec: &csv::StringRecord, col: Option<usize>) -> Option<Option<String>> {
    col.map(|i| {
        rec.get(i)
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    })
}

fn parse_row(
    rec: &csv::StringRecord,
    cols: &Columns,
    width: usize,
    delimiter: u8,
) -> Result<Option<Row>, String> {
    if rec.iter().all(|f| f.trim().is_empty()) {
        return Ok(None);
    }
    if rec.len() > width {
        let hint = if delimiter == b';' {
            "a cell with several values must be quoted in a `;`-separated file: \"a@x.org;b@y.org\""
        } else {
            "quote a cell that contains the delimiter"
        };
        return Err(format!(
            "{} fields, but the header has {width} (columns separated by {}); {hint}",
            rec.len(),
            delimiter_label(delimiter)
        ));
    }
    let name = cell(rec, cols.name).flatten().ok_or("the name is empty")?;
    let emails = parse_emails(
        &cell(rec, cols.emails)
            .flatten()
            .into_iter()
            .collect::<Vec<_>>(),
    )
    .map_err(|e| e.summary)?;
    let domains = parse_domains(
        &cell(rec, cols.domains)
            .flatten()
            .into_iter()
            .collect::<Vec<_>>(),
    )
    .map_err(|e| e.summary)?;
    Ok(Some(Row {
        name,
        company: cell(rec, cols.company),
        notes: cell(rec, cols.notes),
        emails,
        domains,
    }))
}

/// Line numbers for the report, counted from record byte offsets. The csv crate's own
/// `Position::line` is one short for every record of a CRLF file (what Excel writes) and for the
/// first record after a blank line (BurntSushi/rust-csv#395, #208): the offset it gives points
/// at the rest of the previous line break. A record never starts with a line break, so skipping
/// them lands on its first byte. Offsets only grow, so counting resumes where it stopped.
struct Lines<'a> {
    text: &'a [u8],
    at: usize,
    line: u64,
    first: u64,
}

impl<'a> Lines<'a> {
    /// `first_line`: the file's line number of the text's first line.
    fn new(text: &'a str, first_line: u64) -> Self {
        Lines {
            text: text.as_bytes(),
            at: 0,
            line: first_line,
            first: first_line,
        }
    }

    fn of(&mut self, pos: Option<&csv::Position>) -> u64 {
        let Some(byte) = pos.and_then(|p| usize::try_from(p.byte()).ok()) else {
            return 0;
        };
        let mut start = byte.min(self.text.len());
        while matches!(self.text.get(start), Some(b'\r' | b'\n')) {
            start += 1;
        }
        if start < self.at {
            // Never happens for a forward reader; recount rather than report a wrong line.
            (self.at, self.line) = (0, self.first);
        }
        self.line += self.text[self.at..start]
            .iter()
            .filter(|b| **b == b'\n')
            .count() as u64;
        self.at = start;
        self.line
    }
}

fn key(name: &str, company: Option<&str>) -> (String, String) {
    (name.to_lowercase(), company.unwrap_or("").to_lowercase())
}

const HEADER_FIX: &str = "the first line names the columns, separated by `,`, `;` or tabs: name,company,emails,domains,notes";

pub fn import(store: &Store, config: &Config, bytes: &[u8]) -> Result<ImportReport> {
    let (text, encoding) = decode(bytes);
    let (delimiter, body, first_line) = layout(&text)?;
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .has_headers(true)
        .from_reader(body.as_bytes());
    let headers = rdr
        .headers()
        .map_err(|e| AppError::usage(format!("cannot read the CSV header: {e}"), HEADER_FIX))?
        .clone();
    let mut report = ImportReport {
        encoding: encoding.to_string(),
        delimiter: char::from(delimiter).to_string(),
        ..Default::default()
    };
    let cols = columns(&headers, &mut report)?;
    let mut merge = Merge::new(store.customers()?);
    let mut lines = Lines::new(body, first_line);
    store.atomically(|s| {
        for rec in rdr.records() {
            let (line, rec) = match rec {
                Ok(r) => (lines.of(r.position()), r),
                Err(e) => {
                    let line = lines.of(e.position());
                    report.errors.push(RowError {
                        line,
                        reason: e.to_string(),
                    });
                    continue;
                }
            };
            match parse_row(&rec, &cols, headers.len(), delimiter) {
                Ok(Some(row)) => merge.row(s, line, row, &mut report)?,
                Ok(None) => {}
                Err(reason) => report.errors.push(RowError { line, reason }),
            }
        }
        Ok(())
    })?;
    if report.imported + report.updated > 0 {
        rematch_all(store, config)?;
    }
    Ok(report)
}

/// The delimiter, the text after an Excel `sep=` line, and the file's line number of that
/// text's first line.
fn layout(text: &str) -> Result<(u8, &str, u64)> {
    Ok(match sep_line(text) {
        Some(Ok((d, len))) => (d, &text[len..], 2),
        Some(Err(e)) => {
            return Err(AppError::usage(
                e,
                "use `sep=,`, `sep=;` or a tab, or remove the line",
            ));
        }
        None => (sniff_delimiter(text), text, 1),
    })
}

/// Which column holds what; columns that are not ours go to the report.
fn columns(headers: &csv::StringRecord, report: &mut ImportReport) -> Result<Columns> {
    let mut cols = Columns::default();
    for (i, h) in headers.iter().enumerate() {
        match h.trim().to_lowercase().as_str() {
            "name" => cols.name = Some(i),
            "company" => cols.company = Some(i),
            "emails" | "email" => cols.emails = Some(i),
            "domains" | "domain" => cols.domains = Some(i),
            "notes" | "note" => cols.notes = Some(i),
            other => report.ignored_columns.push(other.to_string()),
        }
    }
    if cols.name.is_none() {
        return Err(AppError::usage("the CSV has no `name` column", HEADER_FIX));
    }
    Ok(cols)
}

/// The book as the import goes through the file: who is there, and which line of the file
/// claimed an address or a customer first.
struct Merge {
    by_key: HashMap<(String, String), i64>,
    current: HashMap<i64, CustomerRow>,
    claimed_addr: HashMap<String, u64>,
    claimed_customer: HashMap<i64, u64>,
}

impl Merge {
    fn new(existing: Vec<CustomerRow>) -> Merge {
        let mut by_key: HashMap<(String, String), i64> = HashMap::new();
        for c in &existing {
            by_key
                .entry(key(&c.name, c.company.as_deref()))
                .or_insert(c.id);
        }
        Merge {
            by_key,
            current: existing.into_iter().map(|c| (c.id, c)).collect(),
            claimed_addr: HashMap::new(),
            claimed_customer: HashMap::new(),
        }
    }

    /// Takes one good row of the file: a new customer, an update of the one it describes, or
    /// a reason it is refused.
    fn row(&mut self, s: &Store, line: u64, row: Row, report: &mut ImportReport) -> Result<()> {
        let target = match self.target(s, &row)? {
            Ok(t) => t,
            Err(reason) => {
                report.errors.push(RowError { line, reason });
                return Ok(());
            }
        };
        for a in &row.emails {
            self.claimed_addr.insert(a.clone(), line);
        }
        match target.and_then(|id| self.current.get(&id).cloned()) {
            None => {
                let company = row.company.clone().flatten();
                let id = s.customer_insert(
                    &row.name,
                    company.as_deref(),
                    row.notes.clone().flatten().as_deref(),
                )?;
                for a in &row.emails {
                    s.customer_add_email(id, a)?;
                }
                for d in &row.domains {
                    s.customer_add_domain(id, d)?;
                }
                self.by_key.insert(key(&row.name, company.as_deref()), id);
                self.claimed_customer.insert(id, line);
                report.imported += 1;
            }
            Some(c) => {
                self.claimed_customer.insert(c.id, line);
                if update(s, &c, &row)? {
                    if let Some(fresh) = s.customer(c.id)? {
                        self.current.insert(c.id, fresh);
                    }
                    report.updated += 1;
                } else {
                    report.unchanged += 1;
                }
            }
        }
        Ok(())
    }

    /// The existing customer a row describes (by any of its addresses, else — without
    /// addresses — by name and company), or why the row cannot be taken.
    fn target(&self, s: &Store, row: &Row) -> Result<std::result::Result<Option<i64>, String>> {
        if let Some((a, l)) = row
            .emails
            .iter()
            .find_map(|a| self.claimed_addr.get(a).map(|l| (a, *l)))
        {
            return Ok(Err(format!("{a} is already on line {l}")));
        }
        let mut owners: Vec<i64> = Vec::new();
        for a in &row.emails {
            if let Some(o) = s.email_owner(a)?
                && !owners.contains(&o)
            {
                owners.push(o);
            }
        }
        if owners.len() > 1 {
            let list: Vec<String> = owners.iter().map(|o| o.to_string()).collect();
            return Ok(Err(format!(
                "its addresses belong to different customers ({}); split the row or merge them first",
                list.join(", ")
            )));
        }
        let target = owners.first().copied().or_else(|| {
            if row.emails.is_empty() {
                let company = row.company.clone().flatten();
                self.by_key
                    .get(&key(&row.name, company.as_deref()))
                    .copied()
            } else {
                None
            }
        });
        if let Some(id) = target
            && let Some(l) = self.claimed_customer.get(&id)
        {
            return Ok(Err(format!("describes the same customer as line {l}")));
        }
        Ok(Ok(target))
    }
}

/// Brings customer `c` up to what the row says (addresses and domains are only added); false
/// when nothing differs.
fn update(s: &Store, c: &CustomerRow, row: &Row) -> Result<bool> {
    let name = (row.name != c.name).then_some(row.name.as_str());
    let company = row
        .company
        .as_ref()
        .filter(|v| **v != c.company)
        .map(|v| v.as_deref());
    let notes = row
        .notes
        .as_ref()
        .filter(|v| **v != c.notes)
        .map(|v| v.as_deref());
    let new_emails: Vec<&String> = row
        .emails
        .iter()
        .filter(|a| !c.emails.contains(a))
        .collect();
    let new_domains: Vec<&String> = row
        .domains
        .iter()
        .filter(|d| !c.domains.contains(d))
        .collect();
    if name.is_none()
        && company.is_none()
        && notes.is_none()
        && new_emails.is_empty()
        && new_domains.is_empty()
    {
        return Ok(false);
    }
    s.customer_update(c.id, name, company, notes)?;
    for a in new_emails {
        s.customer_add_email(c.id, a)?;
    }
    for d in new_domains {
        s.customer_add_domain(c.id, d)?;
    }
    Ok(true)
}

/// The whole book as CSV (UTF-8, header row), in the shape `import` reads back unchanged.
pub fn export(store: &Store) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let io = |e: csv::Error| {
        AppError::local(
            "cannot write the CSV",
            e.to_string(),
            "report this as a bug",
        )
    };
    w.write_record(["name", "company", "emails", "domains", "notes"])
        .map_err(io)?;
    for c in store.customers()? {
        w.write_record([
            c.name.as_str(),
            c.company.as_deref().unwrap_or(""),
            &c.emails.join(";"),
            &c.domains.join(";"),
            c.notes.as_deref().unwrap_or(""),
        ])
        .map_err(io)?;
    }
    w.into_inner().map_err(|e| {
        AppError::local(
            "cannot write the CSV",
            e.to_string(),
            "report this as a bug",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_rows_in_bad_rows_named_and_reimport_is_idempotent() {
        crate::store::testing::each(|s| {
            let cfg = Config::default();
            let csv = "Name,EMAILS,Company,Domains,Notes,Extra\n\
                   Anna Schmidt,anna@example.org;Anna.S@Example.org,ACME,acme.test,\"likes, commas\",x\n\
                   ,nobody@example.org,,,,\n\
                   Bad Mail,not-an-address,,,,\n\
                   Dup,ANNA@example.org,,,,\n\
                   Too,many@example.org,,,,,,,\n\
                   \n\
                   No Mail,,Solo GmbH,,,\n";
            let r = import(s, &cfg, csv.as_bytes()).unwrap();
            assert_eq!((r.imported, r.updated, r.unchanged), (2, 0, 0), "{r:?}");
            let lines: Vec<u64> = r.errors.iter().map(|e| e.line).collect();
            assert_eq!(lines, [3, 4, 5, 6], "{r:?}");
            assert!(r.errors[2].reason.contains("line 2"), "{r:?}");
            assert_eq!(r.ignored_columns, ["extra"]);
            let r2 = import(s, &cfg, csv.as_bytes()).unwrap();
            assert_eq!((r2.imported, r2.updated, r2.unchanged), (0, 0, 2), "{r2:?}");
            // An export reads back unchanged.
            let out = export(s).unwrap();
            let r3 = import(s, &cfg, &out).unwrap();
            assert_eq!(
                (r3.imported, r3.updated, r3.unchanged, r3.errors.len()),
                (0, 0, 2, 0),
                "{r3:?}"
            );
            // Matching by any address updates instead of duplicating.
            let r4 = import(
                s,
                &cfg,
                b"name,emails,company\nAnna S.,anna.s@example.org;new@example.org,ACME\n",
            )
            .unwrap();
            assert_eq!((r4.imported, r4.updated), (0, 1), "{r4:?}");
            let anna = s
                .customers()
                .unwrap()
                .into_iter()
                .find(|c| c.name == "Anna S.")
                .unwrap();
            assert_eq!(
                anna.emails,
                ["anna.s@example.org", "anna@example.org", "new@example.org"]
            );
            assert_eq!(
                anna.notes.as_deref(),
                Some("likes, commas"),
                "a missing column keeps the value"
            );
        });
    }

    #[test]
    fn reads_bom_utf8_windows_1252_and_utf16() {
        crate::store::testing::each(|s| {
            let cfg = Config::default();
            let mut bom = b"\xEF\xBB\xBFname,emails\n".to_vec();
            bom.extend_from_slice("Jürgen Groß,j@müller.de\n".as_bytes());
            let r = import(s, &cfg, &bom).unwrap();
            assert_eq!((r.imported, r.encoding.as_str()), (1, "UTF-8"), "{r:?}");
            let cp1252 = b"name,emails\nFran\xE7ois L\xE9ger,f@example.fr\n";
            let r = import(s, &cfg, cp1252).unwrap();
            assert_eq!(
                (r.imported, r.encoding.as_str()),
                (1, "windows-1252"),
                "{r:?}"
            );
            let mut utf16 = vec![0xFF, 0xFE];
            for u in "name\nZoë\n".encode_utf16() {
                utf16.extend_from_slice(&u.to_le_bytes());
            }
            let r = import(s, &cfg, &utf16).unwrap();
            assert_eq!(r.imported, 1, "{r:?}");
            let names: Vec<String> = s.customers().unwrap().into_iter().map(|c| c.name).collect();
            assert!(names.contains(&"Jürgen Groß".to_string()), "{names:?}");
            assert!(names.contains(&"François Léger".to_string()), "{names:?}");
            assert!(names.contains(&"Zoë".to_string()), "{names:?}");
            let j = s
                .customers()
                .unwrap()
                .into_iter()
                .find(|c| c.name.starts_with('J'))
                .unwrap();
            assert_eq!(j.emails, ["j@xn--mller-kva.de"]);
            assert!(import(s, &cfg, b"company,emails\nx,y@z.org\n").is_err());
        });
    }

    /// (name, company, emails, domains) of every customer.
    type Book = Vec<(String, Option<String>, Vec<String>, Vec<String>)>;

    fn customers(s: &Store) -> Book {
        s.customers()
            .unwrap()
            .into_iter()
            .map(|c| (c.name, c.company, c.emails, c.domains))
            .collect()
    }

    #[test]
    fn sniffs_the_delimiter_from_the_header() {
        assert_eq!(sniff_delimiter("name,emails\na;b,c\n"), b',');
        assert_eq!(sniff_delimiter("Name;E-Mail;Notes\na,b;c;d\n"), b';');
        assert_eq!(sniff_delimiter("\"NAME\";\"emails\"\n"), b';');
        assert_eq!(sniff_delimiter("company\tname\n"), b'\t');
        // `name` is a column whichever delimiter splits: `,` wins…
        assert_eq!(sniff_delimiter("name\nAnna;x\n"), b',');
        // …unless another one also finds more columns (trailing tab, an empty column).
        assert_eq!(sniff_delimiter("name\t\n"), b'\t');
        // The header decides even when rows hold the other delimiters.
        assert_eq!(
            sniff_delimiter("name,notes\n\"a;b;c;d\",\"e\tf\tg\"\n"),
            b','
        );
        assert_eq!(sniff_delimiter("emails;company\n"), b',', "no name column");
    }

    #[test]
    fn excel_sep_line_names_the_delimiter_and_lines_still_count_from_the_file() {
        let cfg = Config::default();
        // The header alone would sniff as `,` (`name,x` has a name column); sep= decides.
        let s = Store::open_in_memory().unwrap();
        let csv = "sep=;\r\nname,x;emails\r\nAnna, Ltd;anna@acme.test\r\nBad;not-an-address\r\n";
        let r = import(&s, &cfg, csv.as_bytes()).unwrap_err();
        assert!(r.to_string().contains("no `name` column"), "{r}");
        let csv = "sep=;\r\nname;emails\r\nAnna, Ltd;anna@acme.test\r\nBad;not-an-address\r\n";
        let r = import(&s, &cfg, csv.as_bytes()).unwrap();
        assert_eq!((r.imported, r.delimiter.as_str()), (1, ";"), "{r:?}");
        let lines: Vec<u64> = r.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [4], "{r:?}");
        assert_eq!(customers(&s)[0].0, "Anna, Ltd");
        // Upper case, a tab, and a BOM before it.
        let s = Store::open_in_memory().unwrap();
        let r = import(
            &s,
            &cfg,
            "\u{feff}SEP=\t\nname\temails\nBen\tben@example.org\n".as_bytes(),
        )
        .unwrap();
        assert_eq!((r.imported, r.delimiter.as_str()), (1, "\t"), "{r:?}");
        // A delimiter we do not read is an error that says what to do, not a silent misread.
        let e = import(&s, &cfg, b"sep=|\nname|emails\n").unwrap_err();
        assert!(e.to_string().contains("sep=|"), "{e}");
        // `sep` as a real column name is still a header.
        let r = import(&s, &cfg, b"name,sep\nCara,x\n").unwrap();
        assert_eq!(
            (r.imported, r.ignored_columns.clone()),
            (1, vec!["sep".to_string()]),
            "{r:?}"
        );
    }

    #[test]
    fn comma_semicolon_and_tab_files_import_alike() {
        let cfg = Config::default();
        let files = [
            (
                ",",
                "name,company,emails,domains\nAnna,\"ACME, Inc\",anna@acme.test;a2@acme.test,acme.test\nBen,,ben@example.org,\n",
            ),
            (
                ";",
                "name;company;emails;domains\nAnna;ACME, Inc;\"anna@acme.test;a2@acme.test\";acme.test\nBen;;ben@example.org;\n",
            ),
            (
                "\t",
                "name\tcompany\temails\tdomains\nAnna\tACME, Inc\tanna@acme.test;a2@acme.test\tacme.test\nBen\t\tben@example.org\t\n",
            ),
        ];
        for (d, csv) in files {
            let s = Store::open_in_memory().unwrap();
            let r = import(&s, &cfg, csv.as_bytes()).unwrap();
            assert_eq!(
                (r.imported, r.errors.len(), r.delimiter.as_str()),
                (2, 0, d),
                "{r:?}"
            );
            assert_eq!(
                customers(&s),
                [
                    (
                        "Anna".to_string(),
                        Some("ACME, Inc".to_string()),
                        vec!["a2@acme.test".to_string(), "anna@acme.test".to_string()],
                        vec!["acme.test".to_string()]
                    ),
                    (
                        "Ben".to_string(),
                        None,
                        vec!["ben@example.org".to_string()],
                        vec![]
                    ),
                ],
                "delimiter {d:?}"
            );
        }
    }

    #[test]
    fn quoted_multi_values_in_a_semicolon_file_are_several_values() {
        crate::store::testing::each(|s| {
            let cfg = Config::default();
            let csv = "\"Name\";\"Emails\";\"Domains\";\"Notes\"\r\n\
                   \"Anna\";\"anna@x.org; Anna@Y.org\";\"x.org;y.org\";\"says \"\"hi\"\"; often\"\r\n";
            let r = import(s, &cfg, csv.as_bytes()).unwrap();
            assert_eq!((r.imported, r.errors.len()), (1, 0), "{r:?}");
            let c = &s.customers().unwrap()[0];
            assert_eq!(c.emails, ["anna@x.org", "anna@y.org"]);
            assert_eq!(c.domains, ["x.org", "y.org"]);
            assert_eq!(c.notes.as_deref(), Some("says \"hi\"; often"));
            // The export stays comma-separated and reads back unchanged.
            let out = export(s).unwrap();
            assert!(out.starts_with(b"name,company,emails,domains,notes\n"));
            let r = import(s, &cfg, &out).unwrap();
            assert_eq!((r.unchanged, r.delimiter.as_str()), (1, ","), "{r:?}");
        });
    }

    #[test]
    fn semicolon_files_with_bom_windows_1252_and_utf16_tabs() {
        let cfg = Config::default();
        // UTF-8 with a BOM, as LibreOffice writes it when asked.
        let s = Store::open_in_memory().unwrap();
        let mut bom = b"\xEF\xBB\xBFName;Firma;E-Mail\n".to_vec();
        bom.extend_from_slice("Jürgen Groß;;\"j@müller.de;jg@example.org\"\n".as_bytes());
        let r = import(&s, &cfg, &bom).unwrap();
        assert_eq!(
            (r.imported, r.encoding.as_str(), r.delimiter.as_str()),
            (1, "UTF-8", ";"),
            "{r:?}"
        );
        assert_eq!(r.ignored_columns, ["firma", "e-mail"]);
        assert_eq!(customers(&s)[0].0, "Jürgen Groß");
        // Windows-1252, as German/French Excel writes "CSV (semicolon)": accents, CRLF, a quoted
        // multi-value cell and a company with a comma.
        let s = Store::open_in_memory().unwrap();
        let cp1252 = b"name;company;emails;notes\r\n\
                       Fran\xE7ois L\xE9ger;Caf\xE9, Cr\xE8me SA;\"f@example.fr;fl@caf\xE9.fr\";\xE0 rappeler\r\n\
                       Zo\xEB M\xFCller;;zoe@example.de;\r\n";
        let r = import(&s, &cfg, cp1252).unwrap();
        assert_eq!(
            (
                r.imported,
                r.errors.len(),
                r.encoding.as_str(),
                r.delimiter.as_str()
            ),
            (2, 0, "windows-1252", ";"),
            "{r:?}"
        );
        let book = s.customers().unwrap();
        let f = book.iter().find(|c| c.name == "François Léger").unwrap();
        assert_eq!(f.company.as_deref(), Some("Café, Crème SA"));
        assert_eq!(f.emails, ["f@example.fr", "fl@xn--caf-dma.fr"]);
        assert_eq!(f.notes.as_deref(), Some("à rappeler"));
        assert!(book.iter().any(|c| c.name == "Zoë Müller"), "{book:?}");
        // Excel's "Unicode text": UTF-16LE with a BOM, tab-separated.
        let s = Store::open_in_memory().unwrap();
        let mut utf16 = vec![0xFF, 0xFE];
        for u in "name\temails\r\nŁukasz Wąs\tl@example.pl;lw@example.pl\r\n".encode_utf16() {
            utf16.extend_from_slice(&u.to_le_bytes());
        }
        let r = import(&s, &cfg, &utf16).unwrap();
        assert_eq!(
            (r.imported, r.encoding.as_str(), r.delimiter.as_str()),
            (1, "UTF-16LE", "\t"),
            "{r:?}"
        );
        assert_eq!(
            customers(&s)[0].2,
            ["l@example.pl".to_string(), "lw@example.pl".to_string()]
        );
    }

    #[test]
    fn line_numbers_hold_with_crlf_blank_lines_and_multi_line_cells() {
        crate::store::testing::each(|s| {
            let cfg = Config::default();
            let csv = "name;emails;notes\r\n\
                   ;a@example.org;\r\n\
                   \r\n\
                   ;b@example.org;\r\n\
                   Cleo;c@example.org;\"two\r\nlines\"\r\n\
                   ;d@example.org;\r\n\
                   \n\
                   \n\
                   ;e@example.org;\n";
            let r = import(s, &cfg, csv.as_bytes()).unwrap();
            assert_eq!(r.imported, 1, "{r:?}");
            let lines: Vec<u64> = r.errors.iter().map(|e| e.line).collect();
            assert_eq!(lines, [2, 4, 7, 10], "{r:?}");
            let c = &s.customers().unwrap()[0];
            assert_eq!(c.notes.as_deref(), Some("two\r\nlines"));
        });
    }

    #[test]
    fn too_many_fields_in_a_semicolon_file_is_an_error_on_its_line() {
        crate::store::testing::each(|s| {
            let cfg = Config::default();
            let csv = "name;emails;company\n\
                   Anna;anna@example.org;ACME\n\
                   Ben;ben@example.org;\"Ben & Sons\nGmbH\"\n\
                   Carl;carl@example.org;carl2@example.org;Carl AG\n\
                   Dora;dora@example.org;\n";
            let r = import(s, &cfg, csv.as_bytes()).unwrap();
            assert_eq!(r.imported, 3, "{r:?}");
            assert_eq!(r.errors.len(), 1, "{r:?}");
            // Ben's company spans two lines, so Carl's row starts on line 5.
            assert_eq!(r.errors[0].line, 5, "{r:?}");
            let reason = &r.errors[0].reason;
            assert!(
                reason.starts_with("4 fields, but the header has 3"),
                "{reason}"
            );
            assert!(
                reason.contains("\"a@x.org;b@y.org\""),
                "names the fix: {reason}"
            );
            let names: Vec<String> = customers(s).into_iter().map(|c| c.0).collect();
            assert!(
                !names.contains(&"Carl".to_string()),
                "nothing misassigned: {names:?}"
            );
            // Too many fields in a comma file names its delimiter.
            let r = import(s, &cfg, b"name,emails\nEve,eve@example.org,x\n").unwrap();
            assert_eq!(r.errors.len(), 1, "{r:?}");
            assert_eq!(r.errors[0].line, 2);
            assert!(r.errors[0].reason.contains("`,`"), "{r:?}");
        });
    }
}
