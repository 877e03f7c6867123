//! GeoIP (`--geoip FILE`): a MaxMind DB file (GeoLite2/GeoIP2 City or Country for the
//! journey's `geolocation`; ASN or ISP for `ipOrganization`) read with `maxminddb`.
//! Without the flag both stay null. A missing or unreadable file stops the start-up
//! with a message naming it, rather than running silently without.

use std::net::IpAddr;
use std::path::Path;

use covisit::core::model::JourneyGeolocation;
use maxminddb::{geoip2, Reader};

/// What an IP address says, as the journey session names it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GeoFacts {
    pub geolocation: Option<JourneyGeolocation>,
    pub organization: Option<String>,
}

pub struct GeoIp {
    reader: Reader<Vec<u8>>,
    /// `GeoLite2-City`, `GeoIP2-ISP`, …: decides which record shape to read.
    database_type: String,
}

impl GeoIp {
    /// Opens and checks the database file.
    pub fn open(path: &Path) -> Result<GeoIp, String> {
        let reader = Reader::open_readfile(path).map_err(|e| {
            format!(
                "--geoip {}: cannot read a MaxMind DB file: {e}",
                path.display()
            )
        })?;
        let database_type = reader.metadata().database_type.clone();
        Ok(GeoIp {
            reader,
            database_type,
        })
    }

    pub fn database_type(&self) -> &str {
        &self.database_type
    }

    /// Looks `ip` up; empty facts when it is not in the database (private ranges).
    pub fn lookup(&self, ip: &str) -> GeoFacts {
        let Ok(ip) = ip.parse::<IpAddr>() else {
            return GeoFacts::default();
        };
        let Ok(found) = self.reader.lookup(ip) else {
            return GeoFacts::default();
        };
        let kind = self.database_type.to_ascii_lowercase();
        if kind.contains("asn") || kind.contains("isp") {
            let organization = found
                .decode::<geoip2::Isp>()
                .ok()
                .flatten()
                .and_then(|r| {
                    r.isp
                        .or(r.organization)
                        .or(r.autonomous_system_organization)
                })
                .map(str::to_string);
            return GeoFacts {
                geolocation: None,
                organization,
            };
        }
        let Some(city) = found.decode::<geoip2::City>().ok().flatten() else {
            return GeoFacts::default();
        };
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
        GeoFacts {
            geolocation: (!empty).then_some(geolocation),
            organization: None,
        }
    }
}
