//! Each analyst's own defaults for the page, kept in the triage store
//! ([`Triage::preferences`]) as JSON, so that they follow the analyst across sessions,
//! browsers and restarts.
//!
//! Only the gentler defaults can be chosen: a preview starts at most sharp greyscale (never in
//! colour or at full size), and is one of [`SIZES`] (or the hotline's own `preview_pixels`)
//! on its longest side. Every view past the blurred step counts as a reveal, whatever the
//! analyst's default.

use hashsieve_core::preview::RevealStep;
use hashsieve_triage::{Triage, TriageError};
use serde::{Deserialize, Serialize};

use crate::config::ReviewUiConfig;

/// The steps a preview may start at.
pub(crate) const FIRST_STEPS: [RevealStep; 3] =
    [RevealStep::Blurred, RevealStep::Softened, RevealStep::Greyscale];

/// The preview sizes offered, longest side in pixels.
pub(crate) const SIZES: [u32; 5] = [128, 192, 256, 384, 512];

/// An analyst's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Preferences {
    /// Where every preview starts, and goes back to when the analyst moves on.
    pub(crate) first_step: RevealStep,
    /// The longest side of a preview before full size.
    pub(crate) preview_pixels: u32,
}

/// As stored: names, so that the record reads the same whatever the code's types become.
#[derive(Serialize, Deserialize)]
struct Stored {
    first_step: String,
    preview_pixels: u32,
}

impl Preferences {
    /// The hotline's defaults, from `[review_ui]`.
    pub(crate) fn defaults(config: &ReviewUiConfig) -> Preferences {
        Preferences { first_step: RevealStep::FIRST, preview_pixels: config.preview_pixels }
    }

    /// `analyst`'s, or the defaults if they saved none (or what they saved is no longer
    /// offered).
    pub(crate) fn of(
        store: &Triage,
        analyst: &str,
        config: &ReviewUiConfig,
    ) -> Result<Preferences, TriageError> {
        let defaults = Preferences::defaults(config);
        let Some(bytes) = store.preferences(analyst)? else { return Ok(defaults) };
        let Ok(stored) = serde_json::from_slice::<Stored>(&bytes) else { return Ok(defaults) };
        Ok(Preferences::checked(&stored.first_step, stored.preview_pixels, config).unwrap_or(defaults))
    }

    /// Preferences from their names, if they are among those offered.
    pub(crate) fn checked(
        first_step: &str,
        preview_pixels: u32,
        config: &ReviewUiConfig,
    ) -> Option<Preferences> {
        let first_step: RevealStep = first_step.parse().ok()?;
        let offered = SIZES.contains(&preview_pixels) || preview_pixels == config.preview_pixels;
        (FIRST_STEPS.contains(&first_step) && offered).then_some(Preferences { first_step, preview_pixels })
    }

    /// Saves them as `analyst`'s.
    pub(crate) fn save(self, store: &mut Triage, analyst: &str) -> Result<(), TriageError> {
        let stored =
            Stored { first_step: self.first_step.as_str().to_string(), preview_pixels: self.preview_pixels };
        store.set_preferences(analyst, &serde_json::to_vec(&stored).expect("names and numbers serialise"))
    }

    /// The steps a preview goes through for this analyst, in order.
    pub(crate) fn steps(self) -> impl Iterator<Item = RevealStep> {
        RevealStep::ALL.into_iter().filter(move |step| *step >= self.first_step)
    }
}
