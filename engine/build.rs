//! Rebuilds the engine when a migration changes: `sqlx::migrate!` embeds `migrations/` at
//! compile time, and without this cargo does not notice an edited or added migration.

fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
