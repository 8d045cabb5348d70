//! The settings tree of Tribler's `triblerd.conf` (§3.1 of the reference: the union of the PyPI
//! build's and the 7.13.1 release's keys), its validation, and the INI file it lives in.
//!
//! Only values that differ from the defaults are written (as Tribler does), plus `[api] key`.
//! Unlike Tribler, a value of the wrong type or out of range is refused, both from
//! `POST /settings` and from a hand-edited file.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ini::Ini;
use serde_json::{Map, Value};

use super::fsutil::write_atomic;

/// What a key holds and which values are valid.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Bool,
    /// An integer within the bounds.
    Int(i64, i64),
    /// An integer within the bounds, or null.
    OptInt(i64, i64),
    /// A finite number within the bounds (integers accepted).
    Float(f64, f64),
    Str,
    NonEmptyStr,
    OptStr,
    /// An IP address, as a string.
    Ip,
    /// One of these strings.
    OneOf(&'static [&'static str]),
}

/// A default value.
#[derive(Clone, Copy, Debug)]
enum Def {
    B(bool),
    I(i64),
    F(f64),
    S(&'static str),
    Null,
    /// The user's download directory (`download_defaults.saveas`).
    SaveAs,
}

struct Key {
    /// `""` for the two top-level keys.
    section: &'static str,
    name: &'static str,
    kind: Kind,
    default: Def,
}

const fn k(section: &'static str, name: &'static str, kind: Kind, default: Def) -> Key {
    Key { section, name, kind, default }
}

use Def::{Null, SaveAs, B, F, I, S};
use Kind::{Bool, Float, Int, NonEmptyStr, OneOf, OptInt, OptStr, Str};

const PORT: Kind = Int(0, 65535);
const COUNT: Kind = Int(0, i64::MAX);
const POSITIVE: Kind = Int(1, i64::MAX);
const RATE: Kind = Int(0, i64::MAX);
const NONNEG: Kind = Float(0.0, f64::MAX);

/// Every key, with Tribler's defaults except where the daemon differs: anonymity is not built,
/// so downloads default to 0 hops; the REST API listens on 8085.
const KEYS: &[Key] = &[
    k("general", "version", Str, S("")),
    k("general", "log_dir", Str, S("log")),
    k("general", "version_checker_enabled", Bool, B(true)),
    k("general", "testnet", Bool, B(false)),
    k("tunnel_community", "enabled", Bool, B(true)),
    k("tunnel_community", "exitnode_enabled", Bool, B(false)),
    k("tunnel_community", "random_slots", COUNT, I(5)),
    k("tunnel_community", "competing_slots", COUNT, I(15)),
    k("tunnel_community", "testnet", Bool, B(false)),
    k("tunnel_community", "min_circuits", COUNT, I(3)),
    k("tunnel_community", "max_circuits", COUNT, I(10)),
    k("bandwidth_accounting", "testnet", Bool, B(false)),
    k("bandwidth_accounting", "outgoing_query_interval", COUNT, I(30)),
    k("bandwidth_accounting", "max_tx_returned_in_query", COUNT, I(10)),
    k("bootstrap", "enabled", Bool, B(true)),
    k("bootstrap", "max_download_rate", RATE, I(1_000_000)),
    k("bootstrap", "infohash", Str, S("b496932f32daad964e1b63188faabf74d22b45ea")),
    k("ipv8", "enabled", Bool, B(true)),
    k("ipv8", "port", PORT, I(7759)),
    k("ipv8", "address", Kind::Ip, S("0.0.0.0")),
    k("ipv8", "rust_endpoint", Bool, B(true)),
    k("ipv8", "bootstrap_override", OptStr, Null),
    k("ipv8", "statistics", Bool, B(false)),
    k("ipv8", "rendezvous_stats", Bool, B(false)),
    k("ipv8", "walk_interval", Float(0.0, f64::MAX), F(0.5)),
    k("ipv8", "walk_scaling_enabled", Bool, B(true)),
    k("ipv8", "walk_scaling_upper_limit", NONNEG, F(3.0)),
    k("discovery_community", "enabled", Bool, B(true)),
    k("dht", "enabled", Bool, B(true)),
    k("trustchain", "ec_keypair_filename", Str, S("ec_multichain.pem")),
    k("trustchain", "ec_keypair_pubfilename", Str, S("ecpub_multichain.pem")),
    k("trustchain", "testnet_keypair_filename", Str, S("ec_trustchain_testnet.pem")),
    k("trustchain", "secondary_key_filename", Str, S("secondary_key.pem")),
    k("trustchain", "testnet", Bool, B(false)),
    k("watch_folder", "enabled", Bool, B(false)),
    k("watch_folder", "directory", Str, S("")),
    k("chant", "enabled", Bool, B(true)),
    k("chant", "manager_enabled", Bool, B(true)),
    k("chant", "channel_edit", Bool, B(false)),
    k("chant", "channels_dir", Str, S("channels")),
    k("chant", "testnet", Bool, B(false)),
    k("chant", "queried_peers_limit", COUNT, I(1000)),
    k("chant", "max_mapped_query_peers", COUNT, I(3)),
    k("torrent_checking", "enabled", Bool, B(true)),
    // Seconds between two rounds of the background health checker (Tribler's
    // TORRENT_SELECTION_INTERVAL); each round checks a few torrents (see daemon/health.rs).
    k("torrent_checking", "interval", Int(1, 86_400), I(120)),
    k("libtorrent", "enabled", Bool, B(true)),
    k("libtorrent", "port", OptInt(0, 65535), Null),
    k("libtorrent", "proxy_type", Int(0, 5), I(0)),
    k("libtorrent", "proxy_server", Str, S(":")),
    k("libtorrent", "proxy_auth", Str, S(":")),
    k("libtorrent", "max_connections_download", Int(-1, i64::MAX), I(-1)),
    k("libtorrent", "max_download_rate", RATE, I(0)),
    k("libtorrent", "max_upload_rate", RATE, I(0)),
    k("libtorrent", "utp", Bool, B(true)),
    k("libtorrent", "dht", Bool, B(true)),
    k("libtorrent", "dht_readiness_timeout", COUNT, I(30)),
    k("libtorrent", "upnp", Bool, B(true)),
    k("libtorrent", "natpmp", Bool, B(true)),
    k("libtorrent", "lsd", Bool, B(true)),
    // Ours, not Tribler's: MSE/PE of peer connections, 0 disabled, 1 enabled (encrypted
    // preferred, plaintext accepted: libtorrent's default), 2 forced.
    k("libtorrent", "encryption", Int(0, 2), I(1)),
    k("download_defaults", "anonymity_enabled", Bool, B(false)),
    k("download_defaults", "number_hops", Int(0, 3), I(0)),
    k("download_defaults", "safeseeding_enabled", Bool, B(true)),
    k("download_defaults", "saveas", NonEmptyStr, SaveAs),
    k("download_defaults", "seeding_mode", OneOf(&["forever", "never", "ratio", "time"]), S("forever")),
    k("download_defaults", "seeding_ratio", NONNEG, F(2.0)),
    k("download_defaults", "seeding_time", NONNEG, F(60.0)),
    k("download_defaults", "channel_download", Bool, B(false)),
    k("download_defaults", "add_download_to_channel", Bool, B(false)),
    k("api", "http_enabled", Bool, B(true)),
    k("api", "http_port", PORT, I(8085)),
    k("api", "http_host", Kind::Ip, S("127.0.0.1")),
    k("api", "https_enabled", Bool, B(false)),
    k("api", "https_host", Kind::Ip, S("127.0.0.1")),
    k("api", "https_port", Int(-1, 65535), I(-1)),
    k("api", "https_certfile", Str, S("")),
    k("api", "key", OptStr, Null),
    k("api", "retry_port", Bool, B(true)),
    // Host names the REST API answers to besides IP literals and `localhost` (comma-separated):
    // any other `Host` header is refused, against DNS rebinding.
    k("api", "allowed_hosts", Str, S("")),
    k("resource_monitor", "enabled", Bool, B(true)),
    k("resource_monitor", "cpu_priority", COUNT, I(1)),
    k("resource_monitor", "poll_interval", POSITIVE, I(5)),
    k("resource_monitor", "history_size", POSITIVE, I(20)),
    k("content_discovery_community", "enabled", Bool, B(true)),
    k("content_discovery_community", "testnet", Bool, B(false)),
    k("content_discovery_community", "maximum_payload_size", COUNT, I(1300)),
    k("popularity_community", "enabled", Bool, B(true)),
    k("popularity_community", "cache_dir", Str, S("health_cache")),
    k("remote_query_community", "minimal_blob_size", COUNT, I(200)),
    k("remote_query_community", "maximum_payload_size", COUNT, I(1300)),
    k("remote_query_community", "max_entries", COUNT, I(6)),
    k("remote_query_community", "max_query_peers", COUNT, I(20)),
    k("remote_query_community", "max_response_size", COUNT, I(100)),
    k("remote_query_community", "max_channel_query_back", COUNT, I(4)),
    k("remote_query_community", "push_updates_back_enabled", Bool, B(true)),
    k("", "upgrader_enabled", Bool, B(true)),
    k("", "gui_test_mode", Bool, B(false)),
];

/// The keys the daemon reads. A change of any other key would be accepted and do nothing, so
/// `POST /settings` refuses it (its current value is still accepted: the GUI posts back what
/// it read). Rate limits and `saveas` apply at once, the others at the next start.
const EFFECTIVE: &[(&str, &str)] = &[
    ("libtorrent", "proxy_type"),
    ("libtorrent", "proxy_server"),
    ("libtorrent", "proxy_auth"),
    ("libtorrent", "max_download_rate"),
    ("libtorrent", "max_upload_rate"),
    ("download_defaults", "saveas"),
    ("libtorrent", "port"),
    ("libtorrent", "dht"),
    ("libtorrent", "lsd"),
    ("libtorrent", "upnp"),
    ("libtorrent", "natpmp"),
    ("libtorrent", "encryption"),
    ("libtorrent", "utp"),
    ("dht", "enabled"),
    ("torrent_checking", "enabled"),
    ("torrent_checking", "interval"),
];

fn find(section: &str, name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.section == section && k.name == name)
}

fn is_section(name: &str) -> bool {
    !name.is_empty() && KEYS.iter().any(|k| k.section == name)
}

fn display(section: &str, name: &str) -> String {
    if section.is_empty() {
        name.to_string()
    } else {
        format!("{section}.{name}")
    }
}

/// The default download directory: `<Downloads>/shoal`, else `<home>/Downloads/shoal`, else
/// `shoal-downloads` in the state directory.
pub fn default_saveas(state_dir: &Path) -> PathBuf {
    dirs::download_dir()
        .or_else(|| dirs::home_dir().map(|h| h.join("Downloads")))
        .map(|d| d.join("shoal"))
        .unwrap_or_else(|| state_dir.join("shoal-downloads"))
}

/// Checks `v` against `kind`; returns it normalised (floats as floats).
fn check(kind: Kind, v: &Value) -> Result<Value, String> {
    let int = |v: &Value| v.as_i64().filter(|_| v.is_i64() || v.is_u64());
    match kind {
        Bool => v.as_bool().map(Value::Bool).ok_or_else(|| "must be true or false".into()),
        Int(lo, hi) | OptInt(lo, hi) => {
            if v.is_null() && matches!(kind, OptInt(..)) {
                return Ok(Value::Null);
            }
            let n = int(v).ok_or_else(|| "must be an integer".to_string())?;
            if n < lo || n > hi {
                return Err(match (lo, hi) {
                    (lo, i64::MAX) => format!("must be at least {lo}"),
                    (lo, hi) => format!("must be between {lo} and {hi}"),
                });
            }
            Ok(Value::from(n))
        }
        Float(lo, hi) => {
            let x = v.as_f64().filter(|_| v.is_number()).ok_or_else(|| "must be a number".to_string())?;
            if !x.is_finite() || x < lo || x > hi {
                return Err(if lo == 0.0 {
                    "must be a number at least 0".into()
                } else {
                    format!("must be at least {lo}")
                });
            }
            Ok(Value::from(x))
        }
        Str => v.as_str().map(Value::from).ok_or_else(|| "must be a string".into()),
        NonEmptyStr => match v.as_str() {
            Some(s) if !s.trim().is_empty() => Ok(Value::from(s)),
            _ => Err("must be a non-empty string".into()),
        },
        OptStr => match v {
            Value::Null | Value::String(_) => Ok(v.clone()),
            _ => Err("must be a string or null".into()),
        },
        Kind::Ip => match v.as_str().map(str::parse::<IpAddr>) {
            Some(Ok(_)) => Ok(v.clone()),
            _ => Err("must be an IP address such as \"127.0.0.1\"".into()),
        },
        OneOf(options) => match v.as_str() {
            Some(s) if options.contains(&s) => Ok(Value::from(s)),
            _ => Err(format!("must be one of {}", options.join(", "))),
        },
    }
}

/// Parses an INI string for `kind`, the way configobj/pydantic read Tribler's file.
fn parse_ini_value(kind: Kind, s: &str) -> Result<Value, String> {
    let s = s.trim();
    let parsed = match kind {
        Bool => match s.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => Value::Bool(true),
            "false" | "no" | "off" | "0" => Value::Bool(false),
            _ => return Err("must be True or False".into()),
        },
        OptInt(..) | OptStr if s == "None" || s.is_empty() => Value::Null,
        Int(..) | OptInt(..) => s.parse::<i64>().map(Value::from).map_err(|_| "must be an integer".to_string())?,
        Float(..) => s.parse::<f64>().map(Value::from).map_err(|_| "must be a number".to_string())?,
        Str | NonEmptyStr | OptStr | Kind::Ip | OneOf(_) => Value::from(s),
    };
    check(kind, &parsed)
}

fn ini_string(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::Bool(b) => Some(if *b { "True" } else { "False" }.into()),
        Value::Number(n) if n.is_f64() => {
            let x = n.as_f64().unwrap_or_default();
            Some(if x.fract() == 0.0 && x.abs() < 1e15 { format!("{x:.1}") } else { x.to_string() })
        }
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// A `triblerd.conf` that could not be used: the daemon runs on defaults.
#[derive(Debug)]
pub struct ConfigError {
    /// What was wrong, naming the file.
    pub message: String,
    /// Where the bad file was moved.
    pub kept: PathBuf,
}

/// The settings as stored: `triblerd.conf` over the defaults.
#[derive(Clone, Debug)]
pub struct Settings {
    path: PathBuf,
    saveas_default: String,
    /// Section → key → value (top-level keys under `""`).
    values: Map<String, Value>,
}

impl Settings {
    /// Loads `<state>/triblerd.conf` (missing is fine: all defaults). Unknown keys are
    /// reported and ignored. A file that cannot be parsed, or holds an invalid value, must not
    /// keep the daemon from starting: it is moved aside to `triblerd.conf.bad-<unix time>` and
    /// the defaults are used; the [`ConfigError`] says so (for `report_config_error`).
    pub fn load(state_dir: &Path) -> Result<(Settings, Vec<String>, Option<ConfigError>), String> {
        let mut settings = Settings {
            saveas_default: default_saveas(state_dir).to_string_lossy().into_owned(),
            path: state_dir.join("triblerd.conf"),
            values: Map::new(),
        };
        let text = match std::fs::read(&settings.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((settings, Vec::new(), None)),
            Err(e) => return Err(format!("cannot read {}: {e}", settings.path.display())),
        };
        let parsed = String::from_utf8(text).map_err(|_| "the file is not UTF-8".to_string());
        match parsed.and_then(|text| settings.read_ini(&text)) {
            Ok(warnings) => Ok((settings, warnings, None)),
            Err(message) => {
                let unix =
                    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
                let mut kept = settings.path.clone().into_os_string();
                kept.push(format!(".bad-{unix}"));
                let kept = PathBuf::from(kept);
                std::fs::rename(&settings.path, &kept)
                    .map_err(|e| format!("cannot move the invalid {} aside: {e}", settings.path.display()))?;
                settings.values = Map::new();
                let message = format!("{}: {message}", settings.path.display());
                Ok((settings, Vec::new(), Some(ConfigError { message, kept })))
            }
        }
    }

    /// Reads INI text over the current values; returns warnings for unknown keys.
    fn read_ini(&mut self, text: &str) -> Result<Vec<String>, String> {
        let ini = Ini::load_from_str(text).map_err(|e| e.to_string())?;
        let mut warnings = Vec::new();
        for (section, props) in ini.iter() {
            let section = section.unwrap_or("");
            for (name, raw) in props.iter() {
                let Some(key) = find(section, name) else {
                    warnings.push(format!(
                        "{}: ignoring unknown setting {}",
                        self.path.display(),
                        display(section, name)
                    ));
                    continue;
                };
                let value = parse_ini_value(key.kind, raw)
                    .map_err(|e| format!("{} {e} (found {raw:?})", display(section, name)))?;
                self.set_unchecked(section, name, value);
            }
        }
        Ok(warnings)
    }

    /// Whether `value` of `key`, written to `triblerd.conf` and read back, comes back identical.
    fn round_trips(&self, key: &Key, value: &Value) -> bool {
        let mut alone =
            Settings { path: self.path.clone(), saveas_default: self.saveas_default.clone(), values: Map::new() };
        alone.set_unchecked(key.section, key.name, value.clone());
        let mut back = Settings { values: Map::new(), ..alone.clone() };
        back.read_ini(&alone.to_ini()).is_ok() && back.get(key.section, key.name) == *value
    }

    /// The file the settings live in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn default_of(&self, key: &Key) -> Value {
        match key.default {
            B(b) => Value::Bool(b),
            I(n) => Value::from(n),
            F(x) => Value::from(x),
            S(s) => Value::from(s),
            Null => Value::Null,
            SaveAs => Value::from(self.saveas_default.as_str()),
        }
    }

    /// The value of a key (stored, else default).
    pub fn get(&self, section: &str, name: &str) -> Value {
        if let Some(v) = self.values.get(section).and_then(|s| s.get(name)) {
            return v.clone();
        }
        find(section, name).map(|k| self.default_of(k)).unwrap_or(Value::Null)
    }

    fn set_unchecked(&mut self, section: &str, name: &str, value: Value) {
        let sec = self.values.entry(section.to_string()).or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(m) = sec {
            m.insert(name.to_string(), value);
        }
    }

    /// Sets a key after validating it.
    pub fn set(&mut self, section: &str, name: &str, value: Value) -> Result<(), String> {
        let key = find(section, name).ok_or_else(|| format!("unknown setting {}", display(section, name)))?;
        let value = check(key.kind, &value).map_err(|e| format!("{} {e}", display(section, name)))?;
        self.set_unchecked(section, name, value);
        Ok(())
    }

    /// The whole tree, as `GET /settings` shows it (before runtime values are filled in).
    pub fn tree(&self) -> Value {
        let mut root = Map::new();
        for key in KEYS {
            let v = self.get(key.section, key.name);
            if key.section.is_empty() {
                root.insert(key.name.into(), v);
            } else if let Value::Object(m) =
                root.entry(key.section.to_string()).or_insert_with(|| Value::Object(Map::new()))
            {
                m.insert(key.name.into(), v);
            }
        }
        Value::Object(root)
    }

    /// Deep-merges a partial tree (`POST /settings`) into a copy and returns it. Nothing
    /// changes unless every value is valid, round-trips through `triblerd.conf`, and either
    /// equals the value in force (`in_force`, the tree `GET /settings` shows: clients post back
    /// what they read, and that changes nothing) or belongs to a key that has an effect
    /// ([`EFFECTIVE`]). `api.*` is never changed here: it comes from the file, flags or
    /// environment only. Empty objects are ignored, even for unknown sections
    /// (the GUI sends `"Tribler": {}`).
    pub fn merged(&self, patch: &Value, in_force: &Value) -> Result<Settings, String> {
        let Value::Object(patch) = patch else {
            return Err("the settings must be a JSON object of sections".into());
        };
        let mut next = self.clone();
        let mut errors = Vec::new();
        for (section, content) in patch {
            let result = match content {
                Value::Object(m) if m.is_empty() => Ok(()),
                Value::Object(m) if is_section(section) => {
                    for (name, v) in m {
                        if let Err(e) = self.apply(&mut next, section, name, v, in_force) {
                            errors.push(e);
                        }
                    }
                    Ok(())
                }
                Value::Object(_) => Err(format!("unknown settings section {section:?}")),
                v if find("", section).is_some() => self.apply(&mut next, "", section, v, in_force),
                _ if is_section(section) => Err(format!("settings section {section:?} must be an object")),
                _ => Err(format!("unknown setting {section:?}")),
            };
            if let Err(e) = result {
                errors.push(e);
            }
        }
        // The proxy's three keys make sense only together (and only SOCKS5 is implemented).
        let (kind, server, auth) = proxy_settings(&next);
        if let Err(e) = crate::proxy::check_settings(kind, &server, &auth) {
            errors.push(e);
        }
        if errors.is_empty() {
            Ok(next)
        } else {
            Err(format!("invalid settings: {}", errors.join("; ")))
        }
    }

    /// One key of [`Settings::merged`]: validated, then set in `next` if it changes anything.
    fn apply(&self, next: &mut Settings, section: &str, name: &str, v: &Value, in_force: &Value) -> Result<(), String> {
        let shown = display(section, name);
        let key = find(section, name).ok_or_else(|| format!("unknown setting {shown}"))?;
        let v = check(key.kind, v).map_err(|e| format!("{shown} {e}"))?;
        // What `GET /settings` showed: for ports and the key, what is in force, not what is stored.
        let shown_value =
            if section.is_empty() { in_force.get(name) } else { in_force.get(section).and_then(|s| s.get(name)) };
        let current = shown_value.cloned().unwrap_or_else(|| self.get(section, name));
        if v == current {
            return Ok(());
        }
        if section == "api" {
            return Err(format!(
                "{shown} cannot be changed over the REST API: set it in {} (or with --http-port, --api-key, \
                 CORE_API_PORT, CORE_API_KEY) and restart",
                self.path.display()
            ));
        }
        if !EFFECTIVE.contains(&(section, name)) {
            return Err(format!("{shown} has no effect in Shoal yet: only its current value {current} is accepted"));
        }
        if !self.round_trips(key, &v) {
            return Err(format!("{shown} {v} cannot be stored in triblerd.conf and read back unchanged"));
        }
        next.set_unchecked(section, name, v);
        Ok(())
    }

    /// The INI text: values that differ from the defaults, and the API key.
    pub fn to_ini(&self) -> String {
        let mut ini = Ini::new();
        for key in KEYS {
            let v = self.get(key.section, key.name);
            let keep = (key.section == "api" && key.name == "key") || v != self.default_of(key);
            if let (true, Some(s)) = (keep, ini_string(&v)) {
                let section = (!key.section.is_empty()).then_some(key.section);
                ini.with_section(section).set(key.name, s);
            }
        }
        let mut out = Vec::new();
        ini.write_to(&mut out).expect("writing to memory");
        String::from_utf8(out).expect("INI text is UTF-8")
    }

    /// Writes `triblerd.conf` atomically.
    pub fn save(&self) -> Result<(), String> {
        write_atomic(&self.path, self.to_ini().as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", self.path.display()))
    }
}

/// `libtorrent.max_download_rate` and `max_upload_rate` (bytes/s, 0 = unlimited).
pub(super) fn rate_limits(settings: &Settings) -> (u64, u64) {
    let rate = |key: &str| settings.get("libtorrent", key).as_u64().unwrap_or(0);
    (rate("max_download_rate"), rate("max_upload_rate"))
}

/// `libtorrent.encryption`: 0 disabled, 1 enabled, 2 forced.
pub(super) fn encryption(settings: &Settings) -> shoal_core::Encryption {
    match settings.get("libtorrent", "encryption").as_i64() {
        Some(0) => shoal_core::Encryption::Disabled,
        Some(2) => shoal_core::Encryption::Forced,
        _ => shoal_core::Encryption::Enabled,
    }
}

/// `libtorrent.proxy_type`, `proxy_server` and `proxy_auth`.
pub(super) fn proxy_settings(settings: &Settings) -> (i64, String, String) {
    let text = |key: &str| settings.get("libtorrent", key).as_str().unwrap_or_default().to_owned();
    (settings.get("libtorrent", "proxy_type").as_i64().unwrap_or(0), text("proxy_server"), text("proxy_auth"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fresh() -> Settings {
        Settings { path: PathBuf::from("/nonexistent/triblerd.conf"), saveas_default: "/dl".into(), values: Map::new() }
    }

    #[test]
    fn defaults_cover_both_variants() {
        let t = fresh().tree();
        assert_eq!(t["download_defaults"]["number_hops"], json!(0));
        assert_eq!(t["download_defaults"]["anonymity_enabled"], json!(false));
        assert_eq!(t["download_defaults"]["saveas"], json!("/dl"));
        assert_eq!(t["tunnel_community"]["random_slots"], json!(5)); // R
        assert_eq!(t["ipv8"]["rust_endpoint"], json!(true)); // P
        assert_eq!(t["gui_test_mode"], json!(false));
        assert_eq!(t["libtorrent"]["port"], Value::Null);
        assert_eq!(t["download_defaults"]["seeding_ratio"], json!(2.0));
    }

    /// What `GET /settings` shows for `api` in a daemon on port 43121 with key `k1`.
    fn in_force() -> Value {
        json!({"api": {"key": "k1", "http_port": 43121, "http_host": "127.0.0.1", "http_enabled": true}})
    }

    #[test]
    fn merge_validates_everything_first() {
        let s = fresh();
        let ok = s
            .merged(
                &json!({"Tribler": {}, "nonsense": {}, "libtorrent": {"max_download_rate": 500},
                            "download_defaults": {"seeding_ratio": 2, "number_hops": 0, "saveas": "/x"}, "gui_test_mode": false}),
                &in_force(),
            )
            .unwrap();
        assert_eq!(ok.get("libtorrent", "max_download_rate"), json!(500));
        assert_eq!(ok.get("download_defaults", "saveas"), json!("/x"));
        for bad in [
            json!({"download_defaults": {"number_hops": 7}}),
            json!({"download_defaults": {"number_hops": "1"}}),
            json!({"download_defaults": {"seeding_mode": "sometimes"}}),
            json!({"libtorrent": {"max_upload_rate": -1}}),
            json!({"libtorrent": {"port": 70000}}),
            json!({"libtorrent": {"no_such_key": 1}}),
            json!({"no_such_section": {"a": 1}}),
            json!({"api": 5}),
            json!({"api": {"http_host": "not an ip"}}),
            json!([1]),
        ] {
            assert!(s.merged(&bad, &in_force()).is_err(), "{bad}");
        }
    }

    #[test]
    fn api_settings_only_keep_the_values_in_force() {
        let s = fresh();
        // What a client read is posted back unchanged: accepted, and nothing is stored (the
        // port in force may be one picked at start, not the configured one).
        let same = s.merged(
            &json!({"api": {"key": "k1", "http_port": 43121, "http_host": "127.0.0.1",
                                              "http_enabled": true, "https_port": -1, "retry_port": true}}),
            &in_force(),
        );
        assert_eq!(same.unwrap().to_ini(), s.to_ini());
        for change in [
            json!({"api": {"key": "attacker"}}),
            json!({"api": {"http_port": 8086}}),
            json!({"api": {"http_host": "0.0.0.0"}}),
            json!({"api": {"https_enabled": true}}),
            json!({"api": {"allowed_hosts": "evil.example"}}),
        ] {
            let e = s.merged(&change, &in_force()).unwrap_err();
            let name = change["api"].as_object().unwrap().keys().next().unwrap().clone();
            assert!(e.contains(&format!("api.{name} cannot be changed over the REST API")), "{e}");
        }
    }

    #[test]
    fn the_peer_port_in_force_is_not_pinned_by_a_post_back() {
        let s = fresh();
        let live = json!({"libtorrent": {"port": 41000}});
        let next = s.merged(&json!({"libtorrent": {"port": 41000}}), &live).unwrap();
        assert_eq!(next.get("libtorrent", "port"), Value::Null);
        let next = s.merged(&json!({"libtorrent": {"port": 41001}}), &live).unwrap();
        assert_eq!(next.get("libtorrent", "port"), json!(41001));
    }

    #[test]
    fn settings_without_effect_refuse_a_change() {
        let s = fresh();
        for (section, name, value) in [
            ("watch_folder", "enabled", json!(true)),
            ("watch_folder", "directory", json!("/w")),
            ("download_defaults", "seeding_mode", json!("ratio")),
            ("download_defaults", "seeding_ratio", json!(1.5)),
            ("download_defaults", "seeding_time", json!(30)),
            ("download_defaults", "number_hops", json!(2)),
            ("", "gui_test_mode", json!(true)),
        ] {
            let patch = if section.is_empty() { json!({ name: value }) } else { json!({ section: { name: value } }) };
            let e = s.merged(&patch, &in_force()).unwrap_err();
            assert!(e.contains(&format!("{} has no effect", display(section, name))), "{e}");
            let current = s.get(section, name);
            let patch =
                if section.is_empty() { json!({ name: current }) } else { json!({ section: { name: current } }) };
            assert!(s.merged(&patch, &in_force()).is_ok(), "{patch}");
        }
    }

    #[test]
    fn proxy_settings_are_checked_together() {
        let s = fresh();
        let socks5 = json!({"libtorrent": {"proxy_type": 3, "proxy_server": "127.0.0.1:1080", "proxy_auth": "u:p"}});
        let next = s.merged(&socks5, &in_force()).unwrap();
        assert_eq!(proxy_settings(&next), (3, "127.0.0.1:1080".into(), "u:p".into()));
        for (patch, says) in [
            (json!({"libtorrent": {"proxy_type": 1, "proxy_server": "127.0.0.1:1080"}}), "proxy_type 1 (SOCKS4)"),
            (json!({"libtorrent": {"proxy_type": 4, "proxy_server": "127.0.0.1:8080"}}), "proxy_type 4 (HTTP)"),
            (json!({"libtorrent": {"proxy_type": 5}}), "proxy_type 5 (HTTP with authentication)"),
            (json!({"libtorrent": {"proxy_type": 2}}), "libtorrent.proxy_server"),
            (json!({"libtorrent": {"proxy_type": 3, "proxy_server": "h:1"}}), "libtorrent.proxy_auth"),
        ] {
            let e = s.merged(&patch, &in_force()).unwrap_err();
            assert!(e.contains(says), "{e}");
        }
    }

    #[test]
    fn ini_round_trip_of_nasty_values() {
        let s = fresh();
        let long = "x".repeat(100_000);
        let mut refused = Vec::new();
        for v in [
            "\"abc",
            "a\"b\"",
            "'q",
            "a;b",
            ";a",
            "a#b",
            "#a",
            "a\nb",
            "a\r\nb",
            "[s]",
            "[s",
            "a=b",
            "=",
            " a",
            "a ",
            " ",
            "\\",
            "a\\n",
            "é→😀",
            "\u{0}",
            "\t",
            long.as_str(),
            "None",
            "",
        ] {
            let patch = json!({"download_defaults": {"saveas": v}});
            match s.merged(&patch, &in_force()) {
                // Accepted: the file holds it and gives it back identically.
                Ok(next) => {
                    let mut back = fresh();
                    back.read_ini(&next.to_ini()).unwrap_or_else(|e| panic!("{v:?}: {e}"));
                    assert_eq!(back.get("download_defaults", "saveas"), json!(v), "{v:?}");
                }
                Err(e) => refused.push((v, e)),
            }
        }
        // The values that do not survive the INI file are refused, naming the key.
        let shown: Vec<_> = refused.iter().map(|(v, _)| *v).collect();
        for must in ["\"abc", "'q", " a", "a ", " ", "\t", ""] {
            assert!(shown.contains(&must), "{must:?} accepted; refused: {shown:?}");
        }
        assert!(refused.iter().all(|(_, e)| e.contains("download_defaults.saveas")), "{refused:?}");
        for rate in [json!(i64::MAX), json!(0), json!(1)] {
            let next = s.merged(&json!({"libtorrent": {"max_upload_rate": rate}}), &in_force()).unwrap();
            let mut back = fresh();
            back.read_ini(&next.to_ini()).unwrap();
            assert_eq!(back.get("libtorrent", "max_upload_rate"), rate);
        }
        for bad in [json!(u64::MAX), json!(1e308), json!(-0.0), json!(1.5), json!("1")] {
            assert!(s.merged(&json!({"libtorrent": {"max_upload_rate": bad}}), &in_force()).is_err(), "{bad}");
        }
        for ratio in [1e308, -0.0, 0.1, 1e-300, 2.5e15] {
            assert!(s.round_trips(find("download_defaults", "seeding_ratio").unwrap(), &json!(ratio)), "{ratio}");
        }
    }

    #[test]
    fn a_bad_file_is_moved_aside() {
        let dir = std::env::temp_dir().join(format!("shoal-settings-bad-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("triblerd.conf"), "[download_defaults]\nsaveas=\"abc\n").unwrap();
        let (s, _, error) = Settings::load(&dir).unwrap();
        let error = error.expect("no error reported");
        assert!(error.message.contains("triblerd.conf"), "{}", error.message);
        assert!(!dir.join("triblerd.conf").exists());
        assert_eq!(std::fs::read_to_string(&error.kept).unwrap(), "[download_defaults]\nsaveas=\"abc\n");
        assert!(error.kept.file_name().unwrap().to_str().unwrap().starts_with("triblerd.conf.bad-"));
        assert_eq!(s.get("download_defaults", "saveas"), json!(default_saveas(&dir).to_str().unwrap()));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn ini_round_trip() {
        let mut s = fresh();
        s.set("api", "key", json!("abc")).unwrap();
        s.set("download_defaults", "seeding_time", json!(30)).unwrap();
        s.set("libtorrent", "utp", json!(false)).unwrap();
        s.set("", "gui_test_mode", json!(true)).unwrap();
        s.set("download_defaults", "saveas", json!("/x y/z")).unwrap();
        let text = s.to_ini();
        assert!(text.contains("[api]\nkey=abc"), "{text}");
        assert!(text.contains("seeding_time=30.0"), "{text}");
        assert!(text.contains("utp=False"), "{text}");
        assert!(!text.contains("number_hops"), "{text}");
        let mut back = fresh();
        back.read_ini(&text).unwrap();
        assert_eq!(back.tree(), s.tree());
    }
}
