//! Test IP databases in the MaxMind DB format: [`write_country_db`] and [`write_asn_db`] turn a
//! few networks into the bytes of a file that any MaxMind DB reader opens, so that tests and
//! benchmarks never need (or ship) a real GeoLite2 or DB-IP database.
//!
//! ```
//! use hashsieve_testkit::mmdb::{Network, write_asn_db, write_country_db};
//!
//! let loopback = Network::new([127, 0, 0, 0], 24);
//! let countries = write_country_db(&[(loopback, "NL"), ("::1/128".parse()?, "NL")]);
//! let networks = write_asn_db(&[(Network::new([127, 0, 1, 0], 24), 64501, "Test Hosting DE")]);
//!
//! let reader = maxminddb::Reader::from_source(countries)?;
//! let found = reader.lookup("127.0.0.9".parse()?)?;
//! assert_eq!(found.decode_path(&maxminddb::path!["country", "iso_code"])?, Some("NL"));
//! assert!(!reader.lookup("127.0.1.9".parse()?)?.has_data());
//! // A test of the daemon writes the bytes to a file in its temporary directory.
//! assert!(maxminddb::Reader::from_source(networks)?.lookup("127.0.1.9".parse()?)?.has_data());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Why written by hand
//!
//! The two writer crates were weighed first. `maxminddb-writer` still depends on thiserror 1
//! beside the workspace's 2 and was last tested against reader 0.23 (triage reads with 0.32);
//! `mmdb-writer` has had one release and brings a proc-macro builder stack (`bon`) into every
//! build of the tests. What the tests need is small, and the format simple enough to write in a
//! page.
//!
//! # The format, as written here
//!
//! A file is three sections (the MaxMind DB format 2.0):
//!
//! 1. **Search tree**: a binary trie over the 128 bits of an IPv6 address, most significant
//!    first. A node is two records (left for a 0 bit, right for a 1); each record is 24 bits, or
//!    32 when the tree and data outgrow 24, big-endian. A record holds a node number
//!    (`< node_count`), "no data" (`== node_count`), or a pointer into the data section
//!    (`node_count + 16 + offset`). Node 0 is the root. IPv4 networks live at `::a.b.c.d/96+n`,
//!    which is where readers look up an IPv4 address in an IPv6 database.
//! 2. **Data section**, after 16 zero bytes: the records, each stored once however many
//!    networks share it. A value is a control byte (type in the top 3 bits, size in the low 5:
//!    below 29 the size itself, 29/30/31 for one/two/three size bytes after it, the sizes from
//!    29, 285 and 65,821 on), then for types above 7 an extended-type byte (type − 7), then the
//!    size bytes, then the payload. Used here: utf8 string (2), uint16 (5), uint32 (6), map (7,
//!    size = pairs, each a string key and a value), uint64 (9, extended) and array (11,
//!    extended). Integers are big-endian without leading zero bytes (0 has no payload).
//! 3. **Metadata**, after the marker `\xAB\xCD\xEFMaxMind.com`: a map of `node_count`,
//!    `record_size`, `ip_version` (6), `database_type`, `languages`, `description`, the format
//!    version 2.0 and `build_epoch` ([`BUILD_EPOCH`], fixed so that the bytes are reproducible).
//!
//! Where networks overlap, the more specific one wins inside the wider one, whatever the order
//! they are given in.

use std::collections::HashMap;
use std::net::IpAddr;
use std::str::FromStr;

/// The `database_type` of [`write_country_db`]'s files (real ones say "GeoLite2-Country").
pub const COUNTRY_DATABASE_TYPE: &str = "hashsieve-test-Country";
/// The `database_type` of [`write_asn_db`]'s files (real ones say "GeoLite2-ASN").
pub const ASN_DATABASE_TYPE: &str = "hashsieve-test-ASN";
/// The `build_epoch` written into every file: 2024-01-01T00:00:00Z.
pub const BUILD_EPOCH: u64 = 1_704_067_200;

const METADATA_MARKER: &[u8] = b"\xAB\xCD\xEFMaxMind.com";
const DATA_SECTION_SEPARATOR: [u8; 16] = [0; 16];

/// An IPv4 or IPv6 network: an address and how many of its leading bits are the network's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    /// Any address in the network (bits past the prefix are ignored).
    pub address: IpAddr,
    /// The prefix length: 1 to 32 for IPv4, 1 to 128 for IPv6.
    pub prefix_len: u8,
}

impl Network {
    /// The network of `address` with a `prefix_len`-bit prefix; panics on a prefix of 0 (which
    /// the tree has no record for) or longer than the address.
    pub fn new(address: impl Into<IpAddr>, prefix_len: u8) -> Network {
        let address = address.into();
        let bits = if address.is_ipv4() { 32 } else { 128 };
        assert!((1..=bits).contains(&prefix_len), "prefix /{prefix_len} of {address}");
        Network { address, prefix_len }
    }

    /// The network's path in the IPv6 tree: the address as 128 bits and the prefix length there.
    fn tree_path(self) -> (u128, u8) {
        match self.address {
            IpAddr::V4(v4) => (u128::from(u32::from(v4)), self.prefix_len + 96),
            IpAddr::V6(v6) => (u128::from(v6), self.prefix_len),
        }
    }
}

/// Parses "127.0.0.0/24" or "::1/128".
impl FromStr for Network {
    type Err = String;

    fn from_str(text: &str) -> Result<Network, String> {
        let (address, prefix_len) = text.split_once('/').ok_or_else(|| format!("{text:?}: no /prefix"))?;
        let address: IpAddr = address.parse().map_err(|err| format!("{text:?}: {err}"))?;
        let prefix_len: u8 = prefix_len.parse().map_err(|err| format!("{text:?}: {err}"))?;
        Ok(Network::new(address, prefix_len))
    }
}

/// A country database: each network's record is `{"country": {"iso_code": code}}`, as in
/// GeoLite2-Country and DB-IP's country and city databases.
pub fn write_country_db(networks: &[(Network, &str)]) -> Vec<u8> {
    let records = networks.iter().map(|&(network, code)| {
        (network, Value::Map(vec![("country", Value::Map(vec![("iso_code", Value::Text(code.into()))]))]))
    });
    write_db(COUNTRY_DATABASE_TYPE, records.collect())
}

/// An ASN database: each network's record is `{"autonomous_system_number": asn,
/// "autonomous_system_organization": organisation}`, as in GeoLite2-ASN and DB-IP's ASN lite.
pub fn write_asn_db(networks: &[(Network, u32, &str)]) -> Vec<u8> {
    let records = networks.iter().map(|&(network, asn, organisation)| {
        let record = Value::Map(vec![
            ("autonomous_system_number", Value::U32(asn)),
            ("autonomous_system_organization", Value::Text(organisation.into())),
        ]);
        (network, record)
    });
    write_db(ASN_DATABASE_TYPE, records.collect())
}

/// The data types this writer uses.
enum Value {
    Text(String),
    U16(u16),
    U32(u32),
    U64(u64),
    Map(Vec<(&'static str, Value)>),
    Array(Vec<Value>),
}

impl Value {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Value::Text(text) => {
                control(out, 2, text.len());
                out.extend_from_slice(text.as_bytes());
            }
            Value::U16(n) => unsigned(out, 5, u64::from(*n)),
            Value::U32(n) => unsigned(out, 6, u64::from(*n)),
            Value::U64(n) => unsigned(out, 9, *n),
            Value::Map(pairs) => {
                control(out, 7, pairs.len());
                for (key, value) in pairs {
                    Value::Text((*key).into()).encode(out);
                    value.encode(out);
                }
            }
            Value::Array(values) => {
                control(out, 11, values.len());
                for value in values {
                    value.encode(out);
                }
            }
        }
    }
}

/// An unsigned integer: big-endian, leading zero bytes dropped.
fn unsigned(out: &mut Vec<u8>, kind: u8, n: u64) {
    let bytes = n.to_be_bytes();
    let payload = &bytes[n.leading_zeros() as usize / 8..];
    control(out, kind, payload.len());
    out.extend_from_slice(payload);
}

/// The control byte, the extended-type byte of types above 7, and the size bytes.
fn control(out: &mut Vec<u8>, kind: u8, size: usize) {
    let (size_bits, size_bytes): (u8, Vec<u8>) = match size {
        0..29 => (size as u8, vec![]),
        29..285 => (29, vec![(size - 29) as u8]),
        285..65_821 => (30, ((size - 285) as u16).to_be_bytes().to_vec()),
        _ => {
            let extra =
                u32::try_from(size - 65_821).ok().filter(|&n| n < 1 << 24).expect("a value under 16 MiB");
            (31, extra.to_be_bytes()[1..].to_vec())
        }
    };
    if kind <= 7 {
        out.push(kind << 5 | size_bits);
    } else {
        out.extend_from_slice(&[size_bits, kind - 7]);
    }
    out.extend_from_slice(&size_bytes);
}

/// One of a node's two records while the tree is built.
#[derive(Clone, Copy)]
enum Record {
    Empty,
    Node(usize),
    Data(usize),
}

fn write_db(database_type: &str, mut records: Vec<(Network, Value)>) -> Vec<u8> {
    // Wider networks first, so that a more specific one then splits the wider one's record.
    records.sort_by_key(|(network, _)| network.tree_path().1);

    let mut data = Vec::new();
    let mut offsets: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut nodes: Vec<[Record; 2]> = vec![[Record::Empty; 2]];
    for (network, value) in &records {
        let mut encoded = Vec::new();
        value.encode(&mut encoded);
        let offset = *offsets.entry(encoded).or_insert_with_key(|encoded| {
            data.extend_from_slice(encoded);
            data.len() - encoded.len()
        });
        let (bits, prefix_len) = network.tree_path();
        let mut node = 0;
        for depth in 0..prefix_len {
            let side = (bits >> (127 - depth) & 1) as usize;
            if depth + 1 == prefix_len {
                nodes[node][side] = Record::Data(offset);
                break;
            }
            node = match nodes[node][side] {
                Record::Node(child) => child,
                // A wider network's record (or nothing) goes on below the new node, on both sides.
                leaf @ (Record::Empty | Record::Data(_)) => {
                    nodes.push([leaf; 2]);
                    nodes[node][side] = Record::Node(nodes.len() - 1);
                    nodes.len() - 1
                }
            };
        }
    }

    let node_count = nodes.len();
    let largest_record = node_count + DATA_SECTION_SEPARATOR.len() + data.len();
    let record_bytes = if largest_record < 1 << 24 { 3 } else { 4 };
    let record_value = |record: Record| -> u32 {
        let value = match record {
            Record::Empty => node_count,
            Record::Node(child) => child,
            Record::Data(offset) => node_count + DATA_SECTION_SEPARATOR.len() + offset,
        };
        u32::try_from(value).expect("a tree and data section under 4 GiB")
    };

    let mut out = Vec::with_capacity(node_count * 2 * record_bytes + data.len() + 512);
    for [left, right] in &nodes {
        out.extend_from_slice(&record_value(*left).to_be_bytes()[4 - record_bytes..]);
        out.extend_from_slice(&record_value(*right).to_be_bytes()[4 - record_bytes..]);
    }
    out.extend_from_slice(&DATA_SECTION_SEPARATOR);
    out.extend_from_slice(&data);
    out.extend_from_slice(METADATA_MARKER);
    let description = format!("{database_type}: a hashsieve test database");
    Value::Map(vec![
        ("node_count", Value::U32(node_count as u32)),
        ("record_size", Value::U16(record_bytes as u16 * 8)),
        ("ip_version", Value::U16(6)),
        ("database_type", Value::Text(database_type.into())),
        ("languages", Value::Array(vec![Value::Text("en".into())])),
        ("description", Value::Map(vec![("en", Value::Text(description))])),
        ("binary_format_major_version", Value::U16(2)),
        ("binary_format_minor_version", Value::U16(0)),
        ("build_epoch", Value::U64(BUILD_EPOCH)),
    ])
    .encode(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use maxminddb::{Reader, path};

    use super::*;

    /// The IPv4 address `a.b.c.d` as it sits in the tree: `::a.b.c.d`.
    fn in_tree(v4: Ipv4Addr) -> Ipv6Addr {
        Ipv6Addr::from(u128::from(u32::from(v4)))
    }

    fn country(reader: &Reader<Vec<u8>>, address: &str) -> Option<String> {
        let result = reader.lookup(address.parse().unwrap()).unwrap();
        result.decode_path(&path!["country", "iso_code"]).unwrap()
    }

    fn test_countries() -> Reader<Vec<u8>> {
        let bytes = write_country_db(&[
            ("127.0.0.0/24".parse().unwrap(), "NL"),
            ("127.0.1.0/24".parse().unwrap(), "DE"),
            ("127.0.2.0/24".parse().unwrap(), "US"),
            ("::1/128".parse().unwrap(), "NL"),
            ("2001:db8::/32".parse().unwrap(), "FR"),
        ]);
        let reader = Reader::from_source(bytes).expect("a readable database");
        reader.verify().expect("a valid database");
        reader
    }

    #[test]
    fn the_reader_finds_each_network_by_ipv4_and_ipv6_address() {
        let reader = test_countries();
        assert_eq!(country(&reader, "127.0.0.1").as_deref(), Some("NL"));
        assert_eq!(country(&reader, "127.0.0.255").as_deref(), Some("NL"));
        assert_eq!(country(&reader, "127.0.1.7").as_deref(), Some("DE"));
        assert_eq!(country(&reader, "127.0.2.200").as_deref(), Some("US"));
        assert_eq!(country(&reader, "::1").as_deref(), Some("NL"));
        assert_eq!(country(&reader, "2001:db8:ffff::9").as_deref(), Some("FR"));
        // The IPv4 address as the IPv6 tree holds it.
        assert_eq!(
            country(&reader, &in_tree(Ipv4Addr::new(127, 0, 1, 7)).to_string()).as_deref(),
            Some("DE")
        );
    }

    #[test]
    fn addresses_outside_every_network_are_not_found() {
        let reader = test_countries();
        for address in ["127.0.3.1", "126.255.255.255", "10.0.0.1", "::2", "2001:db9::1", "ffff::1"] {
            let result = reader.lookup(address.parse().unwrap()).unwrap();
            assert!(!result.has_data(), "{address}");
        }
    }

    #[test]
    fn a_more_specific_network_wins_inside_a_wider_one_in_either_order() {
        let wide: Network = "10.0.0.0/8".parse().unwrap();
        let narrow: Network = "10.1.0.0/16".parse().unwrap();
        for networks in [[(wide, "DE"), (narrow, "NL")], [(narrow, "NL"), (wide, "DE")]] {
            let reader = Reader::from_source(write_country_db(&networks)).unwrap();
            reader.verify().unwrap();
            assert_eq!(country(&reader, "10.1.2.3").as_deref(), Some("NL"));
            assert_eq!(country(&reader, "10.2.0.1").as_deref(), Some("DE"));
            assert_eq!(country(&reader, "10.0.255.255").as_deref(), Some("DE"));
        }
    }

    #[test]
    fn asn_records_and_metadata_read_back() {
        let bytes = write_asn_db(&[
            ("127.0.0.0/24".parse().unwrap(), 64500, "Test Hosting NL"),
            ("127.0.1.0/24".parse().unwrap(), 64501, "Test Hosting DE"),
        ]);
        let reader = Reader::from_source(bytes).unwrap();
        reader.verify().unwrap();
        let asn: maxminddb::geoip2::Asn =
            reader.lookup("127.0.1.9".parse().unwrap()).unwrap().decode().unwrap().unwrap();
        assert_eq!(asn.autonomous_system_number, Some(64501));
        assert_eq!(asn.autonomous_system_organization, Some("Test Hosting DE"));
        let metadata = reader.metadata();
        assert_eq!(metadata.database_type, ASN_DATABASE_TYPE);
        assert_eq!((metadata.build_epoch, metadata.ip_version, metadata.record_size), (BUILD_EPOCH, 6, 24));
    }

    #[test]
    fn many_networks_share_records_and_grow_to_32_bit_records() {
        let codes = ["NL", "DE", "US", "FR"];
        let networks: Vec<(Network, &str)> = (0..70_000u32)
            .map(|n| (Network::new(Ipv4Addr::from(n << 8), 24), codes[n as usize % codes.len()]))
            .collect();
        let bytes = write_country_db(&networks);
        let reader = Reader::from_source(bytes).unwrap();
        assert_eq!(reader.metadata().record_size, 24);
        assert_eq!(country(&reader, &Ipv4Addr::from(69_999u32 << 8 | 5).to_string()).as_deref(), Some("FR"));

        let long = "x".repeat(70_000);
        let networks: Vec<(Network, &str)> = (0..300u32)
            .map(|n| {
                (Network::new(Ipv6Addr::from(u128::from(n + 1) << 64), 64), &long[..69_000 + n as usize])
            })
            .collect();
        let reader = Reader::from_source(write_country_db(&networks)).unwrap();
        reader.verify().unwrap();
        assert_eq!(reader.metadata().record_size, 32);
        let found = country(&reader, &Ipv6Addr::from(300u128 << 64 | 1).to_string()).unwrap();
        assert_eq!(found.len(), 69_299);
    }

    #[test]
    fn sizes_are_encoded_in_each_of_the_four_forms() {
        for (size, expected) in [
            (28, vec![0x5C]),
            (29, vec![0x5D, 0]),
            (284, vec![0x5D, 255]),
            (285, vec![0x5E, 0, 0]),
            (65_821, vec![0x5F, 0, 0, 0]),
        ] {
            let mut out = Vec::new();
            control(&mut out, 2, size);
            assert_eq!(out, expected, "size {size}");
        }
        let mut out = Vec::new();
        Value::Array(vec![]).encode(&mut out);
        Value::U64(0).encode(&mut out);
        Value::U32(0x1_0000).encode(&mut out);
        assert_eq!(out, [0x00, 4, 0x00, 2, 0xC3, 1, 0, 0]);
    }
}
