// `sqlx::migrate!` embeds `migrations/` at compile time, but cargo does not see a new file
// there: without this, adding a migration leaves a binary that never applies it.
fn main() {
    println!("cargo::rerun-if-changed=migrations");
}
