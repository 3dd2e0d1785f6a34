//! Rebuilds the crate when a migration is added: `sqlx::migrate!` embeds the migration files,
//! but cargo only notices changes to files it already knows.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
