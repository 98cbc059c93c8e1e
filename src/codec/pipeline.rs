//! The codec pipeline of one array: stored chunk bytes ⇄ decoded C-order chunk buffers.

use super::{c_to_f_order, f_to_c_order, v2_compressor, BytesCodec, CodecError};
use crate::metadata::{ArrayMeta, CodecSpec, Order};
use serde_json::Value;

/// Turns stored chunk objects into decoded chunk buffers (full chunk shape, C order, the
/// dtype's declared byte order) and back.
#[derive(Debug)]
pub struct ChunkPipeline {
    compressor: Option<Box<dyn BytesCodec>>,
    order: Order,
    chunk_shape: Vec<usize>,
    itemsize: usize,
    chunk_bytes: usize,
}

fn codec_id(config: &Value) -> String {
    config
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or("<missing id>")
        .to_string()
}

impl ChunkPipeline {
    /// Builds the pipeline an array's metadata declares; unsupported codecs are an error
    /// naming them.
    pub fn from_meta(meta: &ArrayMeta) -> Result<Self, CodecError> {
        let itemsize = meta.dtype.size;
        let chunk_shape: Vec<usize> = meta.chunk_shape.iter().map(|&c| c as usize).collect();
        let chunk_bytes = chunk_shape.iter().product::<usize>() * itemsize;
        let compressor = match &meta.codecs {
            CodecSpec::V2 {
                filters,
                compressor,
            } => {
                if let Some(filter) = filters.first() {
                    return Err(CodecError::Unsupported(format!(
                        "filter {}",
                        codec_id(filter)
                    )));
                }
                compressor
                    .as_ref()
                    .map(|config| v2_compressor(config, itemsize))
                    .transpose()?
            }
        };
        Ok(ChunkPipeline {
            compressor,
            order: meta.order,
            chunk_shape,
            itemsize,
            chunk_bytes,
        })
    }

    /// Size of a decoded chunk in bytes.
    pub fn chunk_bytes(&self) -> usize {
        self.chunk_bytes
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
        let decoded = match &self.compressor {
            Some(codec) => {
                codec.decode_into(encoded, &mut buffer)?;
                buffer
            }
            None => {
                if encoded.len() != self.chunk_bytes {
                    return Err(CodecError::Corrupt {
                        codec: "raw".into(),
                        reason: format!(
                            "chunk holds {} bytes, expected {}",
                            encoded.len(),
                            self.chunk_bytes
                        ),
                    });
                }
                buffer.copy_from_slice(encoded);
                buffer
            }
        };
        Ok(match self.order {
            Order::F if self.chunk_shape.len() > 1 => {
                f_to_c_order(&decoded, &self.chunk_shape, self.itemsize)
            }
            _ => decoded,
        })
    }

    /// Whether stored chunks may decode by blocks: blosc frames, in C order.
    pub fn may_decode_by_blocks(&self) -> bool {
        !(self.order == Order::F && self.chunk_shape.len() > 1)
            && self
                .compressor
                .as_ref()
                .is_some_and(|codec| codec.stores_blocks())
    }

    /// Encodes a C-order chunk buffer into the stored representation.
    pub fn encode(&self, chunk: &[u8]) -> Result<Vec<u8>, CodecError> {
        let ordered;
        let bytes = match self.order {
            Order::F if self.chunk_shape.len() > 1 => {
                ordered = c_to_f_order(chunk, &self.chunk_shape, self.itemsize);
                &ordered[..]
            }
            _ => chunk,
        };
        match &self.compressor {
            Some(codec) => codec.encode(bytes),
            None => Ok(bytes.to_vec()),
        }
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
                let p = ChunkPipeline::from_meta(&meta(compressor.clone(), order)).unwrap();
                let stored = p.encode(&chunk).unwrap();
                assert_eq!(p.decode(&stored).unwrap(), chunk, "{compressor} {order}");
            }
        }
    }

    #[test]
    fn recycled_buffers_are_fully_overwritten() {
        let chunk: Vec<u8> = (0..24u8).collect();
        for compressor in [Value::Null, json!({"id": "zstd", "level": 1})] {
            let p = ChunkPipeline::from_meta(&meta(compressor, "C")).unwrap();
            let stored = p.encode(&chunk).unwrap();
            assert_eq!(p.decode_reusing(&stored, vec![0xEE; 24]).unwrap(), chunk);
            assert_eq!(p.decode_reusing(&stored, vec![0xEE; 3]).unwrap(), chunk);
            assert!(p.decode_reusing(&stored[..2], vec![0xEE; 24]).is_err());
        }
    }

    #[test]
    fn f_order_chunks_are_presented_in_c_order() {
        let p = ChunkPipeline::from_meta(&meta(Value::Null, "F")).unwrap();
        // Stored F order for a 2x3 chunk of i4: columns first.
        let stored: Vec<u8> = [0i32, 3, 1, 4, 2, 5]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let expected: Vec<u8> = (0..6i32).flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(p.decode(&stored).unwrap(), expected);
    }

    #[test]
    fn rejects_wrong_sizes_and_unsupported_codecs() {
        let p = ChunkPipeline::from_meta(&meta(Value::Null, "C")).unwrap();
        assert!(p.decode(&[0u8; 5]).is_err());
        let err =
            ChunkPipeline::from_meta(&meta(json!({"id": "bz2", "level": 1}), "C")).unwrap_err();
        assert!(err.to_string().contains("bz2"), "{err}");
        let mut with_filter = meta(Value::Null, "C");
        with_filter.codecs = CodecSpec::V2 {
            filters: vec![json!({"id": "delta", "dtype": "<i4"})],
            compressor: None,
        };
        let err = ChunkPipeline::from_meta(&with_filter).unwrap_err();
        assert!(err.to_string().contains("delta"), "{err}");
    }
}
