//! Edited copies: what happens to a picture between one report and the next as it is passed
//! around and uploaded again. The strengths are a re-uploader's, not an adversary's: a site
//! scaling it down, re-encoding it, someone trimming the edges, flipping it, or brightening it.

use std::fmt;

use image::RgbImage;
use image::imageops::{self, FilterType};

use crate::pictures::jpeg;
use crate::rng::Rng;

/// One change to the pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Scaled to this percentage of its width and height.
    Resize { percent: u32 },
    /// This many percent of the width or height cut off each edge.
    Crop { left: u32, top: u32, right: u32, bottom: u32 },
    /// Mirrored left to right.
    Mirror,
    /// Every channel multiplied by 1 + percent / 100, clipped.
    Brightness { percent: i32 },
}

/// An edited copy: its steps, then a JPEG encoding at `quality`, as an upload site stores it.
/// No steps means a plain re-encode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    pub steps: Vec<Step>,
    pub quality: u8,
}

/// What an edited copy is counted as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum EditKind {
    Resize,
    Reencode,
    Crop,
    Mirror,
    Brightness,
    /// Two of resize, crop, mirror and brightness.
    Combination,
}

impl EditKind {
    pub const ALL: [EditKind; 6] = [
        EditKind::Resize,
        EditKind::Reencode,
        EditKind::Crop,
        EditKind::Mirror,
        EditKind::Brightness,
        EditKind::Combination,
    ];

    /// The kinds a single step can be, and so a combination is made of.
    const STEPS: [EditKind; 4] = [EditKind::Resize, EditKind::Crop, EditKind::Mirror, EditKind::Brightness];

    pub fn name(self) -> &'static str {
        match self {
            EditKind::Resize => "resize",
            EditKind::Reencode => "re-encode",
            EditKind::Crop => "crop",
            EditKind::Mirror => "mirror",
            EditKind::Brightness => "brightness",
            EditKind::Combination => "combination",
        }
    }
}

impl Edit {
    /// A random edit: resize and re-encode a fifth each, crop, mirror, brightness and two of
    /// them combined 15% each.
    pub fn random(rng: &mut Rng) -> Edit {
        let kind = rng.weighted(&[
            (EditKind::Resize, 20),
            (EditKind::Reencode, 20),
            (EditKind::Crop, 15),
            (EditKind::Mirror, 15),
            (EditKind::Brightness, 15),
            (EditKind::Combination, 15),
        ]);
        let steps = match kind {
            EditKind::Reencode => Vec::new(),
            EditKind::Combination => {
                let first = rng.below(4);
                let second = (first + 1 + rng.below(3)) % 4;
                vec![Step::random(rng, EditKind::STEPS[first]), Step::random(rng, EditKind::STEPS[second])]
            }
            single => vec![Step::random(rng, single)],
        };
        // A plain re-encode is the lower qualities a site recompresses to; after other edits,
        // what an editor saves at.
        let quality = if steps.is_empty() { rng.between(60, 85) } else { rng.between(75, 92) } as u8;
        Edit { steps, quality }
    }

    pub fn kind(&self) -> EditKind {
        match self.steps.as_slice() {
            [] => EditKind::Reencode,
            [Step::Resize { .. }] => EditKind::Resize,
            [Step::Crop { .. }] => EditKind::Crop,
            [Step::Mirror] => EditKind::Mirror,
            [Step::Brightness { .. }] => EditKind::Brightness,
            _ => EditKind::Combination,
        }
    }

    /// Whether part of the picture is cut off: the edit PDQ survives least.
    pub fn crops(&self) -> bool {
        self.steps.iter().any(|step| matches!(step, Step::Crop { .. }))
    }

    /// The edited copy of the encoded picture `original`.
    pub fn apply(&self, original: &[u8]) -> anyhow::Result<Vec<u8>> {
        let mut image = image::load_from_memory(original)?.to_rgb8();
        for step in &self.steps {
            image = step.apply(image);
        }
        jpeg(&image, self.quality)
    }
}

impl Step {
    /// A step of `kind`, one of [`EditKind::STEPS`].
    fn random(rng: &mut Rng, kind: EditKind) -> Step {
        match kind {
            EditKind::Resize => Step::Resize { percent: rng.between(50, 80) },
            EditKind::Crop => Step::Crop {
                left: rng.between(1, 5),
                top: rng.between(1, 5),
                right: rng.between(1, 5),
                bottom: rng.between(1, 5),
            },
            EditKind::Mirror => Step::Mirror,
            _ => {
                let percent = rng.between(10, 20) as i32;
                Step::Brightness { percent: if rng.chance(0.5) { percent } else { -percent } }
            }
        }
    }

    fn apply(self, image: RgbImage) -> RgbImage {
        let (width, height) = image.dimensions();
        match self {
            Step::Resize { percent } => {
                let scale = |side: u32| (side * percent / 100).max(1);
                imageops::resize(&image, scale(width), scale(height), FilterType::Lanczos3)
            }
            Step::Crop { left, top, right, bottom } => {
                let (x, y) = (width * left / 100, height * top / 100);
                let kept_width = width - x - width * right / 100;
                let kept_height = height - y - height * bottom / 100;
                imageops::crop_imm(&image, x, y, kept_width, kept_height).to_image()
            }
            Step::Mirror => imageops::flip_horizontal(&image),
            Step::Brightness { percent } => {
                let factor = 1.0 + percent as f32 / 100.0;
                let mut image = image;
                for channel in image.iter_mut() {
                    *channel = (*channel as f32 * factor).round().clamp(0.0, 255.0) as u8;
                }
                image
            }
        }
    }
}

impl fmt::Display for Edit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for step in &self.steps {
            match step {
                Step::Resize { percent } => write!(f, "resize {percent}%, ")?,
                Step::Crop { left, top, right, bottom } => {
                    write!(f, "crop {left}/{top}/{right}/{bottom}% (left/top/right/bottom), ")?
                }
                Step::Mirror => write!(f, "mirror, ")?,
                Step::Brightness { percent } => write!(f, "brightness {percent:+}%, ")?,
            }
        }
        write!(f, "JPEG q{}", self.quality)
    }
}
