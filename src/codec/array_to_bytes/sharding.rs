//! The v3 `sharding_indexed` codec: a shard holds a grid of inner chunks, each encoded with
//! the inner `codecs`, and an index saying where each lies ([`ShardIndexCodec`], [`ShardIndex`]).
//!
//! An array whose only codec is `sharding_indexed` is read inner chunk by inner chunk by the
//! array layer (see `crate::stored`), with ranged reads of its shards. This codec decodes
//! and encodes whole shards, for chains where sharding is not alone (a transpose before it,
//! sharding nested in sharding).

mod index;

pub use index::{IndexLocation, ShardIndex, ShardIndexCodec};

use super::ArrayToBytesCodec;
use crate::codec::{ChunkRepr, CodecChain, CodecError};
use ndarray::{ArrayViewD, ArrayViewMutD, IxDyn, Slice};
use serde_json::Value;

const CODEC: &str = "sharding_indexed";

/// Inner chunks per shard along each axis, from a shard shape and an inner chunk shape; an
/// error unless the rank matches and each inner extent divides the shard's.
pub fn chunks_per_shard(shard: &[usize], chunk: &[usize]) -> Result<Vec<usize>, CodecError> {
    if shard.len() != chunk.len()
        || chunk.contains(&0)
        || shard.iter().zip(chunk).any(|(s, c)| s % c != 0)
    {
        return Err(CodecError::config(
            CODEC,
            format!("shard shape {shard:?} is not a multiple of inner chunk shape {chunk:?}"),
        ));
    }
    Ok(shard.iter().zip(chunk).map(|(s, c)| s / c).collect())
}

/// The inner chunk shape of a sharding configuration.
fn inner_chunk_shape(configuration: &Value) -> Result<Vec<usize>, CodecError> {
    configuration
        .get("chunk_shape")
        .and_then(Value::as_array)
        .and_then(|dims| {
            dims.iter()
                .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
                .collect()
        })
        .ok_or_else(|| CodecError::config(CODEC, "missing or invalid chunk_shape"))
}

/// Whole shards ⇄ their decoded chunk.
#[derive(Debug)]
pub struct ShardingCodec {
    /// The inner chunk shape.
    chunk_shape: Vec<usize>,
    /// Inner chunks per shard along each axis.
    per_shard: Vec<usize>,
    inner: CodecChain,
    index: ShardIndexCodec,
    /// An inner chunk of fill value (what absent inner chunks hold).
    fill_chunk: Vec<u8>,
}

impl ShardingCodec {
    /// The codec for shards of `shard` from a v3 configuration; absent inner chunks hold
    /// the element `fill` (in `shard`'s byte order).
    pub fn from_v3(
        configuration: &Value,
        shard: &ChunkRepr,
        fill: &[u8],
    ) -> Result<Self, CodecError> {
        let chunk_shape = inner_chunk_shape(configuration)?;
        let per_shard = chunks_per_shard(&shard.shape, &chunk_shape)?;
        let codecs = configuration
            .get("codecs")
            .and_then(Value::as_array)
            .ok_or_else(|| CodecError::config(CODEC, "missing \"codecs\" list"))?;
        let repr = ChunkRepr {
            shape: chunk_shape.clone(),
            dtype: shard.dtype,
        };
        let inner = CodecChain::from_v3(codecs, repr, fill)?;
        if fill.len() != shard.dtype.size {
            return Err(CodecError::config(
                CODEC,
                format!("fill value of {} bytes for {}", fill.len(), shard.dtype),
            ));
        }
        let fill_chunk = fill.repeat(inner.chunk_bytes() / fill.len().max(1));
        Ok(ShardingCodec {
            index: ShardIndexCodec::new(configuration, &per_shard)?,
            chunk_shape,
            per_shard,
            inner,
            fill_chunk,
        })
    }

    /// The region of inner chunk `chunk` (C order) in a shard: its first element per axis.
    fn origin(&self, mut chunk: usize) -> Vec<usize> {
        let mut origin = vec![0; self.per_shard.len()];
        for axis in (0..self.per_shard.len()).rev() {
            origin[axis] = chunk % self.per_shard[axis] * self.chunk_shape[axis];
            chunk /= self.per_shard[axis];
        }
        origin
    }

    /// The byte shape of a chunk of `shape`: its axes, then the element's bytes.
    fn byte_shape(shape: &[usize], itemsize: usize) -> IxDyn {
        let mut dims = shape.to_vec();
        dims.push(itemsize);
        IxDyn(&dims)
    }

    /// The axis ranges of inner chunk `chunk` in a shard's byte view.
    fn region(&self, chunk: usize) -> impl Fn(ndarray::AxisDescription) -> Slice + '_ {
        let origin = self.origin(chunk);
        move |axis| match origin.get(axis.axis.index()) {
            Some(&start) => Slice::from(start..start + self.chunk_shape[axis.axis.index()]),
            None => Slice::from(..),
        }
    }

    fn view_error(err: ndarray::ShapeError) -> CodecError {
        CodecError::corrupt(CODEC, format!("shard layout: {err}"))
    }
}

impl ArrayToBytesCodec for ShardingCodec {
    fn describe(&self) -> String {
        format!(
            "sharding_indexed(chunk_shape={:?}, codecs=[{}])",
            self.chunk_shape,
            self.inner.describe()
        )
    }

    fn encode(&self, chunk: &[u8], repr: &ChunkRepr) -> Result<Vec<u8>, CodecError> {
        repr.checked_bytes(CODEC, chunk.len())?;
        let shard = ArrayViewD::from_shape(Self::byte_shape(&repr.shape, repr.dtype.size), chunk)
            .map_err(Self::view_error)?;
        let encoded = (0..self.index.chunks())
            .map(|j| {
                let inner: Vec<u8> = shard
                    .slice_each_axis(self.region(j))
                    .iter()
                    .copied()
                    .collect();
                if inner == self.fill_chunk {
                    Ok(None)
                } else {
                    self.inner.encode(&inner).map(Some)
                }
            })
            .collect::<Result<Vec<Option<Vec<u8>>>, CodecError>>()?;
        let chunks: Vec<Option<&[u8]>> = encoded.iter().map(Option::as_deref).collect();
        self.index.assemble(&chunks)
    }

    fn decode_into(
        &self,
        encoded: &[u8],
        repr: &ChunkRepr,
        out: &mut [u8],
    ) -> Result<(), CodecError> {
        repr.checked_bytes(CODEC, out.len())?;
        let index = self.index.decode_shard(encoded)?;
        let fixed = self.inner.encoded_len();
        let inner_shape = Self::byte_shape(&self.chunk_shape, repr.dtype.size);
        let mut shard =
            ArrayViewMutD::from_shape(Self::byte_shape(&repr.shape, repr.dtype.size), out)
                .map_err(Self::view_error)?;
        let mut decoded = vec![0u8; self.inner.chunk_bytes()];
        for j in 0..self.index.chunks() {
            let source = match index.chunk(j, fixed)? {
                Some(range) => {
                    self.inner.decode_into(
                        &encoded[range.start as usize..range.end as usize],
                        &mut decoded,
                    )?;
                    &decoded
                }
                None => &self.fill_chunk,
            };
            let source =
                ArrayViewD::from_shape(inner_shape.clone(), source).map_err(Self::view_error)?;
            shard.slice_each_axis_mut(self.region(j)).assign(&source);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::DataType;
    use serde_json::json;

    fn repr(shape: &[usize], dtype: &str) -> ChunkRepr {
        ChunkRepr {
            shape: shape.to_vec(),
            dtype: DataType::parse_numpy(dtype).unwrap(),
        }
    }

    fn configuration(location: &str) -> Value {
        json!({
            "chunk_shape": [2, 3],
            "codecs": [{"name": "bytes", "configuration": {"endian": "big"}},
                       {"name": "gzip", "configuration": {"level": 1}}],
            "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}},
                             {"name": "crc32c"}],
            "index_location": location
        })
    }

    #[test]
    fn whole_shards_round_trip_and_drop_fill_chunks() {
        let r = repr(&[4, 6], "<i2");
        let fill = 7i16.to_le_bytes();
        // Chunk (0, 1) holds values; (1, 0) partly; the rest is fill.
        let mut values = [7i16; 24];
        for (row, col) in [(0, 3), (1, 5), (0, 4), (3, 0)] {
            values[row * 6 + col] = (row * 10 + col) as i16 - 20;
        }
        let chunk: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        for location in ["start", "end"] {
            let codec = ShardingCodec::from_v3(&configuration(location), &r, &fill).unwrap();
            let shard = codec.encode(&chunk, &r).unwrap();
            let index = codec.index.decode_shard(&shard).unwrap();
            let present: Vec<bool> = (0..4)
                .map(|j| index.chunk(j, None).unwrap().is_some())
                .collect();
            assert_eq!(present, [false, true, true, false], "{location}");
            let mut out = vec![0u8; 48];
            codec.decode_into(&shard, &r, &mut out).unwrap();
            assert_eq!(out, chunk, "{location}");
            // Inner chunks hold big-endian elements.
            let at = index.chunk(1, None).unwrap().unwrap();
            let inner = flate2::read::GzDecoder::new(&shard[at.start as usize..at.end as usize]);
            let raw: Vec<u8> = std::io::Read::bytes(inner).map(Result::unwrap).collect();
            assert_eq!(raw[..2], (-17i16).to_be_bytes());
        }
    }

    #[test]
    fn nested_in_a_chain_after_a_transpose() {
        let codecs = json!([
            {"name": "transpose", "configuration": {"order": [1, 0]}},
            {"name": "sharding_indexed", "configuration": {
                "chunk_shape": [3, 2],
                "codecs": [{"name": "sharding_indexed", "configuration": {
                    "chunk_shape": [1, 2],
                    "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}]}}]}}
        ]);
        let chain =
            CodecChain::from_v3(codecs.as_array().unwrap(), repr(&[4, 6], "<u2"), &[0, 0]).unwrap();
        let chunk: Vec<u8> = (0..24u16).flat_map(|v| (v * 3 + 1).to_le_bytes()).collect();
        let stored = chain.encode(&chunk).unwrap();
        assert_eq!(chain.decode(&stored).unwrap(), chunk);
        assert!(
            chain.describe().contains("sharding_indexed"),
            "{}",
            chain.describe()
        );
        assert_eq!(chain.encoded_len(), None);
    }

    #[test]
    fn absent_chunks_decode_as_fill_and_bad_shards_fail() {
        let r = repr(&[4, 6], "<i2");
        let codec = ShardingCodec::from_v3(&configuration("end"), &r, &[5, 0]).unwrap();
        let empty = codec.index.assemble(&[None, None, None, None]).unwrap();
        let mut out = vec![0u8; 48];
        codec.decode_into(&empty, &r, &mut out).unwrap();
        assert!(out.chunks(2).all(|e| e == [5, 0]));
        assert!(codec.decode_into(&empty[1..], &r, &mut out).is_err());
        let garbage = codec
            .index
            .assemble(&[Some(b"not gzip"), None, None, None])
            .unwrap();
        assert!(codec.decode_into(&garbage, &r, &mut out).is_err());
    }

    #[test]
    fn shapes_must_divide() {
        let r = repr(&[4, 6], "<i2");
        let mut bad = configuration("end");
        bad["chunk_shape"] = json!([3, 3]);
        assert!(ShardingCodec::from_v3(&bad, &r, &[0, 0]).is_err());
        bad["chunk_shape"] = json!([2]);
        assert!(ShardingCodec::from_v3(&bad, &r, &[0, 0]).is_err());
        bad["chunk_shape"] = json!([2, 3]);
        bad["codecs"] = json!([]);
        assert!(ShardingCodec::from_v3(&bad, &r, &[0, 0]).is_err());
        assert_eq!(chunks_per_shard(&[8, 6], &[4, 3]).unwrap(), [2, 2]);
    }
}
