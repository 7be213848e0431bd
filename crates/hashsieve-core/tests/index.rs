//! The index against independent references: the PDQ matching vectors (tests/vectors), and brute force
//! over the same entries.

use std::collections::BTreeSet;

use hashsieve_core::hashes::HashKind;
use hashsieve_core::import::ImportedEntry;
use hashsieve_core::index::{
    Index, IndexBuilder, IndexError, ListOptions, Metric, SearchOptions, VectorDistance,
};
use hashsieve_core::matcher::{MatchOutcome, Matcher};
use hashsieve_testkit::Rng;
use proptest::prelude::*;

const MATCHING: &str = "../../tests/vectors/pdq/matching";

fn lines(name: &str) -> Vec<String> {
    let text =
        std::fs::read_to_string(format!("{MATCHING}/{name}")).expect("the PDQ vectors in tests/vectors");
    text.lines().map(str::to_string).filter(|l| !l.is_empty()).collect()
}

/// (needle index, haystack index, distance) triples from an expected-matches file.
fn expected(name: &str) -> BTreeSet<(usize, usize, u32)> {
    lines(name)
        .iter()
        .skip(1)
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            (f[0].parse().unwrap(), f[2].parse().unwrap(), f[4].parse().unwrap())
        })
        .collect()
}

#[test]
fn shared_matching_vectors_at_31_and_63() {
    let haystack = lines("haystack.txt");
    let needles = lines("needles.txt");
    let file_thresholds = [(31, "expected-matches-31.csv"), (63, "expected-matches-63.csv")];
    for (threshold, file) in file_thresholds {
        // Once with the list's own threshold, once with the default list and an override.
        let mut own = ListOptions::new("vectors");
        own.pdq_threshold = threshold;
        for (options, search) in [
            (own, SearchOptions::default()),
            (ListOptions::new("vectors"), SearchOptions { threshold: Some(threshold) }),
        ] {
            let mut builder = IndexBuilder::new();
            let list = builder.add_list(options).unwrap();
            for (i, hash) in haystack.iter().enumerate() {
                let value = HashKind::Pdq.parse_value(hash).unwrap();
                builder.add(list, &ImportedEntry::new(HashKind::Pdq, value).with_id(i.to_string())).unwrap();
            }
            let index = Index::open(builder.to_vec()).unwrap();
            index.verify().unwrap();
            let mut found = BTreeSet::new();
            let values: Vec<Vec<u8>> =
                needles.iter().map(|n| HashKind::Pdq.parse_value(n).unwrap()).collect();
            let slices: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
            let batch = index.search_many(HashKind::Pdq, &slices, &search);
            for (n, value) in values.iter().enumerate() {
                assert_eq!(
                    batch[n],
                    index.search(HashKind::Pdq, value, &search),
                    "a batch answers as one by one"
                );
                for hit in &batch[n] {
                    let id: usize = index.record(hit).unwrap().id.unwrap().parse().unwrap();
                    assert_eq!(hex::encode(index.value(hit).unwrap()), haystack[id]);
                    found.insert((n, id, hit.distance));
                }
            }
            assert_eq!(found, expected(file), "threshold {threshold}");
        }
    }
    assert_eq!(expected("expected-matches-31.csv").len(), 250);
    assert_eq!(expected("expected-matches-63.csv").len(), 352);
}

fn random_value(kind: HashKind, rng: &mut Rng) -> Vec<u8> {
    let mut value = vec![0; kind.value_len()];
    rng.fill(&mut value);
    value
}

#[test]
fn exact_lookups_equal_brute_force_across_lists() {
    let mut rng = Rng::new(7);
    let mut builder = IndexBuilder::new();
    let lists =
        [builder.add_list(ListOptions::new("a")).unwrap(), builder.add_list(ListOptions::new("b")).unwrap()];
    let mut entries = Vec::new();
    for kind in [HashKind::Md5, HashKind::Sha1, HashKind::Sha256, HashKind::Blake3] {
        for i in 0..3000 {
            // Every third value appears in both lists; some share a long prefix.
            let mut value = random_value(kind, &mut rng);
            if i % 5 == 0 {
                value[..6].fill(0xab);
            }
            for (l, &list) in lists.iter().enumerate() {
                if i % 3 == 0 || i % 2 == l {
                    let entry = ImportedEntry::new(kind, value.clone()).with_id(format!("{l}-{i}"));
                    builder.add(list, &entry).unwrap();
                    entries.push((kind, value.clone(), format!("{l}-{i}")));
                }
            }
        }
    }
    let index = Index::open(builder.to_vec()).unwrap();
    index.verify().unwrap();
    let mut queries: Vec<(HashKind, Vec<u8>)> =
        entries.iter().step_by(7).map(|(k, v, _)| (*k, v.clone())).collect();
    for kind in [HashKind::Md5, HashKind::Sha256] {
        queries.extend((0..200).map(|_| (kind, random_value(kind, &mut rng))));
    }
    for (kind, value) in queries {
        let found: BTreeSet<String> = index
            .search(kind, &value, &SearchOptions::default())
            .iter()
            .map(|hit| index.record(hit).unwrap().id.unwrap().to_string())
            .collect();
        let expected: BTreeSet<String> = entries
            .iter()
            .filter(|(k, v, _)| *k == kind && *v == value)
            .map(|(_, _, id)| id.clone())
            .collect();
        assert_eq!(found, expected);
    }
}

#[test]
fn each_list_matches_at_its_own_threshold() {
    let mut rng = Rng::new(99);
    let mut builder = IndexBuilder::new();
    let mut strict = ListOptions::new("strict");
    strict.pdq_threshold = 10;
    let mut loose = ListOptions::new("loose");
    loose.pdq_threshold = 40;
    let (strict, loose) = (builder.add_list(strict).unwrap(), builder.add_list(loose).unwrap());
    let base = random_value(HashKind::Pdq, &mut rng);
    let mut entries = Vec::new();
    for i in 0..400u32 {
        let mut value = base.clone();
        for k in 0..i % 48 {
            let bit = (i * 31 + k * 17) % 256;
            value[bit as usize / 8] ^= 1 << (bit % 8);
        }
        let (list, threshold) = if i % 2 == 0 { (strict, 10) } else { (loose, 40) };
        builder.add(list, &ImportedEntry::new(HashKind::Pdq, value.clone()).with_id(i.to_string())).unwrap();
        entries.push((value, threshold, i.to_string()));
    }
    let index = Index::open(builder.to_vec()).unwrap();
    let distance = |a: &[u8], b: &[u8]| a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum::<u32>();
    let found: BTreeSet<String> = index
        .search(HashKind::Pdq, &base, &SearchOptions::default())
        .iter()
        .map(|hit| index.record(hit).unwrap().id.unwrap().to_string())
        .collect();
    let expected: BTreeSet<String> =
        entries.iter().filter(|(v, t, _)| distance(v, &base) <= *t).map(|(_, _, id)| id.clone()).collect();
    assert_eq!(found, expected);
    assert!(found.len() > 20 && found.len() < 400, "the test exercises both thresholds");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn photodna_search_equals_brute_force(
        metric in prop_oneof![Just(Metric::L1), Just(Metric::L2)],
        threshold in 0u32..3000,
        seed in any::<u64>(),
        count in 1usize..300,
    ) {
        let mut rng = Rng::new(seed);
        let distance = VectorDistance { metric, threshold };
        let mut options = ListOptions::new("pdna");
        options.photodna = Some(distance);
        let mut builder = IndexBuilder::new();
        let list = builder.add_list(options).unwrap();
        let query = random_value(HashKind::PhotoDna, &mut rng);
        let mut entries = Vec::new();
        for i in 0..count {
            // Near copies of the query at growing distances, and random vectors.
            let mut value = if i % 2 == 0 { query.clone() } else { random_value(HashKind::PhotoDna, &mut rng) };
            for (j, byte) in value.iter_mut().enumerate().take(i % 144) {
                *byte = byte.wrapping_add((i * j) as u8 % 13);
            }
            builder.add(list, &ImportedEntry::new(HashKind::PhotoDna, value.clone()).with_id(i.to_string())).unwrap();
            entries.push((value, i.to_string()));
        }
        let index = Index::open(builder.to_vec()).unwrap();
        index.verify().unwrap();
        let found: BTreeSet<(String, u32)> = index
            .search(HashKind::PhotoDna, &query, &SearchOptions::default())
            .iter()
            .map(|hit| (index.record(hit).unwrap().id.unwrap().to_string(), hit.distance))
            .collect();
        let reference = |v: &[u8]| -> Option<u32> {
            let diffs = v.iter().zip(&query).map(|(&a, &b)| (f64::from(a) - f64::from(b)).abs());
            let d = match metric { Metric::L1 => diffs.sum::<f64>(), Metric::L2 => diffs.map(|d| d * d).sum::<f64>().sqrt() };
            (d <= f64::from(threshold)).then_some(d.floor() as u32)
        };
        let expected: BTreeSet<(String, u32)> =
            entries.iter().filter_map(|(v, id)| reference(v).map(|d| (id.clone(), d))).collect();
        prop_assert_eq!(found, expected);
    }
}

#[test]
fn photodna_needs_a_declared_distance() {
    let mut builder = IndexBuilder::new();
    let list = builder.add_list(ListOptions::new("no-distance")).unwrap();
    let err = builder.add(list, &ImportedEntry::new(HashKind::PhotoDna, vec![0; 144])).unwrap_err();
    assert!(matches!(err, IndexError::Invalid(ref m) if m.contains("no declared distance")), "{err}");
}

/// A small index of three kinds, and one listed value of each kind.
fn small_index() -> (Vec<u8>, Vec<(HashKind, Vec<u8>)>) {
    let mut rng = Rng::new(3);
    let mut builder = IndexBuilder::new();
    let list = builder.add_list(ListOptions::new("small")).unwrap();
    let mut listed = Vec::new();
    for kind in [HashKind::Md5, HashKind::Pdq, HashKind::DHash] {
        for i in 0..40 {
            let value = random_value(kind, &mut rng);
            let entry = ImportedEntry::new(kind, value.clone()).with_id(format!("e{i}"));
            builder.add(list, &entry.with_category("cat")).unwrap();
            if i == 0 {
                listed.push((kind, value));
            }
        }
    }
    (builder.to_vec(), listed)
}

#[test]
fn truncated_or_corrupt_indexes_never_panic() {
    let (bytes, listed) = small_index();
    for len in 0..bytes.len() {
        assert!(Index::open(&bytes[..len]).is_err(), "truncated to {len} opened");
    }
    // Flip bits everywhere: opening may succeed (sections are checked by `verify`), but every
    // search must return without panicking, and unless `verify` notices, answers are unchanged.
    for at in 0..bytes.len() {
        let mut corrupt = bytes.clone();
        corrupt[at] ^= 0x5a;
        let Ok(index) = Index::open(&corrupt[..]) else { continue };
        let answers: Vec<usize> = listed
            .iter()
            .map(|(kind, value)| {
                let hits = index.search(*kind, value, &SearchOptions { threshold: Some(64) });
                for hit in &hits {
                    let _ = (index.record(hit), index.value(hit), index.list(hit));
                }
                hits.len()
            })
            .collect();
        if index.verify().is_ok() {
            let clean = Index::open(&bytes[..]).unwrap();
            let expected: Vec<usize> = listed
                .iter()
                .map(|(kind, value)| clean.search(*kind, value, &SearchOptions { threshold: Some(64) }).len())
                .collect();
            assert_eq!(answers, expected, "flip at {at} passed verify but changed answers");
        }
    }
}

#[test]
fn a_rotated_copy_matches_through_the_dihedral_variants() {
    let image = image::open("../../samples/images/labelme-q0291.png").unwrap();
    let mut rotated = Vec::new();
    image.rotate90().write_to(&mut std::io::Cursor::new(&mut rotated), image::ImageFormat::Png).unwrap();
    let original = std::fs::read("../../samples/images/labelme-q0291.png").unwrap();

    let signals = hashsieve_core::signals::Signals::from_bytes(
        &rotated,
        &hashsieve_core::signals::SignalOptions::default(),
    );
    let pdq = signals.pdq.unwrap();
    let mut builder = IndexBuilder::new();
    let list = builder.add_list(ListOptions::new("rotations")).unwrap();
    builder.add(list, &ImportedEntry::new(HashKind::Pdq, pdq.hash.0.to_vec()).with_id("rotated")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rotations.hsidx");
    builder.write_to_path(&path).unwrap();
    let matcher = Matcher::open(&path).unwrap();

    let verdict = matcher.check_bytes(&original);
    assert_eq!(verdict.outcome, MatchOutcome::NearKnown);
    assert_eq!(verdict.matches.len(), 1);
    assert!(verdict.matches[0].distance <= 31);
    assert!(verdict.matches[0].variant.is_some(), "found through a rotation, not the original");
    let plain = hashsieve_core::matcher::MatchOptions { dihedral: false, ..Default::default() };
    let matcher = matcher.with_options(plain);
    let verdict = matcher.check_bytes(&original);
    assert_eq!(verdict.outcome, MatchOutcome::Unknown, "without the variants the rotation is not found");
}
