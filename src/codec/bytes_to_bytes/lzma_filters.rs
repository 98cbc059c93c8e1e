//! Filter chains of numcodecs' `LZMA` (`filters`), as Python's `lzma` module reads filter
//! specifiers: LZMA1, LZMA2, delta and the branch (BCJ) filters, turned into liblzma chains.

use liblzma::stream::{Filters, LzmaOptions, MatchFinder, Mode};
use serde_json::Value;

use crate::codec::CodecError;

const CODEC: &str = "lzma";
/// Python's `lzma.FILTER_LZMA1`.
const FILTER_LZMA1: u64 = 0x4000_0000_0000_0001;
/// Python's `lzma.FILTER_LZMA2`.
const FILTER_LZMA2: u64 = 0x21;
/// Python's `lzma.FILTER_DELTA`.
const FILTER_DELTA: u64 = 0x03;
/// liblzma's limit on the filters of one chain.
const MAX_FILTERS: usize = 4;
/// The keys an LZMA1/LZMA2 specifier may have.
const LZMA_KEYS: &[&str] = &[
    "id",
    "preset",
    "dict_size",
    "lc",
    "lp",
    "pb",
    "mode",
    "nice_len",
    "mf",
    "depth",
];

/// One filter of a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FilterSpec {
    /// LZMA1 (`lzma2` false) or LZMA2, from a preset with some settings overridden.
    Lzma {
        /// LZMA2 rather than LZMA1.
        lzma2: bool,
        /// The preset the settings start from (default 6).
        preset: u32,
        /// Overridden settings: dict_size, lc, lp, pb, mode, nice_len, mf, depth.
        settings: Vec<(&'static str, u32)>,
    },
    /// Byte-wise delta of distance `dist` (1..=256).
    Delta {
        /// Distance in bytes.
        dist: u32,
    },
    /// A branch converter (x86, PowerPC, IA-64, ARM, ARM-Thumb, SPARC, ARM64, RISC-V).
    Bcj {
        /// Its filter id.
        id: u64,
        /// Start offset.
        start_offset: u32,
    },
}

fn u32_value(key: &str, value: &Value) -> Result<u32, CodecError> {
    value
        .as_u64()
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(|| {
            CodecError::config(
                CODEC,
                format!("filter \"{key}\" must be a u32, got {value}"),
            )
        })
}

impl FilterSpec {
    /// Parses one specifier (`{"id": …, …}`), refusing keys Python would refuse.
    fn parse(spec: &Value) -> Result<Self, CodecError> {
        let object = spec
            .as_object()
            .ok_or_else(|| CodecError::config(CODEC, format!("filter {spec} is not an object")))?;
        let id = object
            .get("id")
            .and_then(Value::as_u64)
            .ok_or_else(|| CodecError::config(CODEC, format!("filter {spec} has no integer id")))?;
        let allowed: &[&str] = match id {
            FILTER_LZMA1 | FILTER_LZMA2 => LZMA_KEYS,
            FILTER_DELTA => &["id", "dist"],
            0x04..=0x0b => &["id", "start_offset"],
            other => {
                return Err(CodecError::Unsupported(format!(
                    "lzma filter id {other:#x}"
                )))
            }
        };
        if let Some(key) = object.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(CodecError::config(
                CODEC,
                format!("invalid key {key:?} in filter specifier {spec}"),
            ));
        }
        let field = |key: &str, default: u32| match object.get(key) {
            None => Ok(default),
            Some(v) => u32_value(key, v),
        };
        Ok(match id {
            FILTER_LZMA1 | FILTER_LZMA2 => FilterSpec::Lzma {
                lzma2: id == FILTER_LZMA2,
                preset: field("preset", 6)?,
                settings: LZMA_KEYS[2..]
                    .iter()
                    .filter_map(|&key| object.get(key).map(|v| u32_value(key, v).map(|v| (key, v))))
                    .collect::<Result<_, _>>()?,
            },
            FILTER_DELTA => FilterSpec::Delta {
                dist: field("dist", 1)?,
            },
            _ => FilterSpec::Bcj {
                id,
                start_offset: field("start_offset", 0)?,
            },
        })
    }

    /// liblzma's options for an LZMA1/LZMA2 filter.
    pub(crate) fn lzma_options(&self) -> Result<LzmaOptions, CodecError> {
        let FilterSpec::Lzma {
            preset, settings, ..
        } = self
        else {
            return Err(CodecError::config(CODEC, "not an LZMA filter"));
        };
        let mut options = LzmaOptions::new_preset(*preset)
            .map_err(|_| CodecError::config(CODEC, format!("invalid preset {preset}")))?;
        for &(key, value) in settings {
            let invalid = || CodecError::config(CODEC, format!("invalid {key} {value}"));
            match key {
                "dict_size" => options.dict_size(value),
                "lc" => options.literal_context_bits(value),
                "lp" => options.literal_position_bits(value),
                "pb" => options.position_bits(value),
                "nice_len" => options.nice_len(value),
                "depth" => options.depth(value),
                "mode" => options.mode(match value {
                    1 => Mode::Fast,
                    2 => Mode::Normal,
                    _ => return Err(invalid()),
                }),
                _ => options.match_finder(match value {
                    0x03 => MatchFinder::HashChain3,
                    0x04 => MatchFinder::HashChain4,
                    0x12 => MatchFinder::BinaryTree2,
                    0x13 => MatchFinder::BinaryTree3,
                    0x14 => MatchFinder::BinaryTree4,
                    _ => return Err(invalid()),
                }),
            };
        }
        Ok(options)
    }

    fn push(&self, filters: &mut Filters) -> Result<(), CodecError> {
        let invalid = |e| CodecError::config(CODEC, format!("invalid filter {self:?}: {e}"));
        match self {
            FilterSpec::Lzma { lzma2: false, .. } => {
                filters.lzma1(&self.lzma_options()?);
            }
            FilterSpec::Lzma { lzma2: true, .. } => {
                filters.lzma2(&self.lzma_options()?);
            }
            FilterSpec::Delta { dist } => {
                let property = dist
                    .checked_sub(1)
                    .and_then(|d| u8::try_from(d).ok())
                    .ok_or_else(|| CodecError::config(CODEC, format!("delta dist {dist}")))?;
                filters.delta_properties(&[property]).map_err(invalid)?;
            }
            FilterSpec::Bcj { id, start_offset } => {
                let properties = start_offset.to_le_bytes();
                let properties: &[u8] = if *start_offset == 0 { &[] } else { &properties };
                match id {
                    0x04 => filters.x86_properties(properties),
                    0x05 => filters.powerpc_properties(properties),
                    0x06 => filters.ia64_properties(properties),
                    0x07 => filters.arm_properties(properties),
                    0x08 => filters.arm_thumb_properties(properties),
                    0x09 => filters.sparc_properties(properties),
                    0x0a => filters.arm64_properties(properties),
                    _ => filters.riscv_properties(properties),
                }
                .map_err(invalid)?;
            }
        }
        Ok(())
    }
}

/// A filter chain: the specifiers of a `filters` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FilterChain(pub(crate) Vec<FilterSpec>);

impl FilterChain {
    /// Parses a `filters` list; `None` for null.
    pub(crate) fn parse(value: Option<&Value>) -> Result<Option<Self>, CodecError> {
        let list = match value {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Array(list)) => list,
            Some(other) => {
                return Err(CodecError::config(
                    CODEC,
                    format!("filters must be a list, got {other}"),
                ))
            }
        };
        if list.is_empty() || list.len() > MAX_FILTERS {
            return Err(CodecError::config(
                CODEC,
                format!("a filter chain holds 1 to {MAX_FILTERS} filters"),
            ));
        }
        let chain = FilterChain(
            list.iter()
                .map(FilterSpec::parse)
                .collect::<Result<_, _>>()?,
        );
        chain.build()?;
        Ok(Some(chain))
    }

    /// The liblzma chain.
    pub(crate) fn build(&self) -> Result<Filters, CodecError> {
        let mut filters = Filters::new();
        for spec in &self.0 {
            spec.push(&mut filters)?;
        }
        Ok(filters)
    }
}
