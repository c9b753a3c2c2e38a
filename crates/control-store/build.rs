//! Rebuilds the crate when a migration is added: `sqlx::migrate!` embeds the
//! migration directories at compile time but does not watch them for new files.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
