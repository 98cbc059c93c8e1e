//! The index of a `sharding_indexed` shard: for each inner chunk (C order over the shard's
//! grid of inner chunks) the offset and size of its bytes in the shard, both all ones when
//! the chunk is absent. The index is encoded with the configuration's `index_codecs` (which
//! must give it a fixed size) and lies at the start or at the end of the shard.

use crate::codec::chain::v3_entry;
use crate::codec::{ChunkRepr, CodecChain, CodecError};
use crate::metadata::DataType;
use serde_json::{json, Value};
use std::ops::Range;

const CODEC: &str = "sharding_indexed";

/// The index entry of an absent inner chunk (offset and size).
const ABSENT: u64 = u64::MAX;

/// Where a shard's index lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexLocation {
    /// Before the inner chunks.
    Start,
    /// After the inner chunks (the default).
    End,
}

/// Decodes and encodes shard indexes: the index codecs of one sharding configuration, for
/// shards of a given number of inner chunks.
#[derive(Debug)]
pub struct ShardIndexCodec {
    chain: CodecChain,
    location: IndexLocation,
    chunks: usize,
    encoded_len: usize,
}

impl ShardIndexCodec {
    /// The index codec of a `sharding_indexed` configuration for shards holding
    /// `chunks_per_shard` inner chunks along each axis. `index_codecs` defaults to a
    /// little-endian `bytes` codec and `crc32c`, as zarr-python assumes.
    pub fn new(configuration: &Value, chunks_per_shard: &[usize]) -> Result<Self, CodecError> {
        let location = match configuration.get("index_location") {
            None | Some(Value::Null) => IndexLocation::End,
            Some(v) if v == "end" => IndexLocation::End,
            Some(v) if v == "start" => IndexLocation::Start,
            Some(v) => {
                return Err(CodecError::config(
                    CODEC,
                    format!("index_location must be \"start\" or \"end\", got {v}"),
                ))
            }
        };
        let default_codecs = json!([
            {"name": "bytes", "configuration": {"endian": "little"}},
            {"name": "crc32c"}
        ]);
        let codecs = match configuration.get("index_codecs") {
            None | Some(Value::Null) => &default_codecs,
            Some(codecs) => codecs,
        };
        let codecs = codecs
            .as_array()
            .ok_or_else(|| CodecError::config(CODEC, "index_codecs is not a list"))?;
        for entry in codecs {
            if v3_entry(entry)?.0 == CODEC {
                return Err(CodecError::config(
                    CODEC,
                    "index_codecs hold a sharding codec",
                ));
            }
        }
        let chunks = chunks_per_shard
            .iter()
            .try_fold(1usize, |acc, &n| acc.checked_mul(n))
            .ok_or_else(|| CodecError::config(CODEC, "too many inner chunks per shard"))?;
        let mut shape = chunks_per_shard.to_vec();
        shape.push(2);
        let repr = ChunkRepr {
            shape,
            dtype: DataType::parse_numpy("<u8").expect("a valid dtype"),
        };
        let chain = CodecChain::from_v3(codecs, repr, &ABSENT.to_le_bytes())?;
        let encoded_len = chain.encoded_len().ok_or_else(|| {
            CodecError::config(
                CODEC,
                format!(
                    "index_codecs {} give no index of fixed size",
                    chain.describe()
                ),
            )
        })?;
        Ok(ShardIndexCodec {
            chain,
            location,
            chunks,
            encoded_len,
        })
    }

    /// Inner chunks per shard.
    pub fn chunks(&self) -> usize {
        self.chunks
    }

    /// Size of an encoded index in bytes.
    pub fn encoded_len(&self) -> usize {
        self.encoded_len
    }

    /// Whether the index ends its shard (else it starts it).
    pub fn at_end(&self) -> bool {
        matches!(self.location, IndexLocation::End)
    }

    /// Where the index lies in a shard of `shard_len` bytes; an error when the shard is
    /// too short to hold it.
    pub fn range(&self, shard_len: u64) -> Result<Range<u64>, CodecError> {
        let len = self.encoded_len as u64;
        if shard_len < len {
            return Err(CodecError::corrupt(
                CODEC,
                format!("shard of {shard_len} bytes cannot hold its index of {len} bytes"),
            ));
        }
        Ok(match self.location {
            IndexLocation::Start => 0..len,
            IndexLocation::End => shard_len - len..shard_len,
        })
    }

    /// Decodes the index read from [`Self::range`] of a shard of `shard_len` bytes.
    pub fn decode(&self, encoded: &[u8], shard_len: u64) -> Result<ShardIndex, CodecError> {
        let index = self.range(shard_len)?;
        if encoded.len() != self.encoded_len {
            return Err(crate::codec::size_mismatch(
                CODEC,
                encoded.len(),
                self.encoded_len,
            ));
        }
        let decoded = self.chain.decode(encoded)?;
        let entries = decoded
            .chunks_exact(8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
            .collect();
        Ok(ShardIndex {
            entries,
            shard_len,
            index,
        })
    }

    /// Decodes the index of a whole shard held in memory.
    pub fn decode_shard(&self, shard: &[u8]) -> Result<ShardIndex, CodecError> {
        let range = self.range(shard.len() as u64)?;
        self.decode(
            &shard[range.start as usize..range.end as usize],
            shard.len() as u64,
        )
    }

    /// Lays out a shard: the present inner chunks' bytes one after the other in C order and
    /// the index at its place. `chunks` holds every inner chunk of the shard (`None`:
    /// absent).
    pub fn assemble(&self, chunks: &[Option<&[u8]>]) -> Result<Vec<u8>, CodecError> {
        if chunks.len() != self.chunks {
            return Err(CodecError::encode(
                CODEC,
                format!(
                    "{} inner chunks for a shard of {}",
                    chunks.len(),
                    self.chunks
                ),
            ));
        }
        let data_len = chunks
            .iter()
            .flatten()
            .try_fold(0usize, |acc, c| acc.checked_add(c.len()))
            .and_then(|n| n.checked_add(self.encoded_len))
            .ok_or_else(|| CodecError::encode(CODEC, "shard size overflows"))?;
        let mut offset = match self.location {
            IndexLocation::Start => self.encoded_len as u64,
            IndexLocation::End => 0,
        };
        let mut entries = Vec::with_capacity(2 * self.chunks);
        for chunk in chunks {
            match chunk {
                Some(bytes) => {
                    entries.extend([offset, bytes.len() as u64]);
                    offset += bytes.len() as u64;
                }
                None => entries.extend([ABSENT, ABSENT]),
            }
        }
        let decoded: Vec<u8> = entries.iter().flat_map(|e| e.to_le_bytes()).collect();
        let index = self.chain.encode(&decoded)?;
        if index.len() != self.encoded_len {
            return Err(CodecError::encode(
                CODEC,
                format!(
                    "index of {} bytes, expected {}",
                    index.len(),
                    self.encoded_len
                ),
            ));
        }
        let mut shard = Vec::with_capacity(data_len);
        if self.location == IndexLocation::Start {
            shard.extend_from_slice(&index);
        }
        for bytes in chunks.iter().flatten() {
            shard.extend_from_slice(bytes);
        }
        if self.location == IndexLocation::End {
            shard.extend_from_slice(&index);
        }
        Ok(shard)
    }
}

/// A decoded shard index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardIndex {
    /// Offset and size of each inner chunk, in C order.
    entries: Vec<u64>,
    shard_len: u64,
    /// Where the index itself lies in the shard.
    index: Range<u64>,
}

impl ShardIndex {
    /// Number of inner chunks the index describes.
    pub fn len(&self) -> usize {
        self.entries.len() / 2
    }

    /// Whether the index describes no inner chunk.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes of memory the index holds.
    pub fn heap_bytes(&self) -> usize {
        self.entries.len() * 8
    }

    /// Whether no inner chunk is present.
    pub fn all_absent(&self) -> bool {
        self.entries.iter().all(|&e| e == ABSENT)
    }

    /// Where inner chunk `chunk` (C order) lies in the shard, `None` when it is absent. An
    /// entry pointing outside the shard, overlapping the index or, when the inner codecs
    /// make every chunk `fixed_len` bytes, of another size, is an error for that chunk.
    pub fn chunk(
        &self,
        chunk: usize,
        fixed_len: Option<usize>,
    ) -> Result<Option<Range<u64>>, CodecError> {
        let (Some(&offset), Some(&nbytes)) =
            (self.entries.get(2 * chunk), self.entries.get(2 * chunk + 1))
        else {
            return Err(CodecError::corrupt(
                CODEC,
                format!("inner chunk {chunk} is not in a shard of {}", self.len()),
            ));
        };
        if offset == ABSENT && nbytes == ABSENT {
            return Ok(None);
        }
        let bad = |why: String| {
            CodecError::corrupt(
                CODEC,
                format!("index entry (offset {offset}, {nbytes} bytes) {why}"),
            )
        };
        let end = offset
            .checked_add(nbytes)
            .filter(|&end| end <= self.shard_len)
            .ok_or_else(|| {
                bad(format!(
                    "points outside the shard of {} bytes",
                    self.shard_len
                ))
            })?;
        if nbytes > 0 && offset < self.index.end && self.index.start < end {
            return Err(bad(format!(
                "overlaps the shard index at bytes {}..{}",
                self.index.start, self.index.end
            )));
        }
        if let Some(fixed) = fixed_len.filter(|&fixed| fixed as u64 != nbytes) {
            return Err(bad(format!(
                "differs from the {fixed} bytes its codecs make"
            )));
        }
        Ok(Some(offset..end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codec(location: &str, codecs: Value) -> ShardIndexCodec {
        ShardIndexCodec::new(
            &json!({"index_location": location, "index_codecs": codecs}),
            &[2, 2],
        )
        .unwrap()
    }

    fn bytes_crc() -> Value {
        json!([{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}])
    }

    /// A shard of four inner chunks, two absent.
    fn shard(codec: &ShardIndexCodec) -> Vec<u8> {
        codec
            .assemble(&[Some(b"abc"), None, Some(b"defgh"), None])
            .unwrap()
    }

    #[test]
    fn index_at_either_end_lays_out_and_reads_back() {
        for (location, first) in [("end", 0u64), ("start", 68)] {
            let codec = codec(location, bytes_crc());
            assert_eq!(codec.encoded_len(), 4 * 16 + 4);
            let shard = shard(&codec);
            assert_eq!(shard.len(), 68 + 8);
            let index = codec.decode_shard(&shard).unwrap();
            assert_eq!(index.chunk(0, None).unwrap(), Some(first..first + 3));
            assert_eq!(index.chunk(1, None).unwrap(), None);
            assert_eq!(index.chunk(2, None).unwrap(), Some(first + 3..first + 8));
            assert_eq!(index.chunk(3, None).unwrap(), None);
            assert!(!index.all_absent());
            let at = index.chunk(2, None).unwrap().unwrap();
            assert_eq!(&shard[at.start as usize..at.end as usize], b"defgh");
            // The index as zarr-python lays it out: little-endian pairs, then the CRC-32C.
            let range = codec.range(shard.len() as u64).unwrap();
            let raw = &shard[range.start as usize..range.end as usize];
            assert_eq!(raw[..8], first.to_le_bytes());
            assert_eq!(raw[16..32], [0xFF; 16]);
            assert_eq!(raw[64..], crc32c::crc32c(&raw[..64]).to_le_bytes());
        }
    }

    #[test]
    fn index_codecs_may_be_big_endian_or_unchecked() {
        let big = codec(
            "end",
            json!([{"name": "bytes", "configuration": {"endian": "big"}}]),
        );
        assert_eq!(big.encoded_len(), 64);
        let shard = shard(&big);
        assert_eq!(shard[8..16], 0u64.to_be_bytes());
        assert_eq!(shard[16..24], 3u64.to_be_bytes());
        let index = big.decode_shard(&shard).unwrap();
        assert_eq!(index.chunk(2, None).unwrap(), Some(3..8));
        let default = ShardIndexCodec::new(&json!({}), &[4]).unwrap();
        assert_eq!(default.encoded_len(), 68, "bytes + crc32c by default");
        assert_eq!(default.location, IndexLocation::End);
    }

    #[test]
    fn a_checksum_mismatch_or_a_short_shard_fails_the_whole_index() {
        let codec = codec("end", bytes_crc());
        let mut shard = shard(&codec);
        let last = shard.len() - 20;
        shard[last] ^= 1;
        let err = codec.decode_shard(&shard).unwrap_err();
        assert!(err.to_string().contains("checksum"), "{err}");
        // A shard shorter than its index, and an index read of the wrong size.
        let err = codec.decode_shard(&[0u8; 67]).unwrap_err();
        assert!(err.to_string().contains("cannot hold its index"), "{err}");
        assert!(codec.decode(&[0u8; 60], 100).is_err());
    }

    #[test]
    fn bad_entries_fail_their_chunk_only() {
        let codec = codec(
            "start",
            json!([{"name": "bytes", "configuration": {"endian": "little"}}]),
        );
        let entries: [u64; 8] = [
            70,
            30, // past the end of a 90-byte shard
            10,
            60, // overlapping the index (bytes 0..64)
            64,
            5, // fine
            u64::MAX,
            1, // half absent: outside
        ];
        let raw: Vec<u8> = entries.iter().flat_map(|e| e.to_le_bytes()).collect();
        let index = codec.decode(&raw, 90).unwrap();
        let err = index.chunk(0, None).unwrap_err().to_string();
        assert!(err.contains("outside the shard"), "{err}");
        let err = index.chunk(1, None).unwrap_err().to_string();
        assert!(err.contains("overlaps the shard index"), "{err}");
        assert_eq!(index.chunk(2, None).unwrap(), Some(64..69));
        let err = index.chunk(2, Some(6)).unwrap_err().to_string();
        assert!(err.contains("differs from the 6 bytes"), "{err}");
        assert!(index.chunk(3, None).is_err());
        assert!(index.chunk(4, None).is_err(), "no such chunk");
        assert_eq!(index.len(), 4);
        assert_eq!(index.heap_bytes(), 64);
    }

    #[test]
    fn configurations_that_cannot_work_are_errors() {
        for configuration in [
            json!({"index_location": "middle"}),
            json!({"index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}},
                                    {"name": "zstd", "configuration": {"level": 1}}]}),
            json!({"index_codecs": "bytes"}),
            json!({"index_codecs": []}),
        ] {
            assert!(
                ShardIndexCodec::new(&configuration, &[2]).is_err(),
                "{configuration}"
            );
        }
        assert!(ShardIndexCodec::new(&json!({}), &[usize::MAX, 3]).is_err());
        let codec = codec("end", bytes_crc());
        assert!(
            codec.assemble(&[None, None]).is_err(),
            "wrong number of chunks"
        );
    }
}
