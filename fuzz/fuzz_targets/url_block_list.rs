//! Arbitrary text as the URL block list file ICAP rereads (`[icap] block_list`), and as the
//! requests it is asked about: loading must refuse or accept without panicking, and a URL
//! taken from the file is blocked however the request spells it back — normalisation is
//! idempotent, so the key stored is the key looked up.
#![no_main]

use hashsieve_daemon::blocked_urls::{Blocked, BlockedUrls};
use hashsieve_triage::location::normalise;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let text = String::from_utf8_lossy(bytes);
    let Ok(list) = BlockedUrls::parse(&text) else { return };
    for line in text.lines().take(64) {
        let _ = list.blocks("GET", line, Some("fuzz.example"));
        let _ = list.blocks("CONNECT", line, None);
        let Ok(url) = normalise(line.trim()) else { continue };
        assert_eq!(normalise(url.as_str()).as_ref().map(|again| again.as_str()), Ok(url.as_str()));
        if !text.trim_start().starts_with('{') {
            assert_eq!(list.blocks("GET", url.as_str(), None), Some(Blocked::Url), "{url}");
        }
    }
});
