//! Writes a settings change into the user's `config.toml` without rewriting what did not change.
//!
//! A CLI edit knows the settings before and after (both serialised the same way); only the keys
//! whose value differs between the two are touched in the user's table. Comments, key order,
//! whitespace, number spelling and the table style the user chose (`[a.b]` sub-tables, dotted
//! keys, inline tables) survive; a new sub-table takes the style of its parent.

use toml_edit::{Array, InlineTable, Item, Table, TableLike, Value};

/// How a table is written, so a table created inside it is written the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    /// `[a.b]` header.
    Header,
    /// `b.key = …` under its parent.
    Dotted,
    /// `b = { key = … }`.
    Inline,
}

fn style_of(item: &Item) -> Style {
    match item {
        Item::Value(Value::InlineTable(_)) => Style::Inline,
        Item::Table(t) if t.is_dotted() => Style::Dotted,
        _ => Style::Header,
    }
}

/// Applies the difference `old` → `new` to `target`, the user's table that `old` was read from.
///
/// A key is written only when `old` and `new` differ there (so a default the user never wrote
/// stays unwritten, and a spelling like `security = "plain"` stays while unchanged), and then
/// only if `target` does not already hold the new value. A key `new` lacks is removed.
pub fn apply_changes(target: &mut Item, old: &dyn TableLike, new: &dyn TableLike) {
    let style = style_of(target);
    if let Some(t) = target.as_table_like_mut() {
        apply(t, style, old, new);
    }
}

fn apply(target: &mut dyn TableLike, style: Style, old: &dyn TableLike, new: &dyn TableLike) {
    let gone: Vec<String> = old
        .iter()
        .filter(|(k, _)| !new.contains_key(k))
        .map(|(k, _)| k.to_string())
        .collect();
    for key in gone {
        remove_key(target, &key);
    }
    let empty = Table::new();
    for (key, new_item) in new.iter() {
        let old_item = old.get(key);
        if old_item.is_some_and(|o| same_item(o, new_item)) {
            continue;
        }
        if let Some(new_sub) = new_item.as_table_like() {
            let old_sub = old_item
                .and_then(Item::as_table_like)
                .unwrap_or(&empty as &dyn TableLike);
            let slot = match target.get_mut(key) {
                Some(slot) if slot.is_table_like() => slot,
                Some(slot) => {
                    // Not a table in the user's file (cannot load, but be safe): replace it.
                    *slot = fresh(new_item);
                    continue;
                }
                None => {
                    append(target, style, key, new_table(style));
                    match target.get_mut(key) {
                        Some(slot) => slot,
                        None => continue,
                    }
                }
            };
            apply_changes(slot, old_sub, new_sub);
            continue;
        }
        match target.get_mut(key) {
            Some(slot) => {
                if same_item(slot, new_item) {
                    continue;
                }
                match (&mut *slot, new_item.as_value()) {
                    (Item::Value(v), Some(nv)) => set_value(v, nv),
                    _ => *slot = fresh(new_item),
                }
            }
            None => append(target, style, key, fresh(new_item)),
        }
    }
}

/// Adds a key at the end; in an inline table the closing space before `}` stays at the end.
fn append(target: &mut dyn TableLike, style: Style, key: &str, mut item: Item) {
    if style == Style::Inline
        && let Some((_, Item::Value(last))) = target.iter_mut().last()
        && let Some(suffix) = last.decor().suffix().cloned()
        && let Item::Value(v) = &mut item
    {
        last.decor_mut().set_suffix("");
        v.decor_mut().set_suffix(suffix);
    }
    target.insert(key, item);
}

/// An empty table written the way its parent is.
fn new_table(parent: Style) -> Item {
    match parent {
        Style::Inline => Item::Value(Value::InlineTable(InlineTable::new())),
        Style::Dotted => {
            let mut t = Table::new();
            t.set_dotted(true);
            Item::Table(t)
        }
        Style::Header => Item::Table(Table::new()),
    }
}

/// A copy of a serialised item with default formatting, for inserting.
fn fresh(item: &Item) -> Item {
    let mut item = item.clone();
    if let Item::Value(v) = &mut item {
        v.decor_mut().clear();
    }
    item
}

/// Removes a key; in an inline table the closing space of the last entry moves to the new last
/// one, so `{ a = 1, b = 2 }` becomes `{ a = 1 }` rather than `{ a = 1}`.
fn remove_key(target: &mut dyn TableLike, key: &str) {
    let was_last = target.iter().last().map(|(k, _)| k == key).unwrap_or(false);
    let Some(removed) = target.remove(key) else {
        return;
    };
    if !was_last {
        return;
    }
    if let (Item::Value(removed), Some((_, Item::Value(last)))) =
        (&removed, target.iter_mut().last())
        && let Some(suffix) = removed.decor().suffix()
        && last.decor().suffix().is_none_or(|s| s.as_str() == Some(""))
    {
        last.decor_mut().set_suffix(suffix.clone());
    }
}

/// Replaces a value, keeping the spacing and comment around it; a list is edited in place.
fn set_value(slot: &mut Value, new: &Value) {
    if let (Value::Array(old), Value::Array(new)) = (&mut *slot, new) {
        merge_array(old, new);
        return;
    }
    let decor = slot.decor().clone();
    let mut v = new.clone();
    *v.decor_mut() = decor;
    *slot = v;
}

/// Sets `key` of `table` to this list of strings, keeping the entries that stay where and as
/// they are written (a multi-line list with comments stays so) and appending the new ones.
pub fn set_string_list(table: &mut Item, key: &str, values: &[String]) {
    let new = Array::from_iter(values.iter().map(String::as_str));
    match table.get_mut(key) {
        Some(Item::Value(Value::Array(old))) => merge_array(old, &new),
        Some(slot) => *slot = toml_edit::value(new),
        None => table[key] = toml_edit::value(new),
    }
}

/// Turns `old` into `new` by dropping entries and appending, which is how list edits (`deny
/// add/remove`, an alias more or less) look; any result equals `new`, only reorders cost more.
fn merge_array(old: &mut Array, new: &Array) {
    let mut keep = Vec::with_capacity(old.len());
    let mut next = 0;
    for v in old.iter() {
        let stays = new.get(next).is_some_and(|n| same_value(v, n));
        keep.push(stays);
        if stays {
            next += 1;
        }
    }
    for i in (0..keep.len()).rev() {
        if !keep[i] {
            remove_entry(old, i);
        }
    }
    for n in new.iter().skip(next) {
        push_entry(old, n);
    }
}

/// Splits decor text at its first line break: what still belongs to the line before, and the
/// rest (the entry's own comment lines and indentation).
fn split_line(raw: Option<&toml_edit::RawString>) -> (String, String) {
    let text = raw.and_then(|r| r.as_str()).unwrap_or("");
    match text.find('\n') {
        Some(i) => (text[..i].to_string(), text[i..].to_string()),
        None => (text.to_string(), String::new()),
    }
}

/// Removes entry `i` with its own comment, keeping the comment of the line before it (which the
/// parser stores in front of this entry).
fn remove_entry(array: &mut Array, i: usize) {
    let removed = array.remove(i);
    let (line_before, _own) = split_line(removed.decor().prefix());
    if let Some(next) = array.get_mut(i) {
        // The start of the next entry's prefix is the removed entry's line end: gone with it.
        let (_, next_own) = split_line(next.decor().prefix());
        next.decor_mut().set_prefix(line_before + &next_own);
    } else if array.trailing_comma() || i == 0 {
        let (_, rest) = split_line(Some(array.trailing()));
        array.set_trailing(line_before + &rest);
    } else if let Some(last) = array.get_mut(i - 1) {
        let (_, rest) = split_line(removed.decor().suffix());
        last.decor_mut().set_suffix(line_before + &rest);
    }
}

/// Appends an entry laid out like the last one: one per line stays one per line, and what closed
/// the list after the last entry closes it after the new one.
fn push_entry(array: &mut Array, value: &Value) {
    let mut v = value.clone();
    v.decor_mut().clear();
    let len = array.len();
    if let Some(last) = array.get_mut(len.wrapping_sub(1)) {
        let prefix = last
            .decor()
            .prefix()
            .and_then(|p| p.as_str())
            .unwrap_or("")
            .to_string();
        let (line_end, rest) = split_line(last.decor().suffix());
        let new_prefix = match prefix.rfind('\n') {
            Some(i) => format!("{line_end}{}", &prefix[i..]),
            None => format!("{line_end} "),
        };
        last.decor_mut().set_suffix("");
        v.decor_mut().set_prefix(new_prefix);
        v.decor_mut().set_suffix(rest);
    }
    array.push_formatted(v);
}

/// Equal as TOML data, whatever the spelling (`993` vs `0x3e1`, `'a'` vs `"a"`, key order).
pub fn same_item(a: &Item, b: &Item) -> bool {
    match (a, b) {
        (Item::None, Item::None) => true,
        (Item::Value(x), Item::Value(y)) => same_value(x, y),
        (Item::ArrayOfTables(x), Item::ArrayOfTables(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(p, q)| same_table(p, q))
        }
        _ => match (a.as_table_like(), b.as_table_like()) {
            (Some(x), Some(y)) => same_table(x, y),
            _ => false,
        },
    }
}

fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) => x.value() == y.value(),
        (Value::Integer(x), Value::Integer(y)) => x.value() == y.value(),
        (Value::Float(x), Value::Float(y)) => x.value().to_bits() == y.value().to_bits(),
        (Value::Boolean(x), Value::Boolean(y)) => x.value() == y.value(),
        (Value::Datetime(x), Value::Datetime(y)) => x.value() == y.value(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(p, q)| same_value(p, q))
        }
        (Value::InlineTable(x), Value::InlineTable(y)) => same_table(x, y),
        _ => false,
    }
}

fn same_table(a: &dyn TableLike, b: &dyn TableLike) -> bool {
    a.len() == b.len()
        && a.iter()
            .all(|(k, v)| b.get(k).is_some_and(|w| same_item(v, w)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use toml_edit::DocumentMut;

    fn run(user: &str, old: &str, new: &str) -> String {
        let mut doc: DocumentMut = user.parse().unwrap();
        let old: DocumentMut = old.parse().unwrap();
        let new: DocumentMut = new.parse().unwrap();
        apply(
            doc.as_table_mut(),
            Style::Header,
            old.as_table(),
            new.as_table(),
        );
        doc.to_string()
    }

    #[test]
    fn unchanged_keys_keep_their_spelling_and_comments() {
        let user = "# top\nport = 0x3e1 # hex on purpose\nsecurity = 'plain'\n";
        let old = "port = 993\nsecurity = \"none\"\n";
        assert_eq!(run(user, old, old), user);
        // Changed to what the file already says: still untouched.
        assert_eq!(run(user, "port = 1\nsecurity = \"none\"\n", old), user);
    }

    #[test]
    fn a_changed_value_keeps_its_trailing_comment() {
        let user = "a = 1\nport  =  993   # the IMAPS port\nz = 2\n";
        let got = run(
            user,
            "a = 1\nport = 993\nz = 2\n",
            "a = 1\nport = 1993\nz = 2\n",
        );
        assert_eq!(got, "a = 1\nport  =  1993   # the IMAPS port\nz = 2\n");
    }

    #[test]
    fn a_removed_key_takes_only_its_own_comment_lines() {
        let user =
            "# about a\na = 1 # one\n\n# about since\nsince = \"new\" # x\n# about z\nz = 2\n";
        let old = "a = 1\nsince = \"new\"\nz = 2\n";
        assert_eq!(
            run(user, old, "a = 1\nz = 2\n"),
            "# about a\na = 1 # one\n# about z\nz = 2\n"
        );
    }

    #[test]
    fn defaults_the_user_never_wrote_stay_unwritten() {
        let user = "[sync]\npoll_secs = 60\n";
        let old = "[sync]\nidle = true\npoll_secs = 60\n";
        let new = "[sync]\nidle = true\npoll_secs = 30\n";
        assert_eq!(run(user, old, new), "[sync]\npoll_secs = 30\n");
    }

    #[test]
    fn a_new_table_follows_its_parents_style() {
        let new = "[a]\n[a.sync]\nsince = \"new\"\n";
        assert_eq!(
            run("[a]\nx = 1\n", "[a]\n", new),
            "[a]\nx = 1\n\n[a.sync]\nsince = \"new\"\n"
        );
        assert_eq!(
            run("a = { x = 1 }\n", "[a]\n", new),
            "a = { x = 1, sync = { since = \"new\" } }\n"
        );
        assert_eq!(
            run(
                "[z]\na.x = 1\n",
                "[z.a]\n",
                "[z.a]\n[z.a.sync]\nsince = \"new\"\n"
            ),
            "[z]\na.x = 1\na.sync.since = \"new\"\n"
        );
    }

    #[test]
    fn removing_the_last_key_of_an_inline_table_keeps_its_spacing() {
        let got = run(
            "s = { idle = false, since = \"new\" }\n",
            "s = { idle = false, since = \"new\" }\n",
            "s = { idle = false }\n",
        );
        assert_eq!(got, "s = { idle = false }\n");
    }

    #[test]
    fn lists_are_edited_in_place() {
        let user = "deny = [\n    \"a.test\", # old spammer\n    \"b.test\",\n]\n";
        let old = "deny = [\"a.test\", \"b.test\"]\n";
        assert_eq!(
            run(user, old, "deny = [\"a.test\", \"b.test\", \"c.test\"]\n"),
            "deny = [\n    \"a.test\", # old spammer\n    \"b.test\",\n    \"c.test\",\n]\n"
        );
        assert_eq!(
            run(user, old, "deny = [\"a.test\"]\n"),
            "deny = [\n    \"a.test\", # old spammer\n]\n"
        );
        assert_eq!(
            run(
                "deny = [\"a\", \"b\"]\n",
                "deny = [\"a\", \"b\"]\n",
                "deny = [\"b\", \"c\"]\n"
            ),
            "deny = [\"b\", \"c\"]\n"
        );
        assert_eq!(
            run("deny = []\n", "deny = []\n", "deny = [\"a\", \"b\"]\n"),
            "deny = [\"a\", \"b\"]\n"
        );
        // Each entry's own comment goes with it; its neighbours' comments stay.
        let user = "deny = [\n  # first\n  \"a\", # a\n  # second\n  \"b\", # b\n  \"c\" # c\n]\n";
        let old = "deny = [\"a\", \"b\", \"c\"]\n";
        assert_eq!(
            run(user, old, "deny = [\"a\", \"c\"]\n"),
            "deny = [\n  # first\n  \"a\", # a\n  \"c\" # c\n]\n"
        );
        assert_eq!(
            run(user, old, "deny = [\"b\", \"c\"]\n"),
            "deny = [\n  # second\n  \"b\", # b\n  \"c\" # c\n]\n"
        );
        assert_eq!(
            run(user, old, "deny = [\"a\", \"b\"]\n"),
            "deny = [\n  # first\n  \"a\", # a\n  # second\n  \"b\" # b\n]\n"
        );
        assert_eq!(
            run(user, old, "deny = [\"a\", \"b\", \"c\", \"d\"]\n"),
            "deny = [\n  # first\n  \"a\", # a\n  # second\n  \"b\", # b\n  \"c\", # c\n  \"d\"\n]\n"
        );
        let one_line = "deny = [ \"a\", \"b\", \"c\" ] # spam\n";
        assert_eq!(
            run(one_line, old, "deny = [\"a\", \"c\"]\n"),
            "deny = [ \"a\", \"c\" ] # spam\n"
        );
        assert_eq!(
            run(one_line, old, "deny = [\"a\", \"b\"]\n"),
            "deny = [ \"a\", \"b\" ] # spam\n"
        );
    }
}
