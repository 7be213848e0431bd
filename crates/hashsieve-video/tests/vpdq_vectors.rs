//! vPDQ against Meta's reference outputs in `tests/vectors/vpdq` (see its README): every copied
//! video's features exactly as vpdq 0.2.5 made them — frame number, timestamp, hash, quality —
//! at one second per hash and at every frame, and every pair of copied videos matched with
//! threatexchange's percentages and decision and with the C++ matcher's percentages.
//! Needs `ffmpeg` and `ffprobe` (Debian's, 5.1: the libraries the vectors were made with).

use std::collections::BTreeMap;
use std::path::PathBuf;

use hashsieve_video::{MatchOptions, MatchRule, VideoOptions, VpdqFeature, hash_video_with, match_videos};

fn vectors() -> PathBuf {
    let dir = hashsieve_testkit::vectors().join("vpdq");
    assert!(dir.is_dir(), "the vPDQ reference vectors are missing: {}", dir.display());
    dir
}

/// CSV rows as maps from header to cell (the vectors quote no cell that these tests read
/// except `videos.csv`'s container, which is skipped by splitting from the right there).
fn rows(name: &str) -> Vec<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(vectors().join(name)).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    lines
        .filter(|l| !l.is_empty())
        .map(|l| header.iter().map(|h| h.to_string()).zip(l.split(',').map(str::to_string)).collect())
        .collect()
}

fn copied() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(vectors().join("videos"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert!(names.len() >= 10, "{names:?}");
    names
}

fn expected(csv: &str) -> BTreeMap<String, Vec<VpdqFeature>> {
    let mut out: BTreeMap<String, Vec<VpdqFeature>> = BTreeMap::new();
    for row in rows(csv) {
        out.entry(row["file"].clone()).or_default().push(VpdqFeature {
            frame_number: row["frame_number"].parse().unwrap(),
            timestamp: row["timestamp_s"].parse().unwrap(),
            pdq: row["pdq_hex"].parse().unwrap(),
            quality: row["quality"].parse().unwrap(),
        });
    }
    out
}

fn hash(name: &str, seconds_per_hash: f64) -> hashsieve_video::VideoHash {
    let bytes = std::fs::read(vectors().join("videos").join(name)).unwrap();
    let options = VideoOptions { seconds_per_hash, ..VideoOptions::default() };
    hash_video_with(&bytes, &options).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn assert_same(name: &str, got: &[VpdqFeature], want: &[VpdqFeature]) {
    assert_eq!(got.len(), want.len(), "{name}: feature count");
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g, w, "{name}: frame {}", w.frame_number);
        assert_eq!(
            g.timestamp.to_bits(),
            w.timestamp.to_bits(),
            "{name}: timestamp of frame {}",
            w.frame_number
        );
    }
}

#[test]
fn features_at_one_second_equal_the_reference_for_every_copied_video() {
    let want = expected("features_spf1.csv");
    for name in copied() {
        let got = hash(&name, 1.0);
        assert_same(&name, &got.features, &want[&name]);
        // Columns after the quoted container name are read from the right.
        let line = std::fs::read_to_string(vectors().join("videos.csv")).unwrap();
        let row: Vec<&str> =
            line.lines().find(|l| l.starts_with(&format!("{name},"))).unwrap().split(',').collect();
        let decoded = row[row.len() - 7];
        let frame_mod = row[row.len() - 8];
        assert_eq!(got.info.width.to_string(), row[row.len() - 16], "{name}: width");
        assert_eq!(got.info.frame_mod.to_string(), frame_mod, "{name}: frame_mod");
        assert_eq!(
            (got.info.decoded_frames - got.info.quirk_frames).to_string(),
            decoded,
            "{name}: decoded frames"
        );
    }
}

#[test]
fn features_of_every_frame_equal_the_reference() {
    let want = expected("features_spf0.csv");
    // The odd size with the audio first, the mid-stream black-and-white test patterns, and
    // an H.264 remux whose last two frames vpdq loses (SPEC §2.9).
    for name in [
        "s04_life_333x197.mkv",
        "s09_mptestsrc.webm",
        "s07_slideshow__audiofirst.mkv",
        "s07_slideshow__colortags.mkv",
    ] {
        let got = hash(name, 0.0);
        assert_same(name, &got.features, &want[name]);
    }
    let all = hash_video_with(
        &std::fs::read(vectors().join("videos/s07_slideshow__audiofirst.mkv")).unwrap(),
        &VideoOptions { seconds_per_hash: 0.0, reference_flush_quirk: false, ..VideoOptions::default() },
    )
    .unwrap();
    assert_eq!((all.features.len(), all.info.decoded_frames, all.info.quirk_frames), (300, 300, 0));
}

#[test]
fn pairs_match_as_threatexchange_and_the_cpp_matcher_say() {
    let names = copied();
    let features: BTreeMap<String, Vec<VpdqFeature>> = expected("features_spf1.csv");
    let ours: BTreeMap<String, Vec<VpdqFeature>> =
        names.iter().map(|n| (n.clone(), hash(n, 1.0).features)).collect();
    let cpp = MatchOptions { rule: MatchRule::VpdqCpp, ..MatchOptions::default() };
    let mut compared = 0;
    for row in rows("pairs.csv") {
        let (q, t) = (&row["query"], &row["target"]);
        if !ours.contains_key(q) || !ours.contains_key(t) {
            continue;
        }
        for side in [&ours, &features] {
            let m = match_videos(&side[q], &side[t], &MatchOptions::default());
            assert_eq!(m.query_pct, row["query_match_pct"].parse::<f64>().unwrap(), "{q} vs {t}");
            assert_eq!(m.compared_pct, row["compared_match_pct"].parse::<f64>().unwrap(), "{q} vs {t}");
            assert_eq!(m.is_match.to_string(), row["is_match"], "{q} vs {t}");
            let c = match_videos(&side[q], &side[t], &cpp);
            assert_eq!(format!("{:.2}", c.query_pct), row["cpp_query_match_pct"], "{q} vs {t} (C++)");
            assert_eq!(format!("{:.2}", c.compared_pct), row["cpp_target_match_pct"], "{q} vs {t} (C++)");
        }
        compared += 1;
    }
    assert!(compared >= 20, "only {compared} pairs of copied videos");
}
