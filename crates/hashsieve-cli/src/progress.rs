//! A progress bar on standard error, drawn only for a person watching a long run.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Runs with fewer inputs than this finish before a bar would be worth reading.
const MIN_ITEMS_FOR_BAR: u64 = 32;

/// A bar counting `total` items, hidden when stderr is not a terminal (indicatif checks) or
/// when the run is short.
pub fn bar(total: u64, what: &str) -> ProgressBar {
    if total < MIN_ITEMS_FOR_BAR {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    let template =
        format!("{{elapsed_precise}} [{{wide_bar}}] {{pos}}/{{len}} {what} ({{per_sec}}, eta {{eta}})");
    bar.set_style(ProgressStyle::with_template(&template).expect("template is valid").progress_chars("=> "));
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}
