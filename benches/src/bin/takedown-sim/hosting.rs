//! The simulated hosting providers: each a loopback address of its own (127.0.1.1, 127.0.2.1
//! …) in a network of its own, in a country of its own, as the generated IP databases say;
//! each reported URL a web server of its own on its provider's address (so that one URL can
//! stop listening while the others go on), serving a benign generated picture until its
//! seeded removal time, then answering 404 or 410, serving other content, refusing
//! connections — or never removing it.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hashsieve_testkit::mmdb::{self, Network};
use hashsieve_testkit::origin::{Behaviour, Origin};

use hashsieve_testkit::Rng;

/// A hosting provider.
pub struct Provider {
    pub name: &'static str,
    pub ip: Ipv4Addr,
    pub country: &'static str,
    pub asn: u32,
    /// Its abuse desk takes notices by webhook (the home providers').
    pub webhook: bool,
}

/// Two providers at home (NL), two in a country with a partner hotline (DE), two in one
/// without (US).
pub const PROVIDERS: [Provider; 6] = [
    Provider {
        name: "Polder Hosting",
        ip: Ipv4Addr::new(127, 0, 1, 1),
        country: "NL",
        asn: 64501,
        webhook: true,
    },
    Provider {
        name: "Dijk Cloud",
        ip: Ipv4Addr::new(127, 0, 2, 1),
        country: "NL",
        asn: 64502,
        webhook: true,
    },
    Provider {
        name: "Rhein Server",
        ip: Ipv4Addr::new(127, 0, 3, 1),
        country: "DE",
        asn: 64503,
        webhook: false,
    },
    Provider {
        name: "Spree Hosting",
        ip: Ipv4Addr::new(127, 0, 4, 1),
        country: "DE",
        asn: 64504,
        webhook: false,
    },
    Provider {
        name: "Prairie Host",
        ip: Ipv4Addr::new(127, 0, 5, 1),
        country: "US",
        asn: 64505,
        webhook: false,
    },
    Provider {
        name: "Bayou Cloud",
        ip: Ipv4Addr::new(127, 0, 6, 1),
        country: "US",
        asn: 64506,
        webhook: false,
    },
];

pub const HOME: &str = "NL";
pub const PARTNER: (&str, &str) = ("DE", "Partner hotline DE");

/// How a URL's content goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    NotFound,
    Gone,
    OtherContent,
    Refused,
    Never,
}

impl Removal {
    pub fn name(self) -> &'static str {
        match self {
            Removal::NotFound => "404",
            Removal::Gone => "410",
            Removal::OtherContent => "other content",
            Removal::Refused => "refused",
            Removal::Never => "never",
        }
    }
}

/// One reported URL.
pub struct Hosted {
    pub url: String,
    pub provider: usize,
    pub removal: Removal,
    /// After the verdicts.
    pub delay: Duration,
    pub origin: Origin,
    /// What it serves after an `OtherContent` removal.
    other: Vec<u8>,
    /// When it was in fact removed (ms since the epoch), once it is.
    pub removed_ms: Option<u64>,
}

impl Hosted {
    /// Takes the content down as planned; records the time.
    pub fn remove(&mut self) {
        match self.removal {
            Removal::NotFound => self.origin.set(Behaviour::Status(404)),
            Removal::Gone => self.origin.set(Behaviour::Status(410)),
            Removal::OtherContent => self.origin.set(Behaviour::Serve(std::mem::take(&mut self.other))),
            Removal::Refused => self.origin.close(),
            Removal::Never => return,
        }
        self.removed_ms = Some(now_ms());
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_millis() as u64)
}

/// A benign generated picture as a JPEG, in memory only.
pub fn jpeg(seed: u64) -> anyhow::Result<Vec<u8>> {
    let (width, height) = (320, 240);
    let rgb = hashsieve_testkit::picture(seed, width, height);
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 88).encode(
        &rgb,
        width as u32,
        height as u32,
        image::ExtendedColorType::Rgb8,
    )?;
    Ok(out)
}

/// `count` URLs spread over the providers, showing `pictures` distinct pictures, each removed
/// (or not) after a seeded delay of 2 s to `window`.
pub fn plan(count: usize, pictures: usize, window: Duration, seed: u64) -> anyhow::Result<Vec<Hosted>> {
    let mut rng = Rng::new(seed ^ 0x7a6b_3c2d);
    let bodies: Vec<Vec<u8>> =
        (0..pictures as u64).map(|p| jpeg(seed.wrapping_mul(1000) + p)).collect::<Result<_, _>>()?;
    let mut hosted = Vec::with_capacity(count);
    for i in 0..count {
        let provider = rng.below(PROVIDERS.len() as u64) as usize;
        let picture = i % pictures;
        // 25% 404, 20% 410, 20% other content, 15% refused, 20% never.
        let removal = match rng.below(100) {
            0..25 => Removal::NotFound,
            25..45 => Removal::Gone,
            45..65 => Removal::OtherContent,
            65..80 => Removal::Refused,
            _ => Removal::Never,
        };
        let window_ms = (window.as_millis() as u64).max(3000);
        let delay = Duration::from_millis(2000 + rng.below(window_ms - 1999));
        let other = if removal == Removal::OtherContent {
            jpeg(seed.wrapping_mul(1000) + 500 + i as u64)?
        } else {
            Vec::new()
        };
        let origin =
            Origin::start_on(IpAddr::V4(PROVIDERS[provider].ip), Behaviour::Serve(bodies[picture].clone()));
        let url = origin.url(&format!("/u{i}.jpg"));
        hosted.push(Hosted { url, provider, removal, delay, origin, other, removed_ms: None });
    }
    Ok(hosted)
}

/// The hotline's IP databases for these providers (and 127.0.0.0/24, the hotline's own
/// machines, at home), written to `dir`; the `ip_databases` line.
pub fn ip_databases(dir: &Path) -> anyhow::Result<String> {
    let mut countries = vec![(Network::new(Ipv4Addr::new(127, 0, 0, 0), 24), HOME)];
    let mut networks = vec![(Network::new(Ipv4Addr::new(127, 0, 0, 0), 24), 64500, "Hotline NL")];
    for provider in &PROVIDERS {
        countries.push((Network::new(provider.ip, 24), provider.country));
        networks.push((Network::new(provider.ip, 24), provider.asn, provider.name));
    }
    let (country, asn) = (dir.join("country.mmdb"), dir.join("asn.mmdb"));
    std::fs::write(&country, mmdb::write_country_db(&countries))?;
    std::fs::write(&asn, mmdb::write_asn_db(&networks))?;
    Ok(format!("home_country = \"{HOME}\"\nip_databases = [{country:?}, {asn:?}]"))
}

/// `[takedown.partners]` and the home providers' `[[takedown.contacts]]`, their notices posted
/// to `receiver`.
pub fn contacts(receiver: &Origin) -> String {
    let mut tables = format!("[takedown.partners]\n{} = \"{}\"\n", PARTNER.0, PARTNER.1);
    for provider in PROVIDERS.iter().filter(|provider| provider.webhook) {
        tables += &format!(
            "[[takedown.contacts]]\nname = \"{} abuse desk\"\nhost = \"{}\"\nwebhook = \"{}\"\n",
            provider.name,
            provider.ip,
            receiver.url(&format!("/notices/{}", provider.asn)),
        );
    }
    tables
}
