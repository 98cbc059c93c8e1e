//! numcodecs' `checksum32` family: the bytes with a 32-bit little-endian checksum before or
//! after them (CRC-32, Adler-32, CRC-32C, HDF5's Fletcher-32, Bob Jenkins' lookup3), checked
//! on every decode.

use serde_json::Value;

use crate::codec::{int_field, size_mismatch, BytesToBytesCodec, CodecError};

/// The checksum algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checksum {
    /// zlib's CRC-32.
    Crc32,
    /// zlib's Adler-32.
    Adler32,
    /// CRC-32C (Castagnoli).
    Crc32c,
    /// HDF5's Fletcher-32 (16-bit big-endian words).
    Fletcher32,
    /// Bob Jenkins' lookup3 `hashlittle`, from an initial value.
    JenkinsLookup3 {
        /// The hash's seed.
        initval: u32,
    },
}

impl Checksum {
    /// The numcodecs id.
    pub fn id(self) -> &'static str {
        match self {
            Checksum::Crc32 => "crc32",
            Checksum::Adler32 => "adler32",
            Checksum::Crc32c => "crc32c",
            Checksum::Fletcher32 => "fletcher32",
            Checksum::JenkinsLookup3 { .. } => "jenkins_lookup3",
        }
    }

    /// The checksum of `data`; `None` where numcodecs fails (Fletcher-32 of nothing).
    fn of(self, data: &[u8]) -> Option<u32> {
        Some(match self {
            Checksum::Crc32 => crc32fast::hash(data),
            Checksum::Adler32 => {
                let mut adler = adler2::Adler32::new();
                adler.write_slice(data);
                adler.checksum()
            }
            Checksum::Crc32c => crc32c::crc32c(data),
            Checksum::Fletcher32 => fletcher32(data)?,
            Checksum::JenkinsLookup3 { initval } => jenkins_lookup3(data, initval),
        })
    }
}

/// Where the checksum goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// Before the bytes.
    Start,
    /// After the bytes.
    End,
}

/// A `checksum32` codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checksum32Codec {
    checksum: Checksum,
    location: Location,
}

impl Checksum32Codec {
    /// The v3 `crc32c` codec: CRC-32C after the bytes.
    pub const CRC32C: Checksum32Codec = Checksum32Codec {
        checksum: Checksum::Crc32c,
        location: Location::End,
    };

    /// The numcodecs codec `id` configured by `config`; `None` for other ids. CRC-32 and
    /// Adler-32 go first and CRC-32C last unless `location` says otherwise; Fletcher-32 and
    /// lookup3 always go last.
    pub fn from_config(id: &str, config: &Value) -> Option<Result<Self, CodecError>> {
        let (checksum, location) = match id {
            "crc32" => (Checksum::Crc32, Location::Start),
            "adler32" => (Checksum::Adler32, Location::Start),
            "crc32c" => (Checksum::Crc32c, Location::End),
            "fletcher32" => (Checksum::Fletcher32, Location::End),
            "jenkins_lookup3" => (Checksum::JenkinsLookup3 { initval: 0 }, Location::End),
            _ => return None,
        };
        Some(Self::configure(checksum, location, config))
    }

    fn configure(
        checksum: Checksum,
        default: Location,
        config: &Value,
    ) -> Result<Self, CodecError> {
        let id = checksum.id();
        let location = match config.get("location") {
            None | Some(Value::Null) => default,
            Some(v)
                if matches!(
                    checksum,
                    Checksum::Crc32 | Checksum::Adler32 | Checksum::Crc32c
                ) =>
            {
                match v.as_str() {
                    Some("start") => Location::Start,
                    Some("end") => Location::End,
                    _ => {
                        return Err(CodecError::config(
                            id,
                            format!("location must be \"start\" or \"end\", got {v}"),
                        ))
                    }
                }
            }
            Some(_) => return Err(CodecError::config(id, "takes no location")),
        };
        let checksum = match checksum {
            Checksum::JenkinsLookup3 { .. } => {
                if !matches!(config.get("prefix"), None | Some(Value::Null)) {
                    return Err(CodecError::Unsupported(format!("{id} with a prefix")));
                }
                let initval = int_field(id, config, "initval")?.unwrap_or(0);
                let initval = u32::try_from(initval).map_err(|_| {
                    CodecError::config(id, format!("initval {initval} is not a u32"))
                })?;
                Checksum::JenkinsLookup3 { initval }
            }
            other => other,
        };
        Ok(Checksum32Codec { checksum, location })
    }

    /// The checked payload of `encoded`.
    fn payload<'a>(&self, encoded: &'a [u8]) -> Result<&'a [u8], CodecError> {
        let id = self.checksum.id();
        let Some(split) = encoded.len().checked_sub(4) else {
            return Err(CodecError::corrupt(
                id,
                format!("{} bytes cannot hold a checksum", encoded.len()),
            ));
        };
        let (payload, stored) = match self.location {
            Location::Start => {
                let (stored, payload) = encoded.split_at(4);
                (payload, stored)
            }
            Location::End => encoded.split_at(split),
        };
        let stored = u32::from_le_bytes([stored[0], stored[1], stored[2], stored[3]]);
        match self.checksum.of(payload) {
            Some(computed) if computed == stored => Ok(payload),
            Some(computed) => Err(CodecError::corrupt(
                id,
                format!("checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"),
            )),
            None => Err(CodecError::corrupt(id, "no checksum of an empty payload")),
        }
    }
}

impl BytesToBytesCodec for Checksum32Codec {
    fn describe(&self) -> String {
        let mut text = self.checksum.id().to_string();
        if let Checksum::JenkinsLookup3 { initval } = self.checksum {
            text += &format!("(initval={initval})");
        }
        match (self.checksum, self.location) {
            (Checksum::Crc32 | Checksum::Adler32, Location::End) => text + "(location=end)",
            (Checksum::Crc32c, Location::Start) => text + "(location=start)",
            _ => text,
        }
    }

    fn decode(&self, encoded: &[u8]) -> Result<Vec<u8>, CodecError> {
        Ok(self.payload(encoded)?.to_vec())
    }

    fn decode_into(&self, encoded: &[u8], out: &mut [u8]) -> Result<(), CodecError> {
        let payload = self.payload(encoded)?;
        if payload.len() != out.len() {
            return Err(size_mismatch(self.checksum.id(), payload.len(), out.len()));
        }
        out.copy_from_slice(payload);
        Ok(())
    }

    fn encode(&self, decoded: &[u8]) -> Result<Vec<u8>, CodecError> {
        let id = self.checksum.id();
        let checksum = self
            .checksum
            .of(decoded)
            .ok_or_else(|| CodecError::encode(id, "no checksum of an empty payload"))?
            .to_le_bytes();
        let mut out = Vec::with_capacity(decoded.len() + 4);
        if self.location == Location::Start {
            out.extend_from_slice(&checksum);
        }
        out.extend_from_slice(decoded);
        if self.location == Location::End {
            out.extend_from_slice(&checksum);
        }
        Ok(out)
    }

    fn encoded_len(&self, decoded_len: usize) -> Option<usize> {
        decoded_len.checked_add(4)
    }
}

/// HDF5's Fletcher-32 as numcodecs computes it: big-endian 16-bit words (an odd last byte
/// is the high byte of a word), sums folded every 360 words; `None` for no data (numcodecs
/// fails on it).
fn fletcher32(data: &[u8]) -> Option<u32> {
    if data.is_empty() {
        return None;
    }
    let fold = |x: u32| (x & 0xffff) + (x >> 16);
    let (mut sum1, mut sum2) = (0u32, 0u32);
    let (words, odd) = data.split_at(data.len() & !1);
    for block in words.chunks(2 * 360) {
        for word in block.chunks_exact(2) {
            sum1 = sum1.wrapping_add(u32::from(u16::from_be_bytes([word[0], word[1]])));
            sum2 = sum2.wrapping_add(sum1);
        }
        sum1 = fold(sum1);
        sum2 = fold(sum2);
    }
    if let Some(&last) = odd.first() {
        sum1 = sum1.wrapping_add(u32::from(last) << 8);
        sum2 = sum2.wrapping_add(sum1);
        sum1 = fold(sum1);
        sum2 = fold(sum2);
    }
    Some((fold(sum2) << 16) | fold(sum1))
}

/// Bob Jenkins' lookup3 `hashlittle` of `data` from `initval`, byte by byte as HDF5 (and so
/// numcodecs) computes it.
fn jenkins_lookup3(data: &[u8], initval: u32) -> u32 {
    let rot = |x: u32, k: u32| x.rotate_left(k);
    let mut a = 0xdead_beefu32
        .wrapping_add(data.len() as u32)
        .wrapping_add(initval);
    let (mut b, mut c) = (a, a);
    if data.is_empty() {
        return c;
    }
    let word = |bytes: &[u8]| {
        bytes.iter().enumerate().fold(0u32, |acc, (i, &byte)| {
            acc.wrapping_add(u32::from(byte) << (8 * i))
        })
    };
    let mut rest = data;
    while rest.len() > 12 {
        a = a.wrapping_add(word(&rest[0..4]));
        b = b.wrapping_add(word(&rest[4..8]));
        c = c.wrapping_add(word(&rest[8..12]));
        // mix(a, b, c)
        a = a.wrapping_sub(c) ^ rot(c, 4);
        c = c.wrapping_add(b);
        b = b.wrapping_sub(a) ^ rot(a, 6);
        a = a.wrapping_add(c);
        c = c.wrapping_sub(b) ^ rot(b, 8);
        b = b.wrapping_add(a);
        a = a.wrapping_sub(c) ^ rot(c, 16);
        c = c.wrapping_add(b);
        b = b.wrapping_sub(a) ^ rot(a, 19);
        a = a.wrapping_add(c);
        c = c.wrapping_sub(b) ^ rot(b, 4);
        b = b.wrapping_add(a);
        rest = &rest[12..];
    }
    // The last 1..=12 bytes, zero-padded.
    a = a.wrapping_add(word(&rest[..rest.len().min(4)]));
    if rest.len() > 4 {
        b = b.wrapping_add(word(&rest[4..rest.len().min(8)]));
    }
    if rest.len() > 8 {
        c = c.wrapping_add(word(&rest[8..]));
    }
    // final(a, b, c)
    c ^= b;
    c = c.wrapping_sub(rot(b, 14));
    a ^= c;
    a = a.wrapping_sub(rot(c, 11));
    b ^= a;
    b = b.wrapping_sub(rot(a, 25));
    c ^= b;
    c = c.wrapping_sub(rot(b, 16));
    a ^= c;
    a = a.wrapping_sub(rot(c, 4));
    b ^= a;
    b = b.wrapping_sub(rot(a, 14));
    c ^= b;
    c.wrapping_sub(rot(b, 24))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::test_util::{assert_decodes_vectors, vector};
    use serde_json::json;

    fn codec(id: &str, config: Value) -> Checksum32Codec {
        Checksum32Codec::from_config(id, &config).unwrap().unwrap()
    }

    #[test]
    fn decodes_and_encodes_numcodecs_frames() {
        for (id, config, stem) in [
            ("crc32", json!({}), "crc32"),
            ("crc32", json!({"location": "end"}), "crc32_end"),
            ("adler32", json!({}), "adler32"),
            ("adler32", json!({"location": "end"}), "adler32_end"),
            ("crc32c", json!({}), "crc32c"),
            ("crc32c", json!({"location": "start"}), "crc32c_start"),
            ("fletcher32", json!({}), "fletcher32"),
            ("fletcher32", json!({}), "fletcher32_odd"),
            ("fletcher32", json!({}), "fletcher32_long"),
            ("jenkins_lookup3", json!({}), "jenkins_lookup3"),
            ("jenkins_lookup3", json!({}), "jenkins_lookup3_12"),
            (
                "jenkins_lookup3",
                json!({"initval": 5}),
                "jenkins_lookup3_initval",
            ),
            ("jenkins_lookup3", json!({}), "jenkins_lookup3_empty"),
        ] {
            let c = codec(id, config);
            assert_decodes_vectors(&c, &[stem]);
            let raw = vector(&format!("{stem}.raw"));
            assert_eq!(
                c.encode(&raw).unwrap(),
                vector(&format!("{stem}.enc")),
                "{stem}"
            );
        }
    }

    #[test]
    fn every_corrupted_byte_is_detected() {
        for id in [
            "crc32",
            "adler32",
            "crc32c",
            "fletcher32",
            "jenkins_lookup3",
        ] {
            let c = codec(id, json!({}));
            let encoded = c.encode(b"some chunk bytes").unwrap();
            assert_eq!(c.encoded_len(16), Some(20));
            for i in 0..encoded.len() {
                let mut bad = encoded.clone();
                bad[i] ^= 0x10;
                let err = c.decode(&bad).unwrap_err();
                assert!(
                    matches!(err, CodecError::Corrupt { .. }),
                    "{id} flip at {i}"
                );
                assert!(err.to_string().contains("checksum mismatch"), "{err}");
            }
            assert!(c.decode(&[1, 2, 3]).is_err(), "{id}");
            assert!(c.decode_into(&encoded, &mut [0u8; 15]).is_err(), "{id}");
        }
    }

    #[test]
    fn settings_python_would_refuse_are_errors() {
        for (id, config) in [
            ("crc32", json!({"location": "middle"})),
            ("fletcher32", json!({"location": "end"})),
            ("jenkins_lookup3", json!({"initval": -1})),
        ] {
            assert!(matches!(
                Checksum32Codec::from_config(id, &config),
                Some(Err(CodecError::Config { .. }))
            ));
        }
        assert!(matches!(
            Checksum32Codec::from_config("jenkins_lookup3", &json!({"prefix": "YWJj"})),
            Some(Err(CodecError::Unsupported(_)))
        ));
        assert!(Checksum32Codec::from_config("crc64", &json!({})).is_none());
        // numcodecs cannot checksum an empty payload with Fletcher-32.
        assert!(codec("fletcher32", json!({})).encode(b"").is_err());
    }
}
