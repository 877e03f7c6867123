//! GeoIP (`--geoip`) against the real server binary: small but real MaxMind DB files
//! (written here with `maxminddb-writer`, laid out as GeoLite2/GeoIP2 City, ASN and ISP
//! databases are) fill the journey session's `geolocation` / `ipOrganization` and the
//! Visitor's `location_*` of visitors behind a trusted proxy; unknown addresses stay
//! null, erasure drops them, and a file the server cannot use stops the start-up.

mod common;

use std::path::{Path, PathBuf};

use common::{assert_seed_fields, journeys, now_ms, track, Server, Ws};
use maxminddb_writer::metadata::IpVersion;
use maxminddb_writer::paths::IpAddrWithMask;
use maxminddb_writer::Database;
use serde::Serialize;
use serde_json::{json, Value};

// ----- MaxMind DB records, with the field names of MaxMind's databases -----------------

#[derive(Serialize)]
struct Names {
    de: &'static str,
    en: &'static str,
}

#[derive(Serialize)]
struct Place {
    geoname_id: u32,
    names: Names,
}

#[derive(Serialize)]
struct Coded {
    geoname_id: u32,
    iso_code: &'static str,
    names: Names,
}

#[derive(Serialize)]
struct Continent {
    code: &'static str,
    geoname_id: u32,
    names: Names,
}

#[derive(Serialize)]
struct Location {
    accuracy_radius: u16,
    latitude: f64,
    longitude: f64,
    time_zone: &'static str,
}

#[derive(Serialize)]
struct Postal {
    code: &'static str,
}

/// A GeoLite2/GeoIP2 City record.
#[derive(Serialize)]
struct CityRecord {
    city: Place,
    continent: Continent,
    country: Coded,
    location: Location,
    postal: Postal,
    registered_country: Coded,
    subdivisions: Vec<Coded>,
}

/// A GeoLite2/GeoIP2 ASN record.
#[derive(Serialize)]
struct AsnRecord {
    autonomous_system_number: u32,
    autonomous_system_organization: &'static str,
}

/// A GeoIP2 ISP record (`isp` and `organization` are absent when unknown).
#[derive(Serialize)]
struct IspRecord {
    autonomous_system_number: u32,
    autonomous_system_organization: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    isp: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    organization: Option<&'static str>,
}

fn united_kingdom() -> Coded {
    Coded {
        geoname_id: 2635167,
        iso_code: "GB",
        names: Names {
            de: "Vereinigtes Königreich",
            en: "United Kingdom",
        },
    }
}

fn london() -> CityRecord {
    CityRecord {
        city: Place {
            geoname_id: 2643743,
            names: Names {
                de: "London",
                en: "London",
            },
        },
        continent: Continent {
            code: "EU",
            geoname_id: 6255148,
            names: Names {
                de: "Europa",
                en: "Europe",
            },
        },
        country: united_kingdom(),
        location: Location {
            accuracy_radius: 100,
            latitude: 51.5142,
            longitude: -0.0931,
            time_zone: "Europe/London",
        },
        postal: Postal { code: "EC2V" },
        registered_country: united_kingdom(),
        subdivisions: vec![Coded {
            geoname_id: 6269131,
            iso_code: "ENG",
            names: Names {
                de: "England",
                en: "England",
            },
        }],
    }
}

/// `network` in an IPv6 database: IPv4 networks sit under `::/96`, as in MaxMind's.
fn v6_path(network: &str) -> IpAddrWithMask {
    let n: IpAddrWithMask = network.parse().expect("a network");
    match n.addr {
        std::net::IpAddr::V4(v4) => {
            IpAddrWithMask::new(v4.to_ipv6_compatible().into(), n.mask + 96)
        }
        std::net::IpAddr::V6(_) => n,
    }
}

/// Writes a MaxMind DB file of `database_type` with `records` (network, record).
fn write_mmdb<T: Serialize>(
    path: &Path,
    database_type: &str,
    ip_version: IpVersion,
    records: &[(&str, T)],
) -> PathBuf {
    let mut db = Database::default();
    db.metadata.database_type = database_type.into();
    db.metadata.ip_version = ip_version;
    db.metadata.binary_format_major_version = 2;
    db.metadata.languages = vec!["de".into(), "en".into()];
    db.metadata
        .description
        .insert("en".into(), format!("covisit test {database_type}"));
    for (network, record) in records {
        let data = db.insert_value(record).expect("the record serializes");
        match ip_version {
            IpVersion::V6 => db.insert_node(v6_path(network), data),
            IpVersion::V4 => db.insert_node(network.parse::<IpAddrWithMask>().unwrap(), data),
        }
    }
    let file = std::fs::File::create(path).expect("the file is created");
    db.write_to(std::io::BufWriter::new(file))
        .expect("the database is written");
    path.to_path_buf()
}

/// A City database (IPv6, like GeoLite2-City): London for 81.2.69.0/24 and 2001:8b0::/32.
fn city_db(dir: &Path) -> PathBuf {
    write_mmdb(
        &dir.join("GeoLite2-City.mmdb"),
        "GeoLite2-City",
        IpVersion::V6,
        &[("81.2.69.0/24", london()), ("2001:8b0::/32", london())],
    )
}

/// An ASN database (IPv4 only): 81.2.69.0/24 and 1.128.0.0/11.
fn asn_db(dir: &Path) -> PathBuf {
    write_mmdb(
        &dir.join("GeoLite2-ASN.mmdb"),
        "GeoLite2-ASN",
        IpVersion::V4,
        &[
            (
                "81.2.69.0/24",
                AsnRecord {
                    autonomous_system_number: 20712,
                    autonomous_system_organization: "Andrews & Arnold Ltd",
                },
            ),
            (
                "1.128.0.0/11",
                AsnRecord {
                    autonomous_system_number: 1221,
                    autonomous_system_organization: "Telstra Pty Ltd",
                },
            ),
        ],
    )
}

/// An ISP database: 1.128.0.0/11 with an `isp`, 149.101.100.0/28 with only an
/// `organization`, 203.0.113.0/24 with only the AS organization.
fn isp_db(dir: &Path) -> PathBuf {
    write_mmdb(
        &dir.join("GeoIP2-ISP.mmdb"),
        "GeoIP2-ISP",
        IpVersion::V6,
        &[
            (
                "1.128.0.0/11",
                IspRecord {
                    autonomous_system_number: 1221,
                    autonomous_system_organization: "Telstra Pty Ltd",
                    isp: Some("Telstra Internet"),
                    organization: Some("Telstra Internet"),
                },
            ),
            (
                "149.101.100.0/28",
                IspRecord {
                    autonomous_system_number: 6167,
                    autonomous_system_organization: "CELLCO-PART",
                    isp: None,
                    organization: Some("U.S. Department of Justice"),
                },
            ),
            (
                "203.0.113.0/24",
                IspRecord {
                    autonomous_system_number: 64500,
                    autonomous_system_organization: "Example Transit",
                    isp: None,
                    organization: None,
                },
            ),
        ],
    )
}

// ----- talking to the server ----------------------------------------------------------

/// A visitor behind the trusted proxy at `ip` that viewed one page (so it has a
/// journey session); returns the socket and its short id.
async fn visitor_at(server: &Server, ip: &str) -> (Ws, String) {
    let mut ws = server.visitor_from(ip, None).await;
    let at = now_ms();
    let page = json!({"kind": "page_view", "at": at, "url": "http://127.0.0.1/shop/",
        "referrer": null, "title": "Shop", "lang": "en-GB"});
    track(&mut ws, vec![page]).await;
    let short_id = ws.short_id();
    (ws, short_id)
}

/// The visitor's only journey session.
async fn journey(server: &Server, short_id: &str) -> Value {
    let sessions = journeys(server, short_id).await;
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert_seed_fields("JourneySession", &sessions[0]);
    sessions[0].clone()
}

/// The REST Visitor's `(location_city, location_country_name, location_country)`.
async fn visitor_location(server: &Server, short_id: &str) -> Value {
    let (status, v) = server
        .rest("sk_demo")
        .get(&format!("/api/v1/visitors/{short_id}"))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_seed_fields("Visitor", &v);
    json!([
        v["location_city"],
        v["location_country_name"],
        v["location_country"]
    ])
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 temp path")
}

fn london_geolocation() -> Value {
    json!({
        "country": "GB",
        "countryName": "United Kingdom",
        "latitude": 51.5142,
        "longitude": -0.0931,
        "locality": "London",
        "postalCode": "EC2V",
        "region": "ENG",
        "regionName": "England",
        "source": "maxmind",
        "timezone": "Europe/London",
    })
}

// ----- tests ---------------------------------------------------------------------------

/// A City and an ASN database, as an operator gives them: a London address gets its
/// place in the journey and the Visitor, and its AS organization; an address only the
/// ASN database knows gets just the organization; unknown addresses get nulls.
#[tokio::test]
async fn city_and_asn_databases_locate_visitors_behind_a_trusted_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let (city, asn) = (city_db(dir.path()), asn_db(dir.path()));
    let server = Server::start_with_args(
        dir.path(),
        &[],
        &[
            "--trust-proxy",
            "--geoip",
            path_str(&city),
            "--geoip",
            path_str(&asn),
        ],
    );

    let (_london, london_id) = visitor_at(&server, "81.2.69.160").await;
    let j = journey(&server, &london_id).await;
    assert_eq!(j["ipAddress"], "81.2.69.160");
    assert_eq!(j["geolocation"], london_geolocation());
    assert_eq!(j["ipOrganization"], "Andrews & Arnold Ltd");
    assert_eq!(
        visitor_location(&server, &london_id).await,
        json!(["London", "United Kingdom", "GB"])
    );

    // IPv6 (only the City database has IPv6 networks).
    let (_v6, v6_id) = visitor_at(&server, "2001:8b0:0:30::51bb:1e01").await;
    let j = journey(&server, &v6_id).await;
    assert_eq!(j["geolocation"], london_geolocation());
    assert_eq!(j["ipOrganization"], Value::Null);
    assert_eq!(
        visitor_location(&server, &v6_id).await,
        json!(["London", "United Kingdom", "GB"])
    );

    let (telstra, telstra_id) = visitor_at(&server, "1.128.0.1").await;
    let j = journey(&server, &telstra_id).await;
    assert_eq!(j["geolocation"], Value::Null);
    assert_eq!(j["ipOrganization"], "Telstra Pty Ltd");
    assert_eq!(
        visitor_location(&server, &telstra_id).await,
        json!([null, null, null])
    );

    for ip in ["192.0.2.10", "10.1.2.3", "2001:db8::1"] {
        let (_ws, id) = visitor_at(&server, ip).await;
        let j = journey(&server, &id).await;
        assert_eq!(j["ipAddress"], ip);
        assert_eq!(
            (j["geolocation"].clone(), j["ipOrganization"].clone()),
            (Value::Null, Value::Null),
            "{ip}"
        );
        assert_eq!(
            visitor_location(&server, &id).await,
            json!([null, null, null]),
            "{ip}"
        );
    }
    // Without the proxy's header the socket's own address (loopback) counts.
    let direct = server.visitor(None, None, true, json!({})).await;
    assert_eq!(
        visitor_location(&server, &direct.short_id()).await,
        json!([null, null, null])
    );
    // The location follows the address the visitor connected from last.
    let _second_tab = server.visitor_from("81.2.69.7", Some(&telstra.ids())).await;
    assert_eq!(
        visitor_location(&server, &telstra_id).await,
        json!(["London", "United Kingdom", "GB"])
    );

    // Erasure: the Visitor (with its location) is gone, the journey keeps no place.
    let (status, _) = server
        .rest("sk_demo")
        .call("DELETE", &format!("/api/v1/visitors/{london_id}"), None)
        .await;
    assert_eq!(status, 200);
    let (status, _) = server
        .rest("sk_demo")
        .get(&format!("/api/v1/visitors/{london_id}"))
        .await;
    assert_eq!(status, 404);
    let j = journey(&server, &london_id).await;
    assert_eq!(
        (
            j["ipAddress"].clone(),
            j["geolocation"].clone(),
            j["ipOrganization"].clone()
        ),
        (Value::Null, Value::Null, Value::Null)
    );
}

/// `COVISIT_GEOIP` takes a comma-separated list. Of several ASN/ISP databases the first
/// that knows the address names the organization: the ISP's `isp`, else its
/// `organization`, else the AS organization. No City database: no location.
#[tokio::test]
async fn the_first_asn_or_isp_database_that_knows_an_address_names_its_organization() {
    let dir = tempfile::tempdir().unwrap();
    let (isp, asn) = (isp_db(dir.path()), asn_db(dir.path()));
    let list = format!("{},{}", path_str(&isp), path_str(&asn));
    let server = Server::start_with(
        dir.path(),
        &[("COVISIT_GEOIP", &list), ("COVISIT_TRUST_PROXY", "true")],
    );
    for (ip, organization) in [
        ("1.128.0.1", "Telstra Internet"),
        ("149.101.100.3", "U.S. Department of Justice"),
        ("203.0.113.9", "Example Transit"),
        ("81.2.69.160", "Andrews & Arnold Ltd"),
    ] {
        let (_ws, id) = visitor_at(&server, ip).await;
        let j = journey(&server, &id).await;
        assert_eq!(
            (j["ipOrganization"].clone(), j["geolocation"].clone()),
            (json!(organization), Value::Null),
            "{ip}"
        );
        assert_eq!(
            visitor_location(&server, &id).await,
            json!([null, null, null]),
            "{ip}"
        );
    }
}

/// An operator who asked for GeoIP gets a clear start-up error naming the file, not a
/// server running without it: a missing file, one that is no MaxMind DB, one of a kind
/// that has neither location nor organization, and a bad file among good ones.
#[test]
fn a_missing_bad_or_unusable_geoip_file_stops_the_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.mmdb");
    std::fs::write(&garbage, b"not a maxmind database").unwrap();
    let anonymous = write_mmdb(
        &dir.path().join("GeoIP2-Anonymous-IP.mmdb"),
        "GeoIP2-Anonymous-IP",
        IpVersion::V6,
        &[("81.2.69.0/24", json!({"is_anonymous": true}))],
    );
    let city = city_db(dir.path());
    let missing = dir.path().join("missing.mmdb");
    let run = |args: Vec<&Path>, env: Option<String>| {
        let mut cmd = std::process::Command::new(common::BIN);
        cmd.args(["--dev", "--listen", "127.0.0.1:0", "--database"])
            .arg(dir.path().join("db.sqlite"))
            .env_remove("COVISIT_GEOIP");
        for a in args {
            cmd.arg("--geoip").arg(a);
        }
        if let Some(list) = env {
            cmd.env("COVISIT_GEOIP", list);
        }
        let out = cmd.output().expect("the binary runs");
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    for file in [&missing, &garbage] {
        let err = run(vec![&city, file], None);
        assert!(
            err.contains(&format!(
                "--geoip {}: cannot read a MaxMind DB file",
                file.display()
            )),
            "{err}"
        );
    }
    let err = run(vec![&anonymous], None);
    assert!(
        err.contains(&format!("--geoip {}", anonymous.display()))
            && err.contains("\"GeoIP2-Anonymous-IP\" is neither"),
        "{err}"
    );
    let err = run(
        vec![],
        Some(format!("{},{}", path_str(&city), path_str(&missing))),
    );
    assert!(
        err.contains(&format!("--geoip {}:", missing.display())),
        "{err}"
    );
}
