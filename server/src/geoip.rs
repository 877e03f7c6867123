//! GeoIP (`--geoip FILE`, repeatable): MaxMind DB files read with `maxminddb`.
//! GeoLite2/GeoIP2 City or Country databases give the location (journey `geolocation`,
//! Visitor `location_*`); ASN or ISP databases give the journey's `ipOrganization`.
//! Without the flag all stay null. A missing or unreadable file, or one of another kind,
//! stops the start-up with a message naming it, rather than running silently without.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use covisit::core::model::JourneyGeolocation;
use maxminddb::{geoip2, Reader};

/// What an IP address says, as the journey session names it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GeoFacts {
    pub geolocation: Option<JourneyGeolocation>,
    pub organization: Option<String>,
}

/// Which facts a database holds, from its `database_type` metadata.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// City, Country (and Enterprise, which has the City layout).
    Location,
    /// ASN or ISP.
    Organization,
}

impl Kind {
    fn of(database_type: &str) -> Option<Kind> {
        let t = database_type.to_ascii_lowercase();
        if t.contains("asn") || t.contains("isp") {
            Some(Kind::Organization)
        } else if t.contains("city") || t.contains("country") || t.contains("enterprise") {
            Some(Kind::Location)
        } else {
            None
        }
    }
}

struct Database {
    path: PathBuf,
    reader: Reader<Vec<u8>>,
    /// `GeoLite2-City`, `GeoIP2-ISP`, …
    database_type: String,
    kind: Kind,
}

/// The configured databases, in the order given.
pub struct GeoIp {
    databases: Vec<Database>,
}

impl GeoIp {
    /// Opens and checks every file; the first that fails names itself in the error.
    pub fn open(paths: &[PathBuf]) -> Result<GeoIp, String> {
        let databases = paths
            .iter()
            .map(|path| Database::open(path))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(GeoIp { databases })
    }

    /// `(file, database_type)` of each database, for the start-up log.
    pub fn loaded(&self) -> impl Iterator<Item = (&Path, &str)> {
        self.databases
            .iter()
            .map(|d| (d.path.as_path(), d.database_type.as_str()))
    }

    /// Looks `ip` up in every database: the location from the first location database
    /// that knows the address, the organization from the first ASN/ISP database that
    /// knows it. Empty facts for an address no database knows (private ranges).
    pub fn lookup(&self, ip: &str) -> GeoFacts {
        let Ok(ip) = ip.parse::<IpAddr>() else {
            return GeoFacts::default();
        };
        let mut facts = GeoFacts::default();
        for db in &self.databases {
            match db.kind {
                Kind::Location if facts.geolocation.is_none() => {
                    facts.geolocation = db.location(ip);
                }
                Kind::Organization if facts.organization.is_none() => {
                    facts.organization = db.organization(ip);
                }
                _ => {}
            }
        }
        facts
    }
}

impl Database {
    fn open(path: &Path) -> Result<Database, String> {
        let reader = Reader::open_readfile(path).map_err(|e| {
            format!(
                "--geoip {}: cannot read a MaxMind DB file: {e}",
                path.display()
            )
        })?;
        let database_type = reader.metadata().database_type.clone();
        let kind = Kind::of(&database_type).ok_or_else(|| {
            format!(
                "--geoip {}: database type {database_type:?} is neither a City/Country \
                 nor an ASN/ISP database",
                path.display()
            )
        })?;
        Ok(Database {
            path: path.to_path_buf(),
            reader,
            database_type,
            kind,
        })
    }

    fn organization(&self, ip: IpAddr) -> Option<String> {
        // The ISP record is a superset of the ASN record.
        let record = self
            .reader
            .lookup(ip)
            .ok()?
            .decode::<geoip2::Isp>()
            .ok()??;
        record
            .isp
            .or(record.organization)
            .or(record.autonomous_system_organization)
            .map(str::to_string)
    }

    fn location(&self, ip: IpAddr) -> Option<JourneyGeolocation> {
        let city = self
            .reader
            .lookup(ip)
            .ok()?
            .decode::<geoip2::City>()
            .ok()??;
        let region = city.subdivisions.first();
        let geolocation = JourneyGeolocation {
            country: city.country.iso_code.map(str::to_string),
            country_name: city.country.names.english.map(str::to_string),
            latitude: city.location.latitude,
            longitude: city.location.longitude,
            locality: city.city.names.english.map(str::to_string),
            postal_code: city.postal.code.map(str::to_string),
            region: region.and_then(|r| r.iso_code).map(str::to_string),
            region_name: region.and_then(|r| r.names.english).map(str::to_string),
            source: Some("maxmind".into()),
            timezone: city.location.time_zone.map(str::to_string),
        };
        let empty = geolocation.country.is_none() && geolocation.latitude.is_none();
        (!empty).then_some(geolocation)
    }
}

#[cfg(test)]
mod tests {
    use super::Kind;

    #[test]
    fn the_database_type_says_which_facts_a_file_holds() {
        for (t, kind) in [
            ("GeoLite2-City", Some(Kind::Location)),
            ("GeoIP2-Country", Some(Kind::Location)),
            ("GeoIP2-Enterprise", Some(Kind::Location)),
            ("DBIP-City-Lite", Some(Kind::Location)),
            ("GeoLite2-ASN", Some(Kind::Organization)),
            ("GeoIP2-ISP", Some(Kind::Organization)),
            ("GeoIP2-Anonymous-IP", None),
            ("GeoIP2-Connection-Type", None),
        ] {
            assert_eq!(Kind::of(t), kind, "{t}");
        }
    }
}
