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

use amal_engine::sla::SlaState;
use ratatui::style::{Color, Modifier, Style};

/// The theme used when none is chosen or the chosen one fails.
pub const DEFAULT_THEME: &str = "dark";

/// The themes compiled into the binary: (name, file text).
pub const BUILTIN: [(&str, &str); 4] = [
    ("dark", include_str!("../../themes/dark.toml")),
    ("light", include_str!("../../themes/light.toml")),
    (
        "high-contrast",
        include_str!("../../themes/high-contrast.toml"),
    ),
    ("desert", include_str!("../../themes/desert.toml")),
];

/// Declares [`ThemeKey`] from one list: each key's variant, its name in theme files and what it
/// colours, so the name table cannot drift from the enum.
macro_rules! theme_keys {
    ($($(#[doc = $doc:literal])* $variant:ident = $name:literal,)*) => {
        /// A semantic colour a theme sets, named in files as `<area>.<name>`. A theme may leave
        /// keys out (the default theme's colour is used); a name not listed here is an error.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ThemeKey {
            $($(#[doc = $doc])* $variant,)*
        }

        impl ThemeKey {
            /// Every key, in the order the theme files list them.
            pub const ALL: &[ThemeKey] = &[$(ThemeKey::$variant,)*];

            /// The key as theme files write it: `sla.ok`, `base.text`, ...
            pub fn name(self) -> &'static str {
                match self {
                    $(ThemeKey::$variant => $name,)*
                }
            }
        }
    };
}

theme_keys! {
    /// Screen background.
    BaseBackground = "base.background",
    /// Ordinary text.
    BaseText = "base.text",
    /// Secondary text.
    BaseDim = "base.dim",
    /// Borders.
    BaseBorder = "base.border",
    /// The border of the focused pane.
    BaseBorderFocus = "base.border_focus",
    /// Pane titles.
    BaseTitle = "base.title",
    /// The selected row's background.
    BaseSelectionBg = "base.selection_bg",
    /// The selected row's text.
    BaseSelectionFg = "base.selection_fg",
    /// Error messages.
    BaseError = "base.error",
    /// Confirmations.
    BaseSuccess = "base.success",
    /// The top bar.
    HeaderBackground = "header.background",
    /// The top bar's text.
    HeaderText = "header.text",
    /// The current screen's tab.
    TabsActive = "tabs.active",
    /// Other tabs.
    TabsInactive = "tabs.inactive",
    /// Keys in the footer and help.
    FooterKey = "footer.key",
    /// Descriptions in the footer and help.
    FooterText = "footer.text",
    /// The connection banner.
    BannerBackground = "banner.background",
    /// The connection banner's text.
    BannerText = "banner.text",
    /// The person's messages.
    TranscriptUser = "transcript.user",
    /// The assistant's replies.
    TranscriptAssistant = "transcript.assistant",
    /// Staff replies.
    TranscriptStaff = "transcript.staff",
    /// System messages.
    TranscriptSystem = "transcript.system",
    /// Decision lines.
    TranscriptDecision = "transcript.decision",
    /// Cited sources.
    TranscriptCitation = "transcript.citation",
    /// Public comments.
    CommentsPublic = "comments.public",
    /// Internal notes.
    CommentsInternal = "comments.internal",
    /// SLA clock within target.
    SlaOk = "sla.ok",
    /// SLA clock past 80% of its target.
    SlaWarning = "sla.warning",
    /// SLA target missed.
    SlaBreached = "sla.breached",
    /// SLA clock standing still.
    SlaPaused = "sla.paused",
    /// Urgent priority.
    PriorityUrgent = "priority.urgent",
    /// High priority.
    PriorityHigh = "priority.high",
    /// Medium priority.
    PriorityMedium = "priority.medium",
    /// Low priority.
    PriorityLow = "priority.low",
    /// First data series.
    ChartPrimary = "chart.primary",
    /// Second data series.
    ChartSecondary = "chart.secondary",
    /// Gauges.
    ChartGauge = "chart.gauge",
}

impl ThemeKey {
    /// How many keys there are.
    pub const COUNT: usize = ThemeKey::ALL.len();

    /// The key a theme file names, if it is one.
    pub fn from_name(name: &str) -> Option<ThemeKey> {
        ThemeKey::ALL.iter().copied().find(|k| k.name() == name)
    }

    /// The colour of an SLA clock in this state.
    pub fn sla(state: SlaState) -> ThemeKey {
        match state {
            SlaState::Ok => ThemeKey::SlaOk,
            SlaState::Warning => ThemeKey::SlaWarning,
            SlaState::Breached => ThemeKey::SlaBreached,
        }
    }
}

/// A colour for every key, indexed by [`ThemeKey`].
type Colors = [Color; ThemeKey::COUNT];

/// How many colours the terminal shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorDepth {
    /// 24-bit colour.
    TrueColor,
    /// The xterm 256-colour palette.
    Ansi256,
    /// The 16 ANSI colours.
    Ansi16,
    /// No colour at all (`NO_COLOR`).
    None,
}

impl ColorDepth {
    /// From the environment: `NO_COLOR` (any value), `COLORTERM`, `TERM`.
    pub fn detect() -> Self {
        Self::from_vars(
            std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
            std::env::var("COLORTERM").ok().as_deref(),
            std::env::var("TERM").ok().as_deref(),
        )
    }

    /// The decision behind [`ColorDepth::detect`], testable.
    pub fn from_vars(no_color: bool, colorterm: Option<&str>, term: Option<&str>) -> Self {
        if no_color {
            return ColorDepth::None;
        }
        if matches!(colorterm, Some("truecolor" | "24bit")) {
            return ColorDepth::TrueColor;
        }
        match term {
            Some(t) if t.contains("256color") || t.contains("direct") => ColorDepth::Ansi256,
            Some("dumb") => ColorDepth::None,
            _ => ColorDepth::Ansi16,
        }
    }
}

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

/// `#rrggbb`, an ANSI colour name (`red`, `light-blue`, ...) or `default`.
fn parse_color(value: &str) -> Option<Color> {
    let v = value.trim();
    if let Some(hex) = v.strip_prefix('#') {
        if hex.len() != 6 {
            return None;
        }
        let n = u32::from_str_radix(hex, 16).ok()?;
        return Some(Color::Rgb((n >> 16) as u8, (n >> 8) as u8, n as u8));
    }
    Some(match v.to_ascii_lowercase().replace('_', "-").as_str() {
        "default" | "reset" => Color::Reset,
        "black" => Color::Black,
        "red" => Color::Red,
        "green" => Color::Green,
        "yellow" => Color::Yellow,
        "blue" => Color::Blue,
        "magenta" => Color::Magenta,
        "cyan" => Color::Cyan,
        "gray" | "grey" => Color::Gray,
        "dark-gray" | "dark-grey" => Color::DarkGray,
        "light-red" => Color::LightRed,
        "light-green" => Color::LightGreen,
        "light-yellow" => Color::LightYellow,
        "light-blue" => Color::LightBlue,
        "light-magenta" => Color::LightMagenta,
        "light-cyan" => Color::LightCyan,
        "white" => Color::White,
        _ => return None,
    })
}

/// The 16 ANSI colours with their usual xterm values, for the nearest-colour search.
const ANSI16: [(Color, (u8, u8, u8)); 16] = [
    (Color::Black, (0, 0, 0)),
    (Color::Red, (205, 0, 0)),
    (Color::Green, (0, 205, 0)),
    (Color::Yellow, (205, 205, 0)),
    (Color::Blue, (0, 0, 238)),
    (Color::Magenta, (205, 0, 205)),
    (Color::Cyan, (0, 205, 205)),
    (Color::Gray, (229, 229, 229)),
    (Color::DarkGray, (127, 127, 127)),
    (Color::LightRed, (255, 0, 0)),
    (Color::LightGreen, (0, 255, 0)),
    (Color::LightYellow, (255, 255, 0)),
    (Color::LightBlue, (92, 92, 255)),
    (Color::LightMagenta, (255, 0, 255)),
    (Color::LightCyan, (0, 255, 255)),
    (Color::White, (255, 255, 255)),
];

/// A colour as a terminal of `depth` can show it.
pub fn adapt(color: Color, depth: ColorDepth) -> Color {
    let Color::Rgb(r, g, b) = color else {
        return if depth == ColorDepth::None {
            Color::Reset
        } else {
            color
        };
    };
    match depth {
        ColorDepth::TrueColor => color,
        ColorDepth::None => Color::Reset,
        ColorDepth::Ansi256 => Color::Indexed(nearest_256(r, g, b)),
        ColorDepth::Ansi16 => {
            ANSI16
                .iter()
                .min_by_key(|(_, c)| distance((r, g, b), *c))
                .expect("the table is not empty")
                .0
        }
    }
}

fn distance(a: (u8, u8, u8), b: (u8, u8, u8)) -> u32 {
    let d = |x: u8, y: u8| (i32::from(x) - i32::from(y)).pow(2) as u32;
    d(a.0, b.0) + d(a.1, b.1) + d(a.2, b.2)
}

/// The nearest colour of the xterm 256-colour palette: the 6x6x6 cube or the grey ramp.
fn nearest_256(r: u8, g: u8, b: u8) -> u8 {
    const STEPS: [u8; 6] = [0, 95, 135, 175, 215, 255];
    let level = |v: u8| -> usize {
        STEPS
            .iter()
            .enumerate()
            .min_by_key(|(_, s)| (i32::from(**s) - i32::from(v)).abs())
            .map(|(i, _)| i)
            .unwrap_or(0)
    };
    let (ri, gi, bi) = (level(r), level(g), level(b));
    let cube = (STEPS[ri], STEPS[gi], STEPS[bi]);
    let cube_index = 16 + 36 * ri + 6 * gi + bi;
    let avg = (u32::from(r) + u32::from(g) + u32::from(b)) / 3;
    let grey_i = ((avg.saturating_sub(8)) / 10).min(23) as u8;
    let grey = 8 + 10 * grey_i;
    if distance((r, g, b), (grey, grey, grey)) < distance((r, g, b), cube) {
        232 + grey_i
    } else {
        cube_index as u8
    }
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

    #[test]
    fn colours_follow_the_terminal() {
        assert_eq!(
            ColorDepth::from_vars(true, Some("truecolor"), None),
            ColorDepth::None
        );
        assert_eq!(
            ColorDepth::from_vars(false, Some("truecolor"), Some("xterm")),
            ColorDepth::TrueColor
        );
        assert_eq!(
            ColorDepth::from_vars(false, None, Some("screen-256color")),
            ColorDepth::Ansi256
        );
        assert_eq!(
            ColorDepth::from_vars(false, None, Some("xterm")),
            ColorDepth::Ansi16
        );
        assert_eq!(
            adapt(Color::Rgb(255, 0, 0), ColorDepth::Ansi256),
            Color::Indexed(196)
        );
        assert_eq!(
            adapt(Color::Rgb(128, 128, 128), ColorDepth::Ansi256),
            Color::Indexed(244)
        );
        assert_eq!(
            adapt(Color::Rgb(250, 10, 10), ColorDepth::Ansi16),
            Color::LightRed
        );
        assert_eq!(adapt(Color::Rgb(1, 2, 3), ColorDepth::None), Color::Reset);
        assert_eq!(adapt(Color::Red, ColorDepth::None), Color::Reset);
    }
}
