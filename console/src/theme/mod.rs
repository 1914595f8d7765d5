//! Console themes: flat TOML files with a palette first, then semantic keys per screen area
//! (including the SLA states), as k9s skins and television themes do.
//!
//! A theme is looked up as `themes/<name>.toml` in the themes directory, then among the
//! built-in themes compiled into the binary. A file that does not parse, names an unknown key
//! or gives a bad colour is reported with the file and the key, and the default theme is used.
//! `NO_COLOR` turns colours off (emphasis stays); on 256- and 16-colour terminals every colour
//! is mapped to the nearest one the terminal has.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use ratatui::style::{Color, Modifier, Style};

mod color;
mod keys;

pub use color::{ColorDepth, adapt};
pub use keys::ThemeKey;

use color::parse_color;

/// The theme used when none is chosen or the chosen one fails.
pub const DEFAULT_THEME: &str = "dark";

/// The themes compiled into the binary: (name, file text).
pub const BUILTIN: [(&str, &str); 4] = [
    ("dark", include_str!("../../../themes/dark.toml")),
    ("light", include_str!("../../../themes/light.toml")),
    (
        "high-contrast",
        include_str!("../../../themes/high-contrast.toml"),
    ),
    ("desert", include_str!("../../../themes/desert.toml")),
];

/// A colour for every key, indexed by [`ThemeKey`].
type Colors = [Color; ThemeKey::COUNT];

/// A problem with a theme file, naming the file and the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThemeError {
    /// The file (or `built-in <name>`).
    pub file: String,
    /// The key at fault, if one is.
    pub key: Option<String>,
    /// What is wrong.
    pub problem: String,
}

impl fmt::Display for ThemeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(key) => write!(f, "theme {}: key `{key}`: {}", self.file, self.problem),
            None => write!(f, "theme {}: {}", self.file, self.problem),
        }
    }
}

impl std::error::Error for ThemeError {}

/// A resolved theme: every semantic key with its colour, adapted to the terminal.
#[derive(Debug, Clone, PartialEq)]
pub struct Theme {
    /// Its name.
    pub name: String,
    colors: Colors,
    depth: ColorDepth,
}

impl Theme {
    /// The default theme (built in, always valid).
    pub fn default_theme(depth: ColorDepth) -> Self {
        let text = builtin_text(DEFAULT_THEME).expect("the default theme is built in");
        let colors = parse(text, &format!("built-in {DEFAULT_THEME}"), None)
            .expect("the built-in default theme is valid");
        Theme {
            name: DEFAULT_THEME.to_string(),
            colors,
            depth,
        }
    }

    /// Loads `name`: `<dir>/<name>.toml` when it exists, else the built-in theme of that name.
    /// On any problem returns the default theme and the error (for the caller to log and show).
    pub fn load(name: &str, dir: Option<&Path>, depth: ColorDepth) -> (Theme, Option<ThemeError>) {
        let fallback = Theme::default_theme(depth);
        match Self::try_load(name, dir, &fallback) {
            Ok(colors) => (
                Theme {
                    name: name.to_string(),
                    colors,
                    depth,
                },
                None,
            ),
            Err(e) => (fallback, Some(e)),
        }
    }

    fn try_load(name: &str, dir: Option<&Path>, fallback: &Theme) -> Result<Colors, ThemeError> {
        if let Some(path) = dir.map(|d| d.join(format!("{name}.toml")))
            && path.is_file()
        {
            let file = path.display().to_string();
            let text = std::fs::read_to_string(&path).map_err(|e| ThemeError {
                file: file.clone(),
                key: None,
                problem: format!("cannot be read: {e}"),
            })?;
            return parse(&text, &file, Some(&fallback.colors));
        }
        match builtin_text(name) {
            Some(text) => parse(text, &format!("built-in {name}"), Some(&fallback.colors)),
            None => Err(ThemeError {
                file: format!("{name}.toml"),
                key: None,
                problem: format!(
                    "no such theme (built-in themes: {})",
                    BUILTIN.map(|(n, _)| n).join(", ")
                ),
            }),
        }
    }

    /// The names of the themes on offer: the built-in ones and any in `dir`.
    pub fn available(dir: Option<&Path>) -> Vec<String> {
        let mut names: Vec<String> = BUILTIN.iter().map(|(n, _)| n.to_string()).collect();
        if let Some(entries) = dir.and_then(|d| std::fs::read_dir(d).ok()) {
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "toml")
                    && let Some(stem) = path.file_stem().and_then(|s| s.to_str())
                    && !names.iter().any(|n| n == stem)
                {
                    names.push(stem.to_string());
                }
            }
        }
        names.sort();
        names
    }

    /// The colour of a semantic key (as the terminal can show it).
    pub fn color(&self, key: ThemeKey) -> Color {
        adapt(self.colors[key as usize], self.depth)
    }

    /// A style with the key's colour as foreground.
    pub fn fg(&self, key: ThemeKey) -> Style {
        Style::new().fg(self.color(key))
    }

    /// The selected row: reversed when colours are off, so the selection stays visible.
    pub fn selection(&self) -> Style {
        if self.depth == ColorDepth::None {
            Style::new().add_modifier(Modifier::REVERSED)
        } else {
            Style::new()
                .bg(self.color(ThemeKey::BaseSelectionBg))
                .fg(self.color(ThemeKey::BaseSelectionFg))
        }
    }

    /// Emphasis that survives `NO_COLOR` for states that must stand out (breaches, errors).
    pub fn alarm(&self, key: ThemeKey) -> Style {
        self.fg(key).add_modifier(Modifier::BOLD)
    }

    /// Whether colours are shown at all.
    pub fn depth(&self) -> ColorDepth {
        self.depth
    }
}

fn builtin_text(name: &str) -> Option<&'static str> {
    BUILTIN.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// Parses a theme file: `palette.<name> = "<colour>"` entries and semantic keys whose values are
/// a palette name or a colour. Keys left out come from `base` (the default theme).
fn parse(text: &str, file: &str, base: Option<&Colors>) -> Result<Colors, ThemeError> {
    let err = |key: Option<&str>, problem: String| ThemeError {
        file: file.to_string(),
        key: key.map(str::to_string),
        problem,
    };
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| err(None, format!("is not valid TOML: {}", e.message())))?;
    let mut palette: BTreeMap<String, Color> = BTreeMap::new();
    if let Some(p) = table.get("palette") {
        let p = p
            .as_table()
            .ok_or_else(|| err(Some("palette"), "must be a table of colours".into()))?;
        for (name, value) in p {
            let key = format!("palette.{name}");
            let value = value
                .as_str()
                .ok_or_else(|| err(Some(&key), "must be a string".into()))?;
            let color = parse_color(value).ok_or_else(|| {
                err(
                    Some(&key),
                    format!("`{value}` is not a colour (#rrggbb, an ANSI name or `default`)"),
                )
            })?;
            palette.insert(name.clone(), color);
        }
    }
    let mut colors: [Option<Color>; ThemeKey::COUNT] = match base {
        Some(base) => base.map(Some),
        None => [None; ThemeKey::COUNT],
    };
    for (area, value) in &table {
        if area == "palette" || area == "name" || area == "description" {
            continue;
        }
        let area_table = value.as_table().ok_or_else(|| {
            err(
                Some(area),
                "unknown key (expected `palette`, `name`, `description` or an area such as `sla`)"
                    .into(),
            )
        })?;
        for (name, value) in area_table {
            let key_text = format!("{area}.{name}");
            let key = ThemeKey::from_name(&key_text)
                .ok_or_else(|| err(Some(&key_text), "unknown key".into()))?;
            let value = value
                .as_str()
                .ok_or_else(|| err(Some(&key_text), "must be a string".into()))?;
            let color = palette
                .get(value)
                .copied()
                .or_else(|| parse_color(value))
                .ok_or_else(|| {
                    err(
                        Some(&key_text),
                        format!("`{value}` is neither a palette name nor a colour"),
                    )
                })?;
            colors[key as usize] = Some(color);
        }
    }
    // Only the default theme has no base; every key must then be set.
    if let Some(missing) = ThemeKey::ALL
        .iter()
        .find(|k| colors[**k as usize].is_none())
    {
        return Err(err(
            Some(missing.name()),
            "missing from the default theme".into(),
        ));
    }
    Ok(colors.map(|c| c.unwrap_or(Color::Reset)))
}

/// Where theme files are looked for: `AMAL_THEMES_DIR`, else `themes/` in the working
/// directory, else `themes/` beside the source tree the binary was built from.
pub fn themes_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("AMAL_THEMES_DIR") {
        return Some(PathBuf::from(dir));
    }
    let local = PathBuf::from("themes");
    if local.is_dir() {
        return Some(local);
    }
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../themes");
    built.is_dir().then_some(built)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_theme_parses_and_sets_every_key() {
        let base = Theme::default_theme(ColorDepth::TrueColor);
        for (name, text) in BUILTIN {
            let colors = parse(text, name, None).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(colors.len(), ThemeKey::ALL.len(), "{name}");
            let (theme, err) = Theme::load(name, None, ColorDepth::TrueColor);
            assert!(err.is_none(), "{err:?}");
            assert_eq!(theme.name, name);
            if name != DEFAULT_THEME {
                assert_ne!(theme, base, "{name} looks like the default");
            }
        }
    }

    #[test]
    fn bad_files_name_the_file_and_key_and_fall_back() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            ("unknown", "[sla]\nokay = \"#00ff00\"\n", Some("sla.okay")),
            ("badcolor", "[sla]\nok = \"#00ff0\"\n", Some("sla.ok")),
            (
                "badpalette",
                "[palette]\ngreen = \"grass\"\n",
                Some("palette.green"),
            ),
            ("notoml", "[sla\nok = 1", None),
            ("notstring", "[sla]\nok = 3\n", Some("sla.ok")),
        ];
        for (name, text, key) in cases {
            std::fs::write(dir.path().join(format!("{name}.toml")), text).unwrap();
            let (theme, err) = Theme::load(name, Some(dir.path()), ColorDepth::TrueColor);
            let err = err.unwrap_or_else(|| panic!("{name} should fail"));
            assert_eq!(theme.name, DEFAULT_THEME);
            assert_eq!(err.key.as_deref(), key, "{err}");
            assert!(err.to_string().contains(&format!("{name}.toml")), "{err}");
        }
        let (_, err) = Theme::load("nope", Some(dir.path()), ColorDepth::TrueColor);
        assert!(err.unwrap().to_string().contains("no such theme"));
    }

    #[test]
    fn a_partial_file_keeps_the_default_for_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("mine.toml"),
            "[palette]\nleaf = \"#00aa00\"\n[sla]\nok = \"leaf\"\n",
        )
        .unwrap();
        let (theme, err) = Theme::load("mine", Some(dir.path()), ColorDepth::TrueColor);
        assert!(err.is_none());
        assert_eq!(theme.color(ThemeKey::SlaOk), Color::Rgb(0, 0xaa, 0));
        let default = Theme::default_theme(ColorDepth::TrueColor);
        assert_eq!(
            theme.color(ThemeKey::SlaBreached),
            default.color(ThemeKey::SlaBreached)
        );
    }
}
