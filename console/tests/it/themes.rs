//! Every theme file shipped in `themes/` parses, sets only known keys, and differs from the
//! others; every built-in theme is one of those files.

use std::path::Path;

use amal_console::theme::{BUILTIN, ColorDepth, Theme};

#[test]
fn every_theme_file_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../themes");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let name = path.file_stem().unwrap().to_str().unwrap().to_string();
            let (theme, err) = Theme::load(&name, Some(&dir), ColorDepth::TrueColor);
            assert!(err.is_none(), "{}", err.unwrap());
            assert_eq!(theme.name, name);
            names.push(name);
        }
    }
    names.sort();
    let mut builtin: Vec<String> = BUILTIN.iter().map(|(n, _)| n.to_string()).collect();
    builtin.sort();
    assert_eq!(names, builtin, "themes/ and the built-in list must agree");
    assert!(names.len() >= 4);
}
