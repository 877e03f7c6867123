//! Command-line flags (SPEC.md section 4); each flag also reads an environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Clone, Parser)]
#[command(name = "covisit-server", version, about = "covisit co-browsing server")]
pub struct Cli {
    /// Address to listen on (port 0 picks a free port; the log line says which).
    #[arg(
        long,
        env = "COVISIT_LISTEN",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    pub listen: SocketAddr,
    /// SQLite database file (created with its folder when missing), or a PostgreSQL
    /// server: `postgres://user[:password]@host:port/dbname` (`postgresql://` too).
    #[arg(
        long,
        env = "COVISIT_DATABASE",
        default_value = "data/covisit.db",
        global = true
    )]
    pub database: PathBuf,
    /// Run as one node of several: the Redis bus between the nodes,
    /// `redis://[:password@]host:port[/db]`, or `rediss://…` for TLS. Redis is trusted:
    /// a private network and a password (docs/CLUSTER.md). Needs a `postgres://`
    /// `--database` (and that needs it).
    #[arg(long, env = "COVISIT_BUS", global = true)]
    pub bus: Option<String>,
    /// On SIGTERM, a node of several hands its visitors over; live sessions get this many
    /// seconds to end by themselves before the server ends them.
    #[arg(
        long,
        env = "COVISIT_DRAIN_SECONDS",
        default_value_t = 20,
        global = true
    )]
    pub drain_seconds: u64,
    /// Public base URL used in watch links and viewer URLs, and the console's origin
    /// behind a proxy; default `http://<listen>`.
    #[arg(long, env = "COVISIT_PUBLIC_URL", value_parser = parse_public_url, global = true)]
    pub public_url: Option<String>,
    /// Folder with the demo site (`/`) and the agent console (`/agent/`).
    #[arg(long, env = "COVISIT_WWW", default_value = "www", global = true)]
    pub www: PathBuf,
    /// Folder with the built SDK, served under `/sdk/`.
    #[arg(long, env = "COVISIT_SDK_DIR", default_value = "dist", global = true)]
    pub sdk_dir: PathBuf,
    /// Development mode: creates the demo keys `pk_demo` / `sk_demo`. Never in production.
    #[arg(long, env = "COVISIT_DEV", global = true)]
    pub dev: bool,
    /// Trust `X-Forwarded-For` for the visitor's IP (only behind your own proxy).
    #[arg(long, env = "COVISIT_TRUST_PROXY", global = true)]
    pub trust_proxy: bool,
    /// Seconds of silence after which a visitor socket is closed (heartbeats keep it open).
    #[arg(
        long,
        env = "COVISIT_HEARTBEAT_TIMEOUT_SECONDS",
        default_value_t = 45,
        hide = true,
        global = true
    )]
    pub heartbeat_timeout_seconds: u64,
    /// Seconds a live session survives when all of the visitor's tabs dropped unannounced.
    #[arg(long, env = "COVISIT_GRACE_PERIOD_SECONDS", default_value_t = covisit::core::machine::DEFAULT_GRACE_PERIOD_SECONDS, hide = true, global = true)]
    pub grace_period_seconds: u64,
    /// Lookup-code searches allowed per key and minute on the REST API.
    #[arg(
        long,
        env = "COVISIT_LOOKUP_RATE_PER_MINUTE",
        default_value_t = 30,
        hide = true,
        global = true
    )]
    pub lookup_rate_per_minute: u32,
    /// MaxMind DB files (GeoLite2/GeoIP2 City or Country; ASN or ISP): repeat the flag,
    /// or separate them with commas. The location fills the journey's `geolocation` and
    /// the Visitor's `location_*`, ASN/ISP the journey's `ipOrganization`. Without it
    /// they are null.
    #[arg(
        long,
        env = "COVISIT_GEOIP",
        value_name = "FILE",
        value_delimiter = ',',
        global = true
    )]
    pub geoip: Vec<PathBuf>,
    /// A STUN or TURN server for calls (`stun:host:3478`, `turn:host:3478?transport=udp`,
    /// `turns:host:5349`): repeat the flag, or separate them with commas. Handed to both
    /// ends of a call; without any, calls use host candidates (enough on one network).
    #[arg(
        long,
        env = "COVISIT_ICE_SERVERS",
        value_delimiter = ',',
        value_parser = crate::ice::parse_url,
        global = true
    )]
    pub ice_server: Vec<String>,
    /// coturn's `static-auth-secret`: TURN servers above get time-limited credentials
    /// derived from it (the secret itself never leaves the server).
    #[arg(
        long,
        env = "COVISIT_TURN_SECRET",
        value_parser = clap::builder::NonEmptyStringValueParser::new(),
        global = true,
        hide_env_values = true
    )]
    pub turn_secret: Option<String>,
    /// Seconds without activity after which a journey's visitor counts as idle.
    #[arg(
        long,
        env = "COVISIT_JOURNEY_IDLE_SECONDS",
        default_value_t = 300,
        global = true
    )]
    pub journey_idle_seconds: u64,
    /// Seconds without activity after which a journey's visitor counts as away.
    #[arg(
        long,
        env = "COVISIT_JOURNEY_AWAY_SECONDS",
        default_value_t = 1800,
        global = true
    )]
    pub journey_away_seconds: u64,
    /// Seconds without activity after which a journey session ends (the next event
    /// opens a new one).
    #[arg(
        long,
        env = "COVISIT_JOURNEY_TIMEOUT_SECONDS",
        default_value_t = 1800,
        global = true
    )]
    pub journey_timeout_seconds: u64,
    /// The site's own search parameters (comma-separated): their values in page URLs
    /// become search terms.
    #[arg(
        long,
        env = "COVISIT_SITE_SEARCH_PARAMS",
        default_value = "q,search",
        global = true
    )]
    pub site_search_params: String,
    /// The asset proxy may fetch from loopback, private and link-local addresses (a
    /// site on your own network). Off: they are refused, however a URL names them.
    #[arg(long, env = "COVISIT_ASSET_PROXY_ALLOW_PRIVATE", global = true)]
    pub asset_proxy_allow_private: bool,
    /// Origins every account's sessions may have assets fetched from, besides their
    /// pages' and keys' (CDNs): `https://cdn.example` or `https://*.cdn.example`;
    /// repeat the flag or separate them with commas.
    #[arg(
        long,
        env = "COVISIT_ASSET_ORIGINS",
        value_name = "ORIGIN",
        value_delimiter = ',',
        global = true
    )]
    pub asset_origins: Vec<String>,
    /// The largest asset the proxy fetches or takes from a visitor's page, in bytes.
    #[arg(
        long,
        env = "COVISIT_ASSET_MAX_BYTES",
        default_value_t = 5 * 1024 * 1024,
        global = true
    )]
    pub asset_max_bytes: usize,
    /// Seconds an asset fetch (redirects included) or a visitor page's answer may take.
    #[arg(
        long,
        env = "COVISIT_ASSET_TIMEOUT_SECONDS",
        default_value_t = 15,
        global = true
    )]
    pub asset_timeout_seconds: u64,
    /// The asset cache's size, in megabytes.
    #[arg(
        long,
        env = "COVISIT_ASSET_CACHE_MB",
        default_value_t = 64,
        global = true
    )]
    pub asset_cache_mb: u64,
    /// Record the sessions of accounts that did not choose in the console's settings:
    /// the mirror stream the agents received, kept on the server (issue 18).
    #[arg(long, env = "COVISIT_RECORD_SESSIONS", global = true)]
    pub record_sessions: bool,
    /// Days a recording is kept after its session ended (fractions allowed); then a
    /// background sweep deletes it and its `video_status` becomes `expired`.
    #[arg(
        long,
        env = "COVISIT_RECORDING_RETENTION_DAYS",
        default_value_t = 30.0,
        global = true
    )]
    pub recording_retention_days: f64,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Manage the people who sign in to the console.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum UsersCommand {
    /// Create a user (on a fresh install: the first admin). Prints a one-time link that
    /// sets the password (valid 7 days), unless --password-stdin gives it.
    Create {
        #[arg(long)]
        email: String,
        /// admin (users, keys, origins, settings, audit log), supervisor (joins any
        /// session, reads the audit log) or agent (co-browses).
        #[arg(long, value_parser = ["admin", "supervisor", "agent"])]
        role: String,
        /// The person's name, as visitors see it (default: the email's local part).
        #[arg(long)]
        name: Option<String>,
        /// The account (by name) when the database holds several; created when missing.
        #[arg(long)]
        account: Option<String>,
        /// Read the password from standard input instead of printing a link.
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum KeysCommand {
    /// Create an account with a new key pair bound to page origins; print both keys.
    Create {
        /// A name for the account the keys belong to.
        #[arg(long)]
        name: String,
        /// A page origin that may use the public key: `https://shop.example`, or
        /// `https://*.shop.example` for its subdomains. Repeat for several.
        #[arg(long = "origin", value_name = "ORIGIN", required = true)]
        origins: Vec<String>,
    },
}

impl Cli {
    /// The asset proxy's settings; a bad `--asset-origins` entry stops the start-up.
    pub fn asset_settings(&self) -> Result<crate::assets::AssetSettings, String> {
        let origins = self
            .asset_origins
            .iter()
            .filter(|o| !o.trim().is_empty())
            .map(|o| {
                crate::auth::OriginPattern::parse(o).map_err(|e| format!("--asset-origins: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(crate::assets::AssetSettings {
            allow_private: self.asset_proxy_allow_private,
            origins,
            max_bytes: self.asset_max_bytes.clamp(1024, 64 * 1024 * 1024),
            timeout: std::time::Duration::from_secs(self.asset_timeout_seconds.clamp(1, 120)),
            cache_bytes: self.asset_cache_mb.clamp(1, 16 * 1024) * 1024 * 1024,
        })
    }

    /// The public URL without a trailing slash.
    /// What is wrong with the site folders (`--www`, `--sdk-dir`): said at start-up,
    /// since a typo would otherwise serve 404s for the console and the SDK unnoticed. Not
    /// fatal: a server for the API alone (integrations, the tests) runs without them.
    pub fn folder_warnings(&self) -> Vec<String> {
        [
            ("--www", &self.www, "the demo site and the agent console"),
            ("--sdk-dir", &self.sdk_dir, "the SDK (/sdk/)"),
        ]
        .into_iter()
        .filter(|(_, dir, _)| !dir.is_dir())
        .map(|(flag, dir, what)| {
            format!(
                "{flag} {} is not a folder: {what} will answer 404",
                dir.display()
            )
        })
        .collect()
    }

    pub fn public_url(&self, bound: SocketAddr) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => format!("http://{bound}"),
        }
    }
}

/// `--public-url`: an absolute `http` or `https` URL with a host and no query or
/// fragment (it starts every link the server hands out: watch links, viewer URLs,
/// invites).
fn parse_public_url(text: &str) -> Result<String, String> {
    let url = url::Url::parse(text.trim()).map_err(|e| format!("`{text}` is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(format!(
            "`{text}` must be an http:// or https:// URL with a host"
        ));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(format!(
            "`{text}` must be a base URL: no query, fragment or user name"
        ));
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::parse_public_url;

    #[test]
    fn a_public_url_is_an_http_base_url() {
        for good in [
            "https://covisit.example",
            "http://127.0.0.1:8080/",
            "https://x.example/cobrowse",
        ] {
            assert!(parse_public_url(good).is_ok(), "{good}");
        }
        assert_eq!(
            parse_public_url("https://x.example/cobrowse/").unwrap(),
            "https://x.example/cobrowse"
        );
        for bad in [
            "",
            "notaurl",
            "javascript:alert(1)",
            "ftp://x.example",
            "https://x.example/?a=1",
            "https://x.example/#f",
            "https://u@x.example",
            "data:text/html,x",
        ] {
            assert!(parse_public_url(bad).is_err(), "{bad}");
        }
    }
}
