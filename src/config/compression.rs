//! The `compression:` section (nginx's `gzip`, `gzip_types`,
//! `gzip_min_length`, `gzip_comp_level`, and the brotli module's), from
//! the raw YAML to typed values. What is compressed and how is
//! `crate::http::compress`'s business.

use serde::Deserialize;

use super::defaults as d;
use super::parse::parse_size;
use super::validate::Validator;

/// A content coding fpmlb can compress with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub enum Encoding {
    /// Zstandard (RFC 8878, `zstd` in HTTP, RFC 9659).
    #[serde(rename = "zstd")]
    Zstd,
    /// Brotli (RFC 7932).
    #[serde(rename = "br")]
    Br,
    /// gzip (RFC 1952).
    #[serde(rename = "gzip")]
    Gzip,
}

impl Encoding {
    /// The content-coding token (Content-Encoding, Accept-Encoding).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Zstd => "zstd",
            Encoding::Br => "br",
            Encoding::Gzip => "gzip",
        }
    }
}

/// `compression.levels`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Levels {
    /// 1..=9, zlib's scale (nginx `gzip_comp_level`).
    pub gzip: u32,
    /// 0..=11, brotli's quality (ngx_brotli `brotli_comp_level`).
    pub br: u32,
    /// 1..=19, zstd's levels (22 is allowed by zstd, but needs windows HTTP
    /// clients need not accept).
    pub zstd: i32,
}

impl Levels {
    /// What one response's compressor holds at most, as measured for each
    /// coding and level (the RSS of compressors fed 2 MiB of HTML, rounded up:
    /// README, Compression): brotli's and zstd's grow steeply with the level.
    #[must_use]
    pub fn state_size(self, encoding: Encoding) -> usize {
        const KIB: usize = 1024;
        match encoding {
            // zlib's window and hash chains, whatever the level.
            Encoding::Gzip => 400 * KIB,
            Encoding::Br => {
                KIB * match self.br {
                    0 | 1 => 128,
                    2 | 3 => 2_250,
                    4 => 6_000,
                    5 => 7_000,
                    6 => 8_000,
                    7 => 13_500,
                    8 => 22_000,
                    9 => 40_000,
                    _ => 15_000,
                }
            }
            Encoding::Zstd => {
                KIB * match self.zstd {
                    ..=1 => 1_000,
                    2 => 1_250,
                    3 => 1_750,
                    4 => 3_000,
                    5 | 6 => 3_500,
                    7 | 8 => 6_250,
                    9 => 11_500,
                    10 => 21_500,
                    11 | 12 => 42_000,
                    13..=15 => 67_000,
                    _ => 85_000,
                }
            }
        }
    }
}

impl Levels {
    /// What one response's compressor holds at most when brotli is given
    /// `br_hint` (the body's length, under 1 MiB: brotli sizes its window
    /// and hasher to it), as measured for lengths up to 64 KiB and 256 KiB
    /// (RSS, plus 6%, rounded up: README, Compression); else
    /// [`Levels::state_size`]. A stylesheet or a page of known length
    /// then costs brotli at level 4 2.75 MiB of the budget, not 6.
    #[must_use]
    pub fn state_size_for(self, encoding: Encoding, br_hint: Option<usize>) -> usize {
        const KIB: usize = 1024;
        let class = match br_hint {
            Some(n) if encoding == Encoding::Br && n <= 64 * KIB => 0,
            Some(n) if encoding == Encoding::Br && n <= 256 * KIB => 1,
            _ => return self.state_size(encoding),
        };
        let sizes: [usize; 2] = match self.br {
            0 | 1 => [128, 128],
            2 | 3 => [1_875, 2_250],
            4 => [2_875, 3_375],
            5 => [3_375, 3_875],
            6 => [4_500, 5_000],
            7 => [11_000, 11_500],
            8 => [19_750, 20_250],
            9 => [37_375, 40_000],
            _ => [7_625, 11_250],
        };
        (KIB * sizes[class]).min(self.state_size(encoding))
    }
}

impl Default for Levels {
    fn default() -> Self {
        d::COMPRESSION_LEVELS
    }
}

/// The `compression:` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompressionConfig {
    /// The codings fpmlb offers, its preference among equal q-values first;
    /// empty: compression off.
    pub encodings: Vec<Encoding>,
    /// Media types compressed (`type/subtype`, lower case; `*` for any).
    pub types: Vec<String>,
    /// Responses with a known length below this are sent as they are.
    pub min_size: u64,
    /// Level of each coding.
    pub levels: Levels,
    /// What the compressors' states may hold, all responses together.
    pub max_memory: u64,
}

impl Default for CompressionConfig {
    fn default() -> Self {
        CompressionConfig {
            encodings: d::COMPRESSION_ENCODINGS.to_vec(),
            types: d::COMPRESSION_TYPES
                .iter()
                .map(|t| (*t).to_owned())
                .collect(),
            min_size: d::COMPRESSION_MIN_SIZE,
            levels: Levels::default(),
            max_memory: d::COMPRESSION_MAX_MEMORY,
        }
    }
}

/// `compression:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCompression {
    pub encodings: Option<Vec<Encoding>>,
    pub types: Option<Vec<String>>,
    pub min_size: Option<String>,
    pub levels: Option<RawLevels>,
    pub max_memory: Option<String>,
}

/// `compression.levels:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLevels {
    pub gzip: Option<i64>,
    pub br: Option<i64>,
    pub zstd: Option<i64>,
}

impl Validator<'_> {
    pub(super) fn compression(&mut self, raw: RawCompression) -> CompressionConfig {
        let defaults = CompressionConfig::default();
        let mut encodings: Vec<Encoding> = Vec::new();
        for (i, e) in raw
            .encodings
            .unwrap_or(defaults.encodings)
            .into_iter()
            .enumerate()
        {
            if encodings.contains(&e) {
                self.error(
                    &format!("compression.encodings[{i}]"),
                    format!("{} is listed twice", e.as_str()),
                );
            } else {
                encodings.push(e);
            }
        }
        let mut types: Vec<String> = Vec::new();
        for (i, t) in raw.types.unwrap_or(defaults.types).into_iter().enumerate() {
            let t = t.trim().to_ascii_lowercase();
            if !is_media_type(&t) {
                self.error(
                    &format!("compression.types[{i}]"),
                    format!("a media type such as text/html (no parameters), or *: got {t:?}"),
                );
            } else if !types.contains(&t) {
                types.push(t);
            }
        }
        let min_size = match raw.min_size {
            None => defaults.min_size,
            Some(text) => parse_size(&text).unwrap_or_else(|message| {
                self.error("compression.min_size", message);
                defaults.min_size
            }),
        };
        let max_memory = match raw.max_memory {
            None => defaults.max_memory,
            Some(text) => parse_size(&text).unwrap_or_else(|message| {
                self.error("compression.max_memory", message);
                defaults.max_memory
            }),
        };
        let raw_levels = raw.levels.unwrap_or_default();
        let mut level =
            |name: &str, value: Option<i64>, range: (i64, i64), default: i64| match value {
                None => default,
                Some(v) if (range.0..=range.1).contains(&v) => v,
                Some(v) => {
                    self.error(
                        &format!("compression.levels.{name}"),
                        format!("must be {} to {}, got {v}", range.0, range.1),
                    );
                    default
                }
            };
        let dl = defaults.levels;
        let levels = Levels {
            gzip: u32::try_from(level("gzip", raw_levels.gzip, (1, 9), dl.gzip.into()))
                .unwrap_or(dl.gzip),
            br: u32::try_from(level("br", raw_levels.br, (0, 11), dl.br.into())).unwrap_or(dl.br),
            zstd: i32::try_from(level("zstd", raw_levels.zstd, (1, 19), dl.zstd.into()))
                .unwrap_or(dl.zstd),
        };
        // A budget no compressor fits in would turn compression off
        // without a word: say so, with what each coding needs.
        for &e in &encodings {
            let needs = levels.state_size(e) as u64;
            if max_memory < needs {
                self.error(
                    "compression.max_memory",
                    format!(
                        "{max_memory} bytes cannot hold one {} compressor at its level ({needs} bytes): raise it, lower compression.levels, or leave {} out of compression.encodings",
                        e.as_str(),
                        e.as_str()
                    ),
                );
            }
        }
        CompressionConfig {
            encodings,
            types,
            min_size,
            levels,
            max_memory,
        }
    }
}

/// `type/subtype` of RFC 9110 tokens, or `*`.
fn is_media_type(t: &str) -> bool {
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    };
    t == "*" || t.split_once('/').is_some_and(|(a, b)| token(a) && token(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, ConfigError};

    const HEAD: &str = "listen: \":80\"\ndocument_root: /srv\nbackends:\n  - {name: a, address: \"127.0.0.1:9000\"}\n";

    fn ok(yaml: &str) -> CompressionConfig {
        let yaml = format!("{HEAD}{yaml}");
        Config::from_yaml(&yaml)
            .unwrap_or_else(|e| panic!("{e}\nin:\n{yaml}"))
            .compression
    }

    /// A hinted brotli state is never charged more than an unhinted one,
    /// nor less for a longer body; other codings ignore the hint.
    #[test]
    fn hinted_state_sizes_grow_with_the_length_up_to_the_unhinted_one() {
        for br in 0..=11 {
            let levels = Levels {
                br,
                ..Levels::default()
            };
            let full = levels.state_size(Encoding::Br);
            let small = levels.state_size_for(Encoding::Br, Some(64 * 1024));
            let medium = levels.state_size_for(Encoding::Br, Some(64 * 1024 + 1));
            assert!(
                small <= medium && medium <= full,
                "br {br}: {small} {medium} {full}"
            );
            assert_eq!(
                levels.state_size_for(Encoding::Br, Some(256 * 1024 + 1)),
                full
            );
            assert_eq!(levels.state_size_for(Encoding::Br, None), full);
        }
        let levels = Levels::default();
        assert!(levels.state_size_for(Encoding::Br, Some(1000)) < levels.state_size(Encoding::Br));
        for e in [Encoding::Gzip, Encoding::Zstd] {
            assert_eq!(levels.state_size_for(e, Some(1000)), levels.state_size(e));
        }
    }

    fn errors(yaml: &str) -> Vec<ConfigError> {
        match Config::from_yaml(&format!("{HEAD}{yaml}")) {
            Ok(c) => panic!("expected errors, got {:?}", c.compression),
            Err(e) => e.0,
        }
    }

    #[test]
    fn defaults_and_partial_sections() {
        let c = ok("");
        assert_eq!(c, CompressionConfig::default());
        assert_eq!(
            c.encodings,
            vec![Encoding::Zstd, Encoding::Br, Encoding::Gzip]
        );
        assert!(c.types.contains(&"text/html".to_owned()));
        assert_eq!(c.min_size, 1024);
        // What `fpmlb import-nginx` writes for `gzip on; gzip_comp_level 6`.
        let c = ok(
            "compression:\n  encodings: [gzip]\n  types: [text/html, Text/CSS]\n  min_size: \"1000\"\n  levels: {gzip: 6}\n",
        );
        assert_eq!(c.encodings, vec![Encoding::Gzip]);
        assert_eq!(c.types, vec!["text/html", "text/css"]);
        assert_eq!(c.min_size, 1000);
        assert_eq!(c.levels.gzip, 6);
        assert_eq!(c.levels.br, Levels::default().br);
        assert!(ok("compression: {encodings: []}\n").encodings.is_empty());
        assert_eq!(ok("compression: {types: [\"*\"]}\n").types, vec!["*"]);
    }

    #[test]
    fn errors_name_key_and_line() {
        let e = errors(
            "compression:\n  encodings: [gzip, gzip]\n  types: [text/html, \"text/html; charset=utf-8\", html]\n  min_size: lots\n  levels: {gzip: 10, br: 12, zstd: 0}\n",
        );
        let got: Vec<(&str, Option<usize>)> = e.iter().map(|e| (e.key.as_str(), e.line)).collect();
        assert_eq!(
            got,
            vec![
                ("compression.encodings[1]", Some(6)),
                ("compression.types[1]", Some(7)),
                ("compression.types[2]", Some(7)),
                ("compression.min_size", Some(8)),
                ("compression.levels.gzip", Some(9)),
                ("compression.levels.br", Some(9)),
                ("compression.levels.zstd", Some(9)),
            ]
        );
        let e = errors("compression:\n  encodings: [deflate]\n");
        assert_eq!(e[0].key, "compression.encodings[0]", "{e:?}");
        let e = errors("compression:\n  level: 5\n");
        assert_eq!(e[0].key, "compression.level", "{e:?}");
    }

    /// `max_memory` takes a size, and must hold one compressor of each
    /// coding offered at its level: a budget that cannot would turn that
    /// coding off without a word.
    #[test]
    fn max_memory_holds_each_coding_offered() {
        assert_eq!(ok("").max_memory, 256 << 20);
        assert_eq!(ok("compression: {max_memory: 64m}\n").max_memory, 64 << 20);
        let gzip_only = ok("compression: {encodings: [gzip], max_memory: 500k}\n");
        assert_eq!(gzip_only.max_memory, 500 * 1024);
        // brotli at level 4 needs 6 MiB.
        let e = errors("compression: {max_memory: 1m}\n");
        assert_eq!(e.len(), 2, "{e:?}");
        assert_eq!(e[0].key, "compression.max_memory");
        assert!(
            e.iter().any(|e| e.message.contains("one br compressor")),
            "{e:?}"
        );
        assert!(
            e.iter().any(|e| e.message.contains("one zstd compressor")),
            "{e:?}"
        );
        assert!(
            ok("compression: {max_memory: 1m, levels: {br: 1, zstd: 1}}\n").max_memory == 1 << 20
        );
        let e = errors("compression: {encodings: [gzip], max_memory: 0}\n");
        assert!(e[0].message.contains("one gzip compressor"), "{e:?}");
        let e = errors("compression: {max_memory: lots}\n");
        assert_eq!(e[0].key, "compression.max_memory", "{e:?}");
        // Compression off: any budget will do.
        assert!(
            ok("compression: {encodings: [], max_memory: 0}\n")
                .encodings
                .is_empty()
        );
    }
}
