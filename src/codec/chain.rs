//! The codec chain of one array: array→array codecs, one array→bytes codec, bytes→bytes
//! codecs, applied in that order when encoding and in reverse when decoding. The chain is
//! itself array→bytes: stored chunk bytes ⇄ decoded chunks (C order, full chunk shape, the
//! byte order the array's views show).

use super::array_to_array::{
    numcodecs_filter, outermost_filter_dtype, ArrayToArrayCodec, AsTypeCodec, TransposeCodec,
};
use super::array_to_bytes::{ArrayToBytesCodec, BytesCodec, ShardingCodec};
use super::bytes_to_bytes::{
    numcodecs_bytes_codec, v2_compressor, v3_bytes_codec, BytesToBytesCodec,
    NUMCODECS_SHUFFLE_ELEMENTSIZE,
};
use super::CodecError;
use crate::metadata::{ArrayMeta, CodecSpec, DataType, Order};
use serde_json::Value;
use std::borrow::Cow;

/// The shape and element type of a chunk at one point of a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkRepr {
    /// Extent of each axis, in elements.
    pub shape: Vec<usize>,
    /// Element type and byte order.
    pub dtype: DataType,
}

impl ChunkRepr {
    /// Size in bytes, `None` when it overflows.
    pub fn bytes(&self) -> Option<usize> {
        self.shape
            .iter()
            .try_fold(self.dtype.size, |acc, &d| acc.checked_mul(d))
    }

    /// Size in bytes; an error naming `codec` when it overflows.
    pub(crate) fn size(&self, codec: &str) -> Result<usize, CodecError> {
        self.bytes().ok_or_else(|| {
            CodecError::config(codec, format!("chunk shape {:?} overflows", self.shape))
        })
    }

    /// Checks that a buffer of `len` bytes holds a chunk of this representation.
    pub(crate) fn checked_bytes(&self, codec: &str, len: usize) -> Result<usize, CodecError> {
        match self.bytes() {
            Some(size) if size == len => Ok(size),
            Some(size) => Err(CodecError::corrupt(
                codec,
                format!("buffer of {len} bytes, expected {size}"),
            )),
            None => Err(CodecError::config(
                codec,
                format!("chunk shape {:?} overflows", self.shape),
            )),
        }
    }
}

/// One array→array step with the representation it decodes into.
#[derive(Debug)]
struct ArrayStep {
    codec: Box<dyn ArrayToArrayCodec>,
    decoded: ChunkRepr,
}

/// The codecs of one array.
#[derive(Debug)]
pub struct CodecChain {
    array_to_array: Vec<ArrayStep>,
    array_to_bytes: Box<dyn ArrayToBytesCodec>,
    /// What the array→bytes codec encodes.
    bytes_repr: ChunkRepr,
    bytes_to_bytes: Vec<Box<dyn BytesToBytesCodec>>,
    chunk_bytes: usize,
}

/// The name and configuration of a v3 codec entry.
pub fn v3_entry(entry: &Value) -> Result<(&str, &Value), CodecError> {
    let name = entry
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| CodecError::config("codecs", format!("entry without a name: {entry}")))?;
    Ok((name, entry.get("configuration").unwrap_or(&Value::Null)))
}

fn v2_id(config: &Value) -> String {
    config
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or("<missing id>")
        .to_string()
}

/// Collects the codecs of a chain in order, checking that they come in the order of their
/// kinds.
struct ChainBuilder {
    repr: ChunkRepr,
    chunk_repr: ChunkRepr,
    /// One element of fill value, in the chunk's byte order (what absent inner chunks of a
    /// shard hold).
    fill: Vec<u8>,
    array_to_array: Vec<ArrayStep>,
    array_to_bytes: Option<(Box<dyn ArrayToBytesCodec>, ChunkRepr)>,
    bytes_to_bytes: Vec<Box<dyn BytesToBytesCodec>>,
}

impl ChainBuilder {
    fn new(chunk_repr: ChunkRepr, fill: &[u8]) -> Self {
        ChainBuilder {
            repr: chunk_repr.clone(),
            chunk_repr,
            fill: fill.to_vec(),
            array_to_array: Vec::new(),
            array_to_bytes: None,
            bytes_to_bytes: Vec::new(),
        }
    }

    fn array_to_array(&mut self, codec: Box<dyn ArrayToArrayCodec>) -> Result<(), CodecError> {
        if self.array_to_bytes.is_some() {
            return Err(CodecError::config(
                "codecs",
                format!("{} comes after the array→bytes codec", codec.describe()),
            ));
        }
        let encoded = codec.encoded_repr(&self.repr)?;
        let decoded = std::mem::replace(&mut self.repr, encoded);
        self.array_to_array.push(ArrayStep { codec, decoded });
        Ok(())
    }

    fn array_to_bytes(&mut self, codec: Box<dyn ArrayToBytesCodec>) -> Result<(), CodecError> {
        if let Some((first, _)) = &self.array_to_bytes {
            return Err(CodecError::config(
                "codecs",
                format!(
                    "two array→bytes codecs: {} and {}",
                    first.describe(),
                    codec.describe()
                ),
            ));
        }
        self.array_to_bytes = Some((codec, self.repr.clone()));
        Ok(())
    }

    /// The array→bytes codec that stores elements as they are (Zarr v2; the bytes numcodecs
    /// filters produce), unless there is one already.
    fn stored_as_they_are(&mut self) -> Result<(), CodecError> {
        if self.array_to_bytes.is_some() {
            return Ok(());
        }
        self.array_to_bytes(Box::new(BytesCodec::new(Some(self.repr.dtype.endian))))
    }

    fn bytes_to_bytes(&mut self, codec: Box<dyn BytesToBytesCodec>) -> Result<(), CodecError> {
        if self.array_to_bytes.is_none() {
            return Err(CodecError::config(
                "codecs",
                format!("{} comes before the array→bytes codec", codec.describe()),
            ));
        }
        self.bytes_to_bytes.push(codec);
        Ok(())
    }

    fn finish(self) -> Result<CodecChain, CodecError> {
        let (array_to_bytes, bytes_repr) = self
            .array_to_bytes
            .ok_or_else(|| CodecError::config("codecs", "no array→bytes codec (e.g. bytes)"))?;
        let chunk_bytes = self.chunk_repr.size("codecs")?;
        Ok(CodecChain {
            array_to_array: self.array_to_array,
            array_to_bytes,
            bytes_repr,
            bytes_to_bytes: self.bytes_to_bytes,
            chunk_bytes,
        })
    }
}

impl CodecChain {
    /// Builds the chain an array's metadata declares for its chunks; unsupported codecs are an
    /// error naming them.
    pub fn from_meta(meta: &ArrayMeta) -> Result<Self, CodecError> {
        let repr = ChunkRepr {
            shape: meta.chunk_shape.iter().map(|&c| c as usize).collect(),
            dtype: meta.dtype,
        };
        match &meta.codecs {
            CodecSpec::V2 {
                filters,
                compressor,
            } => Self::from_v2(filters, compressor.as_ref(), meta.order, repr),
            CodecSpec::V3 { codecs } => Self::from_v3(codecs, repr, &meta.fill_bytes),
        }
    }

    /// A Zarr v2 chain: Fortran order as a transpose, the filters (numcodecs' array filters
    /// over the chunk's bytes in memory order, then its bytes→bytes codecs), the elements as
    /// they are, then the compressor.
    pub fn from_v2(
        filters: &[Value],
        compressor: Option<&Value>,
        order: Order,
        repr: ChunkRepr,
    ) -> Result<Self, CodecError> {
        let itemsize = repr.dtype.size;
        let rank = repr.shape.len();
        let mut chain = ChainBuilder::new(repr, &[]);
        if order == Order::F && rank > 1 {
            chain.array_to_array(Box::new(TransposeCodec::reversed(rank)))?;
        }
        for filter in filters {
            let id = v2_id(filter);
            if let Some(codec) = numcodecs_filter(&id, filter, &chain.repr, 2) {
                chain.array_to_array(codec?)?;
                continue;
            }
            let size = chain.repr.dtype.size;
            let codec = numcodecs_bytes_codec(&id, filter, size, NUMCODECS_SHUFFLE_ELEMENTSIZE)
                .unwrap_or_else(|| Err(CodecError::Unsupported(format!("filter {id}"))))?;
            chain.stored_as_they_are()?;
            chain.bytes_to_bytes(codec)?;
        }
        chain.stored_as_they_are()?;
        if let Some(config) = compressor {
            chain.bytes_to_bytes(v2_compressor(config, itemsize)?)?;
        }
        chain.finish()
    }

    /// A Zarr v3 chain from a `codecs` list, for chunks of `repr` whose fill value is the
    /// element `fill` (in `repr`'s byte order; what absent inner chunks of shards hold). With
    /// numcodecs filters (`numcodecs.*` array→array codecs) it reads as zarr-python does: the
    /// `bytes` codec hands the filters the stored bytes unchanged, and the outermost filter's
    /// elements are cast to the array's type.
    pub fn from_v3(codecs: &[Value], repr: ChunkRepr, fill: &[u8]) -> Result<Self, CodecError> {
        let mut chain = ChainBuilder::new(repr, fill);
        let mut numcodecs_filters = false;
        if let Some(dtype) = outermost_filter_dtype(codecs, &chain.repr)? {
            let cast = AsTypeCodec::cast(dtype, chain.repr.dtype)?;
            chain.array_to_array(Box::new(cast))?;
        }
        for entry in codecs {
            let (name, configuration) = v3_entry(entry)?;
            match name {
                "transpose" => {
                    let order = configuration
                        .get("order")
                        .and_then(Value::as_array)
                        .and_then(|axes| {
                            axes.iter()
                                .map(|a| a.as_u64().map(|a| a as usize))
                                .collect::<Option<Vec<usize>>>()
                        })
                        .ok_or_else(|| {
                            CodecError::config("transpose", format!("invalid order in {entry}"))
                        })?;
                    let rank = chain.repr.shape.len();
                    chain.array_to_array(Box::new(TransposeCodec::new(order, rank)?))?;
                }
                "bytes" => {
                    let mut codec = BytesCodec::from_v3(configuration)?;
                    if numcodecs_filters {
                        codec = BytesCodec::new(Some(chain.repr.dtype.endian));
                    }
                    chain.array_to_bytes(Box::new(codec))?;
                }
                "sharding_indexed" => {
                    let codec = ShardingCodec::from_v3(configuration, &chain.repr, &chain.fill)?;
                    chain.array_to_bytes(Box::new(codec))?
                }
                _ => {
                    let filter = name
                        .strip_prefix("numcodecs.")
                        .and_then(|id| numcodecs_filter(id, configuration, &chain.repr, 3));
                    if let Some(codec) = filter {
                        chain.array_to_array(codec?)?;
                        numcodecs_filters = true;
                        continue;
                    }
                    // zarr-python evolves every codec from the array's own spec.
                    let itemsize = chain.chunk_repr.dtype.size;
                    chain.bytes_to_bytes(v3_bytes_codec(name, configuration, itemsize)?)?
                }
            }
        }
        chain.finish()
    }

    /// Size of a decoded chunk in bytes.
    pub fn chunk_bytes(&self) -> usize {
        self.chunk_bytes
    }

    /// The size of every stored chunk, when the codecs make it fixed (no compressor).
    pub fn encoded_len(&self) -> Option<usize> {
        let sizes = self.bytes_stage_sizes();
        match (self.bytes_to_bytes.last(), sizes.last()) {
            (Some(codec), Some(size)) => size.and_then(|s| codec.encoded_len(s)),
            _ => self.array_to_bytes.encoded_len(&self.bytes_repr),
        }
    }

    /// The codecs, in encoding order, e.g. `transpose(order=[1, 0]) → bytes → zstd(…)`.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self
            .array_to_array
            .iter()
            .map(|step| step.codec.describe())
            .collect();
        parts.push(self.array_to_bytes.describe());
        parts.extend(self.bytes_to_bytes.iter().map(|c| c.describe()));
        parts.join(" → ")
    }

    /// Whether the array→bytes stage stores chunks as their own bytes with no array→array
    /// codec before it: the bytes→bytes codecs then see the decoded chunk itself.
    fn stores_chunk_bytes(&self) -> bool {
        self.array_to_array.is_empty() && self.array_to_bytes.is_identity_for(&self.bytes_repr)
    }

    /// Decodes a stored chunk into a C-order buffer of exactly [`Self::chunk_bytes`] bytes.
    pub fn decode(&self, encoded: &[u8]) -> Result<Vec<u8>, CodecError> {
        self.decode_reusing(encoded, vec![0u8; self.chunk_bytes])
    }

    /// Like [`Self::decode`], decoding into `buffer` (a recycled chunk buffer whose old
    /// contents are entirely overwritten) to spare an allocation.
    pub fn decode_reusing(
        &self,
        encoded: &[u8],
        mut buffer: Vec<u8>,
    ) -> Result<Vec<u8>, CodecError> {
        buffer.resize(self.chunk_bytes, 0);
        self.decode_into(encoded, &mut buffer)?;
        Ok(buffer)
    }

    /// The size each bytes→bytes codec decodes into, where the codecs before it tell
    /// (`sizes[i]` is what codec `i` decodes to).
    fn bytes_stage_sizes(&self) -> Vec<Option<usize>> {
        let mut sizes = Vec::with_capacity(self.bytes_to_bytes.len());
        let mut size = self.array_to_bytes.encoded_len(&self.bytes_repr);
        for codec in &self.bytes_to_bytes {
            sizes.push(size);
            size = size.and_then(|s| codec.encoded_len(s));
        }
        sizes
    }

    /// The most bytes a bytes→bytes stage of unknown output size may decode to: what the
    /// stages closer to the array could need to encode a chunk, with room to spare.
    fn unknown_stage_bound(&self) -> usize {
        self.chunk_bytes
            .max(1 << 20)
            .saturating_mul(2)
            .saturating_add(64 << 10)
    }

    /// Decodes a stored chunk into `out`, which has exactly [`Self::chunk_bytes`] bytes.
    pub fn decode_into(&self, encoded: &[u8], out: &mut [u8]) -> Result<(), CodecError> {
        if out.len() != self.chunk_bytes {
            return Err(super::size_mismatch("chain", out.len(), self.chunk_bytes));
        }
        let direct = self.stores_chunk_bytes();
        let sizes = self.bytes_stage_sizes();
        let mut stage: Cow<[u8]> = Cow::Borrowed(encoded);
        for (i, codec) in self.bytes_to_bytes.iter().enumerate().rev() {
            if i == 0 && direct {
                return codec.decode_into(&stage, out);
            }
            stage = Cow::Owned(match sizes[i] {
                Some(size) => {
                    let mut decoded = super::alloc_zeroed("chain", size)?;
                    codec.decode_into(&stage, &mut decoded)?;
                    decoded
                }
                None => codec.decode_bounded(&stage, self.unknown_stage_bound())?,
            });
        }
        let Some((last, earlier)) = self.array_to_array.split_first() else {
            return self
                .array_to_bytes
                .decode_into(&stage, &self.bytes_repr, out);
        };
        // Array→array codecs decode from the innermost (last) to the first, into `out`.
        let mut array = vec![0u8; self.bytes_repr.size("chain")?];
        self.array_to_bytes
            .decode_into(&stage, &self.bytes_repr, &mut array)?;
        for step in earlier.iter().rev() {
            let mut decoded = vec![0u8; step.decoded.size("chain")?];
            step.codec
                .decode_into(&array, &step.decoded, &mut decoded)?;
            array = decoded;
        }
        last.codec.decode_into(&array, &last.decoded, out)
    }

    /// Whether stored chunks may decode by blocks: a lone blosc codec over the chunk's own
    /// bytes.
    pub fn may_decode_by_blocks(&self) -> bool {
        self.stores_chunk_bytes()
            && self.bytes_to_bytes.len() == 1
            && self.bytes_to_bytes[0].stores_blocks()
    }

    /// Encodes a C-order chunk buffer into its stored bytes.
    pub fn encode(&self, chunk: &[u8]) -> Result<Vec<u8>, CodecError> {
        let mut data: Cow<[u8]> = Cow::Borrowed(chunk);
        for step in &self.array_to_array {
            data = Cow::Owned(step.codec.encode(&data, &step.decoded)?);
        }
        if !self.array_to_bytes.is_identity_for(&self.bytes_repr) {
            data = Cow::Owned(self.array_to_bytes.encode(&data, &self.bytes_repr)?);
        }
        for codec in &self.bytes_to_bytes {
            data = Cow::Owned(codec.encode(&data)?);
        }
        Ok(data.into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::v2::parse_zarray;
    use serde_json::json;

    fn meta(compressor: Value, order: &str) -> ArrayMeta {
        parse_zarray(
            &json!({"zarr_format": 2, "shape": [5, 6], "chunks": [2, 3], "dtype": "<i4",
                    "compressor": compressor, "fill_value": 0, "order": order, "filters": null}),
            json!({}),
        )
        .unwrap()
    }

    fn repr(shape: &[usize], dtype: &str) -> ChunkRepr {
        ChunkRepr {
            shape: shape.to_vec(),
            dtype: DataType::parse_numpy(dtype).unwrap(),
        }
    }

    #[test]
    fn round_trips_every_v2_compressor_and_order() {
        let chunk: Vec<u8> = (0..24u8).collect();
        for compressor in [
            Value::Null,
            json!({"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1, "blocksize": 0}),
            json!({"id": "zstd", "level": 3}),
            json!({"id": "gzip", "level": 5}),
            json!({"id": "zlib", "level": 1}),
            json!({"id": "lz4", "acceleration": 1}),
        ] {
            for order in ["C", "F"] {
                let p = CodecChain::from_meta(&meta(compressor.clone(), order)).unwrap();
                let stored = p.encode(&chunk).unwrap();
                assert_eq!(p.decode(&stored).unwrap(), chunk, "{compressor} {order}");
            }
        }
    }

    #[test]
    fn recycled_buffers_are_fully_overwritten() {
        let chunk: Vec<u8> = (0..24u8).collect();
        for compressor in [Value::Null, json!({"id": "zstd", "level": 1})] {
            let p = CodecChain::from_meta(&meta(compressor, "C")).unwrap();
            let stored = p.encode(&chunk).unwrap();
            assert_eq!(p.decode_reusing(&stored, vec![0xEE; 24]).unwrap(), chunk);
            assert_eq!(p.decode_reusing(&stored, vec![0xEE; 3]).unwrap(), chunk);
            assert!(p.decode_reusing(&stored[..2], vec![0xEE; 24]).is_err());
        }
    }

    #[test]
    fn f_order_chunks_are_presented_in_c_order() {
        let p = CodecChain::from_meta(&meta(Value::Null, "F")).unwrap();
        // Stored F order for a 2x3 chunk of i4: columns first.
        let stored: Vec<u8> = [0i32, 3, 1, 4, 2, 5]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let expected: Vec<u8> = (0..6i32).flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(p.decode(&stored).unwrap(), expected);
        assert_eq!(p.encode(&expected).unwrap(), stored);
    }

    #[test]
    fn rejects_wrong_sizes_and_unsupported_codecs() {
        let p = CodecChain::from_meta(&meta(Value::Null, "C")).unwrap();
        assert!(p.decode(&[0u8; 5]).is_err());
        let err = CodecChain::from_meta(&meta(json!({"id": "nope", "level": 1}), "C")).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
        let mut with_filter = meta(Value::Null, "C");
        with_filter.codecs = CodecSpec::V2 {
            filters: vec![json!({"id": "nofilter", "dtype": "<i4"})],
            compressor: None,
        };
        let err = CodecChain::from_meta(&with_filter).unwrap_err();
        assert!(err.to_string().contains("nofilter"), "{err}");
    }

    #[test]
    fn v3_chains_compose_transpose_bytes_and_compressors() {
        let r = repr(&[2, 3, 4], "<u2");
        let chunk: Vec<u8> = (0..48u8).collect();
        let chains = [
            json!([{"name": "bytes", "configuration": {"endian": "little"}}]),
            json!([{"name": "bytes", "configuration": {"endian": "big"}},
                   {"name": "zstd", "configuration": {"level": 0, "checksum": true}}]),
            json!([{"name": "transpose", "configuration": {"order": [2, 0, 1]}},
                   {"name": "bytes", "configuration": {"endian": "big"}},
                   {"name": "gzip", "configuration": {"level": 5}}]),
            json!([{"name": "transpose", "configuration": {"order": [1, 0, 2]}},
                   {"name": "transpose", "configuration": {"order": [2, 1, 0]}},
                   {"name": "bytes", "configuration": {"endian": "little"}},
                   {"name": "blosc", "configuration": {"cname": "lz4", "clevel": 5,
                    "shuffle": "shuffle", "typesize": 2, "blocksize": 0}},
                   {"name": "gzip", "configuration": {"level": 1}}]),
        ];
        for codecs in &chains {
            let chain =
                CodecChain::from_v3(codecs.as_array().unwrap(), r.clone(), &[0; 2]).unwrap();
            let stored = chain.encode(&chunk).unwrap();
            assert_eq!(chain.decode(&stored).unwrap(), chunk, "{codecs}");
        }
        // A big-endian bytes codec over little-endian elements swaps their bytes.
        let big = CodecChain::from_v3(
            json!([{"name": "bytes", "configuration": {"endian": "big"}}])
                .as_array()
                .unwrap(),
            repr(&[2], "<u2"),
            &[0; 2],
        )
        .unwrap();
        assert_eq!(big.encode(&[1, 0, 2, 0]).unwrap(), [0, 1, 0, 2]);
        assert_eq!(big.decode(&[0, 1, 0, 2]).unwrap(), [1, 0, 2, 0]);
        // Transposed as the spec says: encoded axis i is decoded axis order[i].
        let t = CodecChain::from_v3(
            json!([{"name": "transpose", "configuration": {"order": [1, 0]}},
                   {"name": "bytes", "configuration": {"endian": "little"}}])
            .as_array()
            .unwrap(),
            repr(&[2, 3], "|u1"),
            &[0],
        )
        .unwrap();
        assert_eq!(t.encode(&[0, 1, 2, 3, 4, 5]).unwrap(), [0, 3, 1, 4, 2, 5]);
    }

    #[test]
    fn v3_chains_out_of_order_or_incomplete_are_errors() {
        let r = repr(&[4], "<i4");
        for codecs in [
            json!([]),
            json!([{"name": "zstd"}]),
            json!([{"name": "bytes", "configuration": {"endian": "little"}},
                   {"name": "transpose", "configuration": {"order": [0]}}]),
            json!([{"name": "bytes", "configuration": {"endian": "little"}},
                   {"name": "bytes", "configuration": {"endian": "little"}}]),
            json!([{"name": "bytes", "configuration": {"endian": "middle"}}]),
            json!([{"configuration": {}}]),
            json!([{"name": "bytes", "configuration": {"endian": "little"}},
                   {"name": "unknown-codec"}]),
        ] {
            assert!(
                CodecChain::from_v3(codecs.as_array().unwrap(), r.clone(), &[0; 4]).is_err(),
                "{codecs}"
            );
        }
    }
}
