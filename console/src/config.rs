//! The console's configuration file: `AMAL_CONSOLE_CONFIG`, else
//! `$XDG_CONFIG_HOME/amal/console.toml` (`~/.config/amal/console.toml`). Optional; every key is
//! optional:
//!
//! ```toml
//! theme = "light"    # used when the staff member has saved no theme of their own
//! bidi = false       # the terminal reorders Arabic itself
//! bell = false       # no terminal bell for a new crisis ticket (the banner stays)
//! ```

use std::path::{Path, PathBuf};

/// What the configuration file sets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsoleConfig {
    /// The theme to use when none is saved.
    pub theme: Option<String>,
    /// Arabic reordering on or off.
    pub bidi: Option<bool>,
    /// The terminal bell for a new crisis ticket on or off.
    pub bell: Option<bool>,
}

/// Where the configuration file is looked for.
pub fn path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("AMAL_CONSOLE_CONFIG") {
        return Some(PathBuf::from(p));
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("amal").join("console.toml"))
}

/// Reads the file at `path`; a missing file is an empty configuration. A file that does not
/// parse, or names an unknown key or a wrong type, is an error naming the file and the key.
pub fn load(path: &Path) -> Result<ConsoleConfig, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ConsoleConfig::default()),
        Err(e) => return Err(format!("{}: cannot be read: {e}", path.display())),
    };
    let file = path.display();
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| format!("{file}: not valid TOML: {}", e.message()))?;
    let mut config = ConsoleConfig::default();
    for (key, value) in &table {
        match key.as_str() {
            "theme" => {
                config.theme = Some(
                    value
                        .as_str()
                        .ok_or_else(|| format!("{file}: key `theme` must be a string"))?
                        .to_string(),
                )
            }
            "bidi" => {
                config.bidi = Some(
                    value
                        .as_bool()
                        .ok_or_else(|| format!("{file}: key `bidi` must be true or false"))?,
                )
            }
            "bell" => {
                config.bell = Some(
                    value
                        .as_bool()
                        .ok_or_else(|| format!("{file}: key `bell` must be true or false"))?,
                )
            }
            other => {
                return Err(format!(
                    "{file}: unknown key `{other}` (expected theme, bidi, bell)"
                ));
            }
        }
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_known_keys_and_names_bad_ones() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("console.toml");
        assert_eq!(load(&p).unwrap(), ConsoleConfig::default());
        std::fs::write(&p, "theme = \"light\"\nbidi = false\n").unwrap();
        assert_eq!(
            load(&p).unwrap(),
            ConsoleConfig {
                theme: Some("light".into()),
                bidi: Some(false),
                bell: None,
            }
        );
        std::fs::write(&p, "colour = \"red\"\n").unwrap();
        let e = load(&p).unwrap_err();
        assert!(e.contains("console.toml") && e.contains("`colour`"), "{e}");
        std::fs::write(&p, "bidi = \"no\"\n").unwrap();
        assert!(load(&p).unwrap_err().contains("`bidi`"));
        std::fs::write(&p, "bell = false\n").unwrap();
        assert_eq!(load(&p).unwrap().bell, Some(false));
    }
}
