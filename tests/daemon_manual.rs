//! `hashsieved --manpages` and `--completions` against the real binary's `--help`.

mod manual_support;

use std::path::Path;

fn hashsieved() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_hashsieved"))
}

#[test]
fn the_man_page_says_what_the_help_says() {
    manual_support::man_pages_agree_with_help(hashsieved(), &["--manpages"], "8");
}

#[test]
fn the_bash_completion_loads_and_offers_every_option() {
    manual_support::bash_completion_offers_the_commands(hashsieved(), &["--completions", "bash"]);
}
