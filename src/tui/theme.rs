//! Themes name roles (what a thing is: `list.unread`, `pane.title.focused`), never widget
//! colours. Built-in themes ship in the binary (themes/*.toml); a user theme names only the roles
//! it changes on top of the one it `extends`. Everything is validated at start: an unknown role,
//! colour or attribute is an error that names the fix, never a silent fallback.

use std::collections::HashMap;
use std::str::FromStr;

use ratatui::style::{Color, Modifier, Style};
use serde::Deserialize;

use crate::error::{AppError, Result};

/// Every role a theme must define (the built-ins define all; user themes inherit the rest).
pub const ROLES: &[&str] = &[
    "base",
    "pane.border",
    "pane.border.focused",
    "pane.title",
    "pane.title.focused",
    "tabs.active",
    "tabs.inactive",
    "list.header",
    "list.selected",
    "list.unread",
    "list.read",
    "list.dim",
    "list.empty",
    "status.line",
    "status.error",
    "status.info",
    "state.ok",
    "state.busy",
    "state.warn",
    "state.error",
    "state.off",
    "badge.insecure",
    "badge.role",
    "step.ok",
    "step.failed",
    "step.skipped",
    "step.running",
    "log.error",
    "log.warn",
    "log.info",
    "log.debug",
    "form.label",
    "form.input",
    "form.input.focused",
    "form.hint",
    "help.key",
    "help.desc",
    "dialog.border",
    "dialog.text",
    "gauge",
    "fix",
    "header.name",
    "header.value",
    "mail.flagged",
    "mail.hit",
    "mail.account",
];

pub const BUILTIN: &[(&str, &str)] = &[
    ("dark", include_str!("../../themes/dark.toml")),
    ("light", include_str!("../../themes/light.toml")),
    (
        "high-contrast",
        include_str!("../../themes/high-contrast.toml"),
    ),
    ("monochrome", include_str!("../../themes/monochrome.toml")),
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ThemeFile {
    #[allow(dead_code)]
    name: Option<String>,
    extends: Option<String>,
    #[serde(default)]
    roles: HashMap<String, RoleSpec>,
}

#[derive(Debug, Deserialize, Clone, Default)]
#[serde(deny_unknown_fields)]
struct RoleSpec {
    fg: Option<String>,
    bg: Option<String>,
    #[serde(default)]
    mods: Vec<String>,
    link: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Theme {
    pub name: String,
    styles: HashMap<&'static str, Style>,
}

impl Theme {
    /// The style of a role. Roles are compile-time names from `ROLES`; an unknown one is a bug
    /// caught by the tests, and draws unstyled rather than crashing a live console.
    pub fn style(&self, role: &str) -> Style {
        self.styles.get(role).copied().unwrap_or_default()
    }

    pub fn builtin(name: &str) -> Result<Theme> {
        let text = BUILTIN
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| *t)
            .ok_or_else(|| unknown_theme(name))?;
        Theme::parse(name, text, None)
    }

    pub fn dark() -> Theme {
        // The built-in dark theme is validated by the tests; if it ever failed to parse the
        // console still draws (unstyled) instead of refusing to start.
        Theme::builtin("dark").unwrap_or_else(|_| Theme {
            name: "dark".into(),
            styles: HashMap::new(),
        })
    }

    /// Parses a theme file. A built-in must define every role; a user file inherits from
    /// `extends` (default dark) and names only what it changes.
    pub fn parse(name: &str, text: &str, source: Option<&str>) -> Result<Theme> {
        let where_ = source.unwrap_or(name).to_string();
        let file: ThemeFile = toml::from_str(text).map_err(|e| {
            AppError::usage(
                format!("theme {where_} is not valid"),
                format!("{e}; see themes/dark.toml for the format"),
            )
        })?;
        let mut specs: HashMap<String, RoleSpec> = HashMap::new();
        let is_builtin = source.is_none() && BUILTIN.iter().any(|(n, _)| *n == name);
        if !is_builtin {
            let base = file.extends.as_deref().unwrap_or("dark");
            let base_text = BUILTIN
                .iter()
                .find(|(n, _)| *n == base)
                .map(|(_, t)| *t)
                .ok_or_else(|| unknown_theme(base))?;
            let base_file: ThemeFile = toml::from_str(base_text).map_err(|e| {
                AppError::local("a built-in theme is broken", e.to_string(), "report a bug")
            })?;
            specs.extend(base_file.roles);
        }
        for (role, spec) in file.roles {
            if !ROLES.contains(&role.as_str()) {
                return Err(AppError::usage(
                    format!("theme {where_}: unknown role {role:?}"),
                    format!("use one of: {}", ROLES.join(", ")),
                ));
            }
            specs.insert(role, spec);
        }
        let mut styles = HashMap::new();
        for role in ROLES {
            let style = resolve(role, &specs, 0).map_err(|e| AppError {
                summary: format!("theme {where_}: {}", e.summary),
                ..e
            })?;
            styles.insert(*role, style);
        }
        Ok(Theme {
            name: name.to_string(),
            styles,
        })
    }

    /// NO_COLOR: keep attributes (bold, reversed…) so the UI stays readable, drop every colour.
    pub fn without_colour(mut self) -> Theme {
        for s in self.styles.values_mut() {
            s.fg = None;
            s.bg = None;
        }
        self
    }
}

fn unknown_theme(name: &str) -> AppError {
    let names: Vec<&str> = BUILTIN.iter().map(|(n, _)| *n).collect();
    AppError::usage(
        format!("unknown theme {name:?}"),
        format!(
            "use one of {} or a path to a .toml theme file",
            names.join(", ")
        ),
    )
}

fn resolve(role: &str, specs: &HashMap<String, RoleSpec>, depth: u8) -> Result<Style> {
    if depth > 8 {
        return Err(AppError::usage(
            format!("role {role:?} links in a loop"),
            "make the link chain end at a role with its own colours",
        ));
    }
    let spec = specs.get(role).ok_or_else(|| {
        AppError::usage(
            format!("role {role:?} is missing"),
            "define it, or `extends` a built-in theme",
        )
    })?;
    let mut style = match &spec.link {
        Some(l) if ROLES.contains(&l.as_str()) => resolve(l, specs, depth + 1)?,
        Some(l) => {
            return Err(AppError::usage(
                format!("role {role:?} links to unknown role {l:?}"),
                "link to one of the roles in themes/dark.toml",
            ));
        }
        None => Style::default(),
    };
    if let Some(fg) = &spec.fg {
        style = style.fg(colour(role, fg)?);
    }
    if let Some(bg) = &spec.bg {
        style = style.bg(colour(role, bg)?);
    }
    for m in &spec.mods {
        style = style.add_modifier(modifier(role, m)?);
    }
    Ok(style)
}

fn colour(role: &str, s: &str) -> Result<Color> {
    Color::from_str(s).map_err(|_| {
        AppError::usage(
            format!("role {role:?}: unknown colour {s:?}"),
            "use a name (red, lightblue, darkgray…), #rrggbb, or a number 0-255",
        )
    })
}

fn modifier(role: &str, s: &str) -> Result<Modifier> {
    Ok(match s {
        "bold" => Modifier::BOLD,
        "dim" => Modifier::DIM,
        "italic" => Modifier::ITALIC,
        "underlined" => Modifier::UNDERLINED,
        "reversed" => Modifier::REVERSED,
        "crossed_out" => Modifier::CROSSED_OUT,
        _ => {
            return Err(AppError::usage(
                format!("role {role:?}: unknown attribute {s:?}"),
                "use bold, dim, italic, underlined, reversed or crossed_out",
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_defines_every_role() {
        for (name, text) in BUILTIN {
            let file: ThemeFile = toml::from_str(text).unwrap();
            for role in ROLES {
                assert!(file.roles.contains_key(*role), "{name} lacks {role}");
            }
            Theme::builtin(name).unwrap();
        }
    }

    #[test]
    fn user_theme_overrides_only_what_it_names() {
        let t = Theme::parse(
            "mine",
            "extends = \"light\"\n[roles]\n\"list.unread\" = { fg = \"#ff0000\" }\n",
            Some("mine.toml"),
        )
        .unwrap();
        assert_eq!(t.style("list.unread").fg, Some(Color::Rgb(255, 0, 0)));
        assert_eq!(
            t.style("tabs.active"),
            Theme::builtin("light").unwrap().style("tabs.active")
        );
    }

    #[test]
    fn bad_themes_are_rejected_with_the_fix() {
        let e = Theme::parse("x", "[roles]\n\"list.unred\" = {}\n", Some("x.toml")).unwrap_err();
        assert!(e.summary.contains("unknown role"), "{e:?}");
        assert!(e.fix.contains("list.unread"));
        let e =
            Theme::parse("x", "[roles]\n\"base\" = { fg = \"blurple\" }\n", Some("x")).unwrap_err();
        assert!(e.summary.contains("unknown colour"), "{e:?}");
        let e = Theme::parse(
            "x",
            "[roles]\n\"base\" = { mods = [\"blink2\"] }\n",
            Some("x"),
        )
        .unwrap_err();
        assert!(e.summary.contains("attribute"), "{e:?}");
        let e =
            Theme::parse("x", "[roles]\n\"base\" = { link = \"base\" }\n", Some("x")).unwrap_err();
        assert!(e.summary.contains("loop"), "{e:?}");
        let e = Theme::parse("x", "colour = 1\n", Some("x")).unwrap_err();
        assert!(e.summary.contains("not valid"), "{e:?}");
        assert!(Theme::builtin("neon").is_err());
    }

    #[test]
    fn no_colour_keeps_attributes() {
        let t = Theme::dark().without_colour();
        let s = t.style("list.unread");
        assert_eq!(s.fg, None);
        assert!(s.add_modifier.contains(Modifier::BOLD));
    }
}
