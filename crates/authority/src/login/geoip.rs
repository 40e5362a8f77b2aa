//! Where a browser is, from a local GeoIP database that the operator configures (issue 22): a
//! MaxMind DB file (`.mmdb`) in the GeoIP2/GeoLite2 City or Country layout, or DB-IP's, which
//! follows it. The phone's request then names the browser's city and country beside its
//! address. Nothing is looked up over the network; without a database, the address alone.
//!
//! The file is read by the `maxminddb` crate, once, into memory; a lookup costs microseconds.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The languages a place name is taken in, first found first: Serbian (Cyrillic, then Latin),
/// then English, which every MaxMind database has.
const NAME_LANGUAGES: [&str; 3] = ["sr", "sr-Latn", "en"];

/// An opened GeoIP database.
pub struct GeoIp {
    path: PathBuf,
    reader: maxminddb::Reader<Vec<u8>>,
}

/// A GeoIP database that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("the GeoIP database {path}: {reason}")]
pub struct GeoIpError {
    path: String,
    reason: String,
}

/// The part of a City or Country record we read.
#[derive(Deserialize)]
struct Record<'a> {
    #[serde(borrow, default)]
    city: Option<Place<'a>>,
    #[serde(borrow, default)]
    country: Option<Place<'a>>,
}

/// A city or a country: its names by language.
#[derive(Deserialize)]
struct Place<'a> {
    #[serde(borrow, default)]
    names: BTreeMap<&'a str, &'a str>,
}

impl Place<'_> {
    fn name(&self) -> Option<&str> {
        NAME_LANGUAGES
            .iter()
            .find_map(|language| self.names.get(language).copied())
    }
}

impl GeoIp {
    /// Reads the database at `path` and checks that it is one: a missing file, or one that is
    /// not a MaxMind DB, is an error that names the file.
    pub fn open(path: &Path) -> Result<Self, GeoIpError> {
        let reader = maxminddb::Reader::open_readfile(path).map_err(|e| GeoIpError {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            path: path.to_owned(),
            reader,
        })
    }

    /// Where `address` is, as the phone shows it ([`domain::network::location_text`]): the
    /// city and country the database gives, and the address; the address alone when it is
    /// not an address, not in the database, or its record cannot be read.
    pub fn locate(&self, address: &str) -> String {
        let place = address
            .trim()
            .parse::<IpAddr>()
            .ok()
            .and_then(|ip| self.reader.lookup(ip.to_canonical()).ok())
            .and_then(|found| found.decode::<Record<'_>>().ok().flatten());
        let city = place.as_ref().and_then(|p| p.city.as_ref()?.name());
        let country = place.as_ref().and_then(|p| p.country.as_ref()?.name());
        domain::network::location_text(city, country, address)
    }
}

impl fmt::Debug for GeoIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeoIp")
            .field("path", &self.path)
            .field("type", &self.reader.metadata().database_type)
            .finish()
    }
}

/// Where the browser at `address` is: from the database when there is one, else the address.
pub(crate) fn locate(geoip: Option<&GeoIp>, address: &str) -> String {
    match geoip {
        Some(geoip) => geoip.locate(address),
        None => domain::network::location_text(None, None, address),
    }
}
