//! `hashsieve manpages` and `hashsieve completions` against the real binary's `--help`.

mod manual_support;

use std::path::Path;

fn hashsieve() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_hashsieve"))
}

#[test]
fn every_command_has_a_man_page_saying_what_its_help_says() {
    manual_support::man_pages_agree_with_help(hashsieve(), &["manpages"], "1");
}

#[test]
fn the_bash_completion_loads_and_offers_every_subcommand() {
    manual_support::bash_completion_offers_the_commands(hashsieve(), &["completions", "bash"]);
}
