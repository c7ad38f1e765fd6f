//! The raw layer: serde structs mirroring the YAML file one to one.
//!
//! Every key is optional here so that validation can report all missing required keys at
//! once and apply the defaults from one place. Unknown keys are rejected. Durations and sizes
//! are kept as text (`5s` and `5` both arrive as strings, since the target type is `String`)
//! and parsed during validation, so a bad one does not stop the other checks.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

use super::compression::RawCompression;
use super::edge::{RawListenEntry, RawRealIp, RawTls};
use super::site::{RawLocation, RawStatic};
use super::{Balance, LogFormat, MismatchAction};

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub listen: Option<OneOrMany>,
    pub document_root: Option<String>,
    pub index: Option<String>,
    pub front_controller: Option<String>,
    pub max_body_size: Option<String>,
    pub body_buffer_size: Option<String>,
    pub request_buffering: Option<bool>,
    pub request_temp_total: Option<String>,
    pub response_buffering: Option<bool>,
    pub response_buffer_size: Option<String>,
    pub response_max_temp_file: Option<String>,
    pub response_temp_total: Option<String>,
    pub max_request_line: Option<String>,
    pub max_header_line: Option<String>,
    pub max_header_size: Option<String>,
    pub max_connections: Option<usize>,
    pub max_connections_per_client: Option<usize>,
    pub workers: Option<String>,
    pub server_name: Option<String>,
    pub https: Option<bool>,
    pub params: Option<Params>,
    pub balance: Option<Balance>,
    pub timeouts: Option<RawTimeouts>,
    pub max_fails: Option<u32>,
    pub fail_timeout: Option<String>,
    pub queue_size: Option<usize>,
    pub log: Option<RawLog>,
    pub backends: Option<Vec<RawBackend>>,
    pub resolve_interval: Option<String>,
    pub session: Option<RawSession>,
    pub health: Option<RawHealth>,
    pub admin: Option<RawAdmin>,
    pub tls: Option<RawTls>,
    pub real_ip: Option<RawRealIp>,
    pub compression: Option<RawCompression>,
    #[serde(rename = "static")]
    pub static_files: Option<RawStatic>,
    pub error_pages: Option<Params>,
    pub locations: Option<Vec<RawLocation>>,
}

/// `timeouts:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTimeouts {
    pub connect: Option<String>,
    pub send: Option<String>,
    pub read: Option<String>,
    pub queue: Option<String>,
    pub idle: Option<String>,
    pub client_header: Option<String>,
    pub client_body: Option<String>,
    pub client_send: Option<String>,
    pub client_idle: Option<String>,
    pub shutdown_grace: Option<String>,
}

/// `log:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLog {
    pub level: Option<String>,
    pub format: Option<LogFormat>,
    pub access_log: Option<bool>,
}

/// An entry of `backends:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBackend {
    pub name: Option<String>,
    pub address: Option<String>,
    pub weight: Option<u32>,
    pub max_conns: Option<u32>,
    pub group: Option<String>,
    pub backup: Option<bool>,
}

/// `session:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSession {
    pub save_handler: Option<String>,
    pub save_path: Option<String>,
}

/// `health:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHealth {
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub rise: Option<u32>,
    pub fall: Option<u32>,
    pub ping_path: Option<String>,
    pub ping_response: Option<String>,
    pub status_path: Option<String>,
    pub probe_script: Option<String>,
    pub session_interval: Option<String>,
    pub on_session_mismatch: Option<MismatchAction>,
}

/// `admin:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    #[serde(default, deserialize_with = "present")]
    pub listen: Present,
    pub token: Option<String>,
    pub hosts: Option<Vec<String>>,
}

/// A key whose `null` value means something else than leaving the key out.
#[derive(Debug, Default)]
pub(super) enum Present {
    /// The key is not in the file: the default applies.
    #[default]
    Absent,
    /// `key: ~` or `key:`.
    Null,
    /// `key: value`.
    Value(String),
}

/// Deserializes a key that is present (serde calls it only then) into [`Present`].
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Present, D::Error> {
    Ok(match Option::<String>::deserialize(d)? {
        Some(value) => Present::Value(value),
        None => Present::Null,
    })
}

/// `listen:`: one entry or a list of entries, each an address or a map.
#[derive(Debug)]
pub(super) enum OneOrMany {
    /// `listen: ":8080"` or `listen: {address: ":443", tls: true}`.
    One(RawListenEntry),
    /// `listen: [":8080", {address: ":443", tls: true}]`, possibly empty.
    Many(Vec<RawListenEntry>),
}

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct OneOrManyVisitor;

        impl<'de> Visitor<'de> for OneOrManyVisitor {
            type Value = OneOrMany;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an address or a list of addresses")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany::One(RawListenEntry::Address(v.to_owned())))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<OneOrMany, E> {
                Ok(OneOrMany::One(RawListenEntry::Address(v.to_string())))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<OneOrMany, E> {
                Ok(OneOrMany::One(RawListenEntry::Address(v.to_string())))
            }

            fn visit_unit<E: de::Error>(self) -> Result<OneOrMany, E> {
                Ok(OneOrMany::Many(Vec::new()))
            }

            fn visit_none<E: de::Error>(self) -> Result<OneOrMany, E> {
                Ok(OneOrMany::Many(Vec::new()))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<OneOrMany, A::Error> {
                RawListenEntry::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(OneOrMany::One)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrMany, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<RawListenEntry>()? {
                    items.push(item);
                }
                Ok(OneOrMany::Many(items))
            }
        }

        d.deserialize_any(OneOrManyVisitor)
    }
}

/// `params:`: a mapping of strings kept in file order.
#[derive(Debug, Default)]
pub(super) struct Params(pub Vec<(String, String)>);

impl<'de> Deserialize<'de> for Params {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ParamsVisitor;

        impl<'de> Visitor<'de> for ParamsVisitor {
            type Value = Params;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of parameter names to values")
            }

            fn visit_unit<E: de::Error>(self) -> Result<Params, E> {
                Ok(Params::default())
            }

            fn visit_none<E: de::Error>(self) -> Result<Params, E> {
                Ok(Params::default())
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Params, A::Error> {
                let mut params = Vec::new();
                while let Some(entry) = map.next_entry::<String, String>()? {
                    params.push(entry);
                }
                Ok(Params(params))
            }
        }

        d.deserialize_map(ParamsVisitor)
    }
}
