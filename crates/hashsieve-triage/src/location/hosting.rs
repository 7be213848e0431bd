//! Where an address is hosted: its country and network, from the hotline's offline IP
//! databases in the MaxMind DB format (MaxMind GeoLite2 or DB-IP Lite: a country or city
//! database, and an ASN database).
//!
//! [`HostingDb`] holds the databases, each recognised by the `database_type` in its metadata;
//! [`HostingDb::lookup`] gives the [`Hosting`] of one address, with `None` for whatever the
//! databases do not know; [`HostingDb::describe`] says what was loaded, for the daemon's
//! startup log and metrics. No lookup leaves the machine: the hotline's reports are not told to
//! an online geolocation service.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use maxminddb::{MaxMindDbError, Reader, geoip2, path};
use serde::{Deserialize, Serialize};

/// Where an address was hosted, from the hotline's IP databases, at the time of the fetch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hosting {
    /// The country, ISO 3166-1 alpha-2 in upper case, e.g. "NL".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// The autonomous system number, e.g. 64500.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asn: Option<u32>,
    /// The autonomous system's organisation, e.g. "Example Hosting BV": whom to ask for the
    /// takedown when the site's operator does not answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
}

/// The hotline's IP databases, held in memory.
pub struct HostingDb {
    databases: Vec<Database>,
}

/// One database file, as [`HostingDb::describe`] tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseInfo {
    /// The file (or the name given to [`HostingDb::from_bytes`]).
    pub source: PathBuf,
    /// Its `database_type`, e.g. "GeoLite2-Country" or "DBIP-ASN-Lite (compat=GeoLite2-ASN)".
    pub database_type: String,
    /// When it was built, in seconds since the Unix epoch: how stale the answers may be.
    pub build_epoch: u64,
}

/// Why the IP databases could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum HostingDbError {
    /// No database was given.
    #[error("no IP database given")]
    NoDatabases,
    /// A file could not be read.
    #[error("IP database {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file is not a valid MaxMind DB: truncated, damaged, or something else altogether.
    #[error("IP database {path} is not a valid MaxMind DB: {source}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What the reader found.
        #[source]
        source: MaxMindDbError,
    },
}

struct Database {
    source: PathBuf,
    answers: Answers,
    reader: Reader<Vec<u8>>,
}

/// What a database is read for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answers {
    /// `country.iso_code`, in a country or city database.
    Country,
    /// `autonomous_system_number` and `autonomous_system_organization`.
    Network,
}

impl HostingDb {
    /// Opens one or more MMDB files; each is recognised by its metadata's `database_type`
    /// (one that contains "ASN" is an ASN database; any other is read as a country or city
    /// database, for `country.iso_code`). Where two databases answer the same question, the
    /// earlier in `paths` wins.
    ///
    /// Each file is read whole into memory rather than mapped: the hotline replaces its
    /// databases while the daemon runs (a monthly download), and a mapped file truncated or
    /// rewritten in place under the reader crashes the process (SIGBUS) or changes in the
    /// middle of a lookup, where a copy in memory stays as it was opened. Each is also checked
    /// whole on opening (the reader's `verify`, which walks every network and record: 1.5 s
    /// for three million networks, so a few seconds for a city database), so that a damaged
    /// file is refused at startup instead of answering nothing for months.
    pub fn open(paths: &[impl AsRef<Path>]) -> Result<HostingDb, HostingDbError> {
        let files = paths.iter().map(|path| {
            let path = path.as_ref();
            let bytes =
                std::fs::read(path).map_err(|source| HostingDbError::Read { path: path.into(), source })?;
            Ok((path.to_path_buf(), bytes))
        });
        HostingDb::from_bytes(files.collect::<Result<Vec<_>, _>>()?)
    }

    /// As [`open`](HostingDb::open), from files already read: each as a name for messages and
    /// [`describe`](HostingDb::describe), and its bytes.
    pub fn from_bytes<N: Into<PathBuf>>(
        files: impl IntoIterator<Item = (N, Vec<u8>)>,
    ) -> Result<HostingDb, HostingDbError> {
        let mut databases = Vec::new();
        for (source, bytes) in files {
            let source = source.into();
            let reader = Reader::from_source(bytes).and_then(|reader| reader.verify().map(|()| reader));
            let reader = reader.map_err(|source_error| HostingDbError::Invalid {
                path: source.clone(),
                source: source_error,
            })?;
            let answers = if reader.metadata().database_type.contains("ASN") {
                Answers::Network
            } else {
                Answers::Country
            };
            databases.push(Database { source, answers, reader });
        }
        if databases.is_empty() {
            return Err(HostingDbError::NoDatabases);
        }
        Ok(HostingDb { databases })
    }

    /// Where `address` is hosted, as far as the databases know: a field is `None` where no
    /// database has an entry for the address (or its entry is unreadable).
    pub fn lookup(&self, address: IpAddr) -> Hosting {
        // A dual-stack socket gives an IPv4 peer as ::ffff:a.b.c.d; the databases file it as
        // a.b.c.d.
        let address = address.to_canonical();
        let mut hosting = Hosting::default();
        for database in &self.databases {
            match database.answers {
                Answers::Country if hosting.country.is_none() => hosting.country = database.country(address),
                Answers::Network if hosting.asn.is_none() && hosting.network.is_none() => {
                    (hosting.asn, hosting.network) = database.network(address);
                }
                Answers::Country | Answers::Network => {}
            }
        }
        hosting
    }

    /// The databases loaded, in the order given.
    pub fn describe(&self) -> Vec<DatabaseInfo> {
        let info = |database: &Database| {
            let metadata = database.reader.metadata();
            DatabaseInfo {
                source: database.source.clone(),
                database_type: metadata.database_type.clone(),
                build_epoch: metadata.build_epoch,
            }
        };
        self.databases.iter().map(info).collect()
    }
}

impl Database {
    fn country(&self, address: IpAddr) -> Option<String> {
        let found = self.reader.lookup(address).ok()?;
        let code: &str = found.decode_path(&path!["country", "iso_code"]).ok()??;
        // Whatever the file holds, a Hosting carries a two-letter code or none.
        let is_alpha_2 = code.len() == 2 && code.bytes().all(|byte| byte.is_ascii_alphabetic());
        is_alpha_2.then(|| code.to_ascii_uppercase())
    }

    fn network(&self, address: IpAddr) -> (Option<u32>, Option<String>) {
        let Some(Ok(Some(asn))) = self.reader.lookup(address).ok().map(|found| found.decode::<geoip2::Asn>())
        else {
            return (None, None);
        };
        (asn.autonomous_system_number, asn.autonomous_system_organization.map(str::to_owned))
    }
}

impl std::fmt::Debug for HostingDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostingDb").field("databases", &self.describe()).finish()
    }
}

#[cfg(test)]
mod tests {
    use hashsieve_testkit::Rng;
    use hashsieve_testkit::mmdb::{
        ASN_DATABASE_TYPE, BUILD_EPOCH, COUNTRY_DATABASE_TYPE, write_asn_db, write_country_db,
    };

    use super::*;

    fn countries() -> Vec<u8> {
        write_country_db(&[
            ("127.0.0.0/24".parse().unwrap(), "NL"),
            ("127.0.1.0/24".parse().unwrap(), "DE"),
            ("127.0.2.0/24".parse().unwrap(), "US"),
            ("::1/128".parse().unwrap(), "NL"),
            ("2001:db8:1::/48".parse().unwrap(), "de"),
            ("127.0.9.0/24".parse().unwrap(), "Netherlands"),
        ])
    }

    fn networks() -> Vec<u8> {
        write_asn_db(&[
            ("127.0.0.0/24".parse().unwrap(), 64500, "Test Hosting NL"),
            ("127.0.1.0/24".parse().unwrap(), 64501, "Test Hosting DE"),
            ("127.0.2.0/24".parse().unwrap(), 64502, "Test Hosting US"),
        ])
    }

    fn test_db() -> HostingDb {
        HostingDb::from_bytes([("countries.mmdb", countries()), ("networks.mmdb", networks())]).unwrap()
    }

    fn hosting(country: &str, asn: u32, network: &str) -> Hosting {
        Hosting { country: Some(country.into()), asn: Some(asn), network: Some(network.into()) }
    }

    #[test]
    fn an_address_gets_its_country_and_network() {
        let db = test_db();
        assert_eq!(db.lookup("127.0.0.1".parse().unwrap()), hosting("NL", 64500, "Test Hosting NL"));
        assert_eq!(db.lookup("127.0.1.200".parse().unwrap()), hosting("DE", 64501, "Test Hosting DE"));
        assert_eq!(db.lookup("127.0.2.9".parse().unwrap()), hosting("US", 64502, "Test Hosting US"));
        assert_eq!(db.lookup("::1".parse().unwrap()).country.as_deref(), Some("NL"));
        // Codes come out upper case, and what is not a two-letter code not at all.
        assert_eq!(db.lookup("2001:db8:1::7".parse().unwrap()).country.as_deref(), Some("DE"));
        assert_eq!(db.lookup("127.0.9.1".parse().unwrap()).country, None);
    }

    #[test]
    fn ipv4_is_found_in_ipv6_databases_also_when_written_as_mapped() {
        let db = test_db();
        // The test databases are IPv6 databases with IPv4 at ::/96, as MaxMind's are.
        assert!(db.databases.iter().all(|database| database.reader.metadata().ip_version == 6));
        let mapped: IpAddr = "::ffff:127.0.1.5".parse().unwrap();
        assert_eq!(db.lookup(mapped), hosting("DE", 64501, "Test Hosting DE"));
    }

    #[test]
    fn what_no_database_knows_is_none() {
        let db = test_db();
        for address in ["10.0.0.1", "127.0.3.1", "::2", "2001:db8:2::1", "fe80::1"] {
            assert_eq!(db.lookup(address.parse().unwrap()), Hosting::default(), "{address}");
        }
        // Only a country database: the network stays unknown.
        let db = HostingDb::from_bytes([("countries.mmdb", countries())]).unwrap();
        assert_eq!(
            db.lookup("127.0.0.1".parse().unwrap()),
            Hosting { country: Some("NL".into()), ..Hosting::default() }
        );
    }

    #[test]
    fn the_earlier_database_wins() {
        let override_db = write_country_db(&[("127.0.0.0/25".parse().unwrap(), "BE")]);
        let db =
            HostingDb::from_bytes([("override.mmdb", override_db), ("countries.mmdb", countries())]).unwrap();
        assert_eq!(db.lookup("127.0.0.1".parse().unwrap()).country.as_deref(), Some("BE"));
        assert_eq!(db.lookup("127.0.0.200".parse().unwrap()).country.as_deref(), Some("NL"));
    }

    #[test]
    fn describe_names_each_file_with_its_type_and_age() {
        let dir = tempfile::tempdir().unwrap();
        let (country_path, asn_path) = (dir.path().join("country.mmdb"), dir.path().join("asn.mmdb"));
        std::fs::write(&country_path, countries()).unwrap();
        std::fs::write(&asn_path, networks()).unwrap();
        let db = HostingDb::open(&[&country_path, &asn_path]).unwrap();
        let described = db.describe();
        assert_eq!(
            described,
            [
                DatabaseInfo {
                    source: country_path,
                    database_type: COUNTRY_DATABASE_TYPE.into(),
                    build_epoch: BUILD_EPOCH
                },
                DatabaseInfo {
                    source: asn_path,
                    database_type: ASN_DATABASE_TYPE.into(),
                    build_epoch: BUILD_EPOCH
                },
            ]
        );
        assert_eq!(db.lookup("127.0.0.1".parse().unwrap()), hosting("NL", 64500, "Test Hosting NL"));
        assert!(format!("{db:?}").contains("country.mmdb"));
    }

    #[test]
    fn a_missing_file_and_no_files_are_clear_errors() {
        let missing = Path::new("/nonexistent/GeoLite2-Country.mmdb");
        let err = HostingDb::open(&[missing]).unwrap_err();
        assert!(matches!(&err, HostingDbError::Read { path, .. } if path == missing), "{err}");
        assert!(err.to_string().contains("GeoLite2-Country.mmdb"), "{err}");
        let none: [&Path; 0] = [];
        assert!(matches!(HostingDb::open(&none), Err(HostingDbError::NoDatabases)));
    }

    /// Every cut of a valid file, random bytes, and bytes flipped anywhere: an error that
    /// names the file or a database that answers, never a panic.
    #[test]
    fn truncated_random_and_damaged_files_are_refused_by_name() {
        let valid = networks();
        let expect_refused = |bytes: Vec<u8>| {
            let err = HostingDb::from_bytes([("hostile.mmdb", bytes)]).unwrap_err();
            assert!(matches!(err, HostingDbError::Invalid { .. }), "{err}");
            assert!(
                err.to_string().starts_with("IP database hostile.mmdb is not a valid MaxMind DB: "),
                "{err}"
            );
        };
        for cut in 0..valid.len() {
            expect_refused(valid[..cut].to_vec());
        }
        let mut rng = Rng::new(21);
        for len in [0, 1, 100, 4096, 100_000] {
            let mut bytes = vec![0; len];
            rng.fill(&mut bytes);
            expect_refused(bytes);
        }
        // Random bytes behind a metadata marker, the first thing a reader looks for.
        let mut bytes = vec![0; 2000];
        rng.fill(&mut bytes);
        bytes.extend_from_slice(b"\xAB\xCD\xEFMaxMind.com");
        bytes.extend_from_slice(&rng.bytes::<64>());
        expect_refused(bytes);

        let probes: Vec<IpAddr> = ["127.0.0.1", "127.0.1.1", "127.0.2.1", "::1", "10.0.0.1"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        for _ in 0..2000 {
            let mut damaged = valid.clone();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(damaged.len() as u64) as usize;
                damaged[at] ^= 1 << rng.below(8);
            }
            if let Ok(db) = HostingDb::from_bytes([("damaged.mmdb", damaged)]) {
                for &address in &probes {
                    db.lookup(address);
                }
            }
        }
    }
}
