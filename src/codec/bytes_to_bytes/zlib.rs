//! zlib codec (RFC 1950 stream, as numcodecs `Zlib` / Python `zlib.compress`
//! writes), plus the strict inflate helpers shared with the gzip codec.

use std::io::Write;

use flate2::{Compression, Decompress, FlushDecompress, Status};
use serde_json::Value;

use crate::codec::{int_field_in, size_mismatch, BytesToBytesCodec, CodecError};

const CODEC: &str = "zlib";

/// The zlib codec; `level` 0..=9 (numcodecs default 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZlibCodec {
    level: u32,
}

impl ZlibCodec {
    /// Create a zlib codec with compression `level` 0..=9.
    pub fn new(level: u32) -> Result<Self, CodecError> {
        Ok(Self {
            level: deflate_level(CODEC, level)?,
        })
    }

    /// From a config object with optional integer "level" (default 1; see
    /// [`level_field`]).
    pub(crate) fn from_config(codec: &str, config: &Value) -> Result<Self, CodecError> {
        Self::new(level_field(codec, config)?)
    }
}

impl BytesToBytesCodec for ZlibCodec {
    fn describe(&self) -> String {
        format!("zlib(level={})", self.level)
    }

    fn decode(&self, encoded: &[u8]) -> Result<Vec<u8>, CodecError> {
        self.decode_bounded(encoded, usize::MAX)
    }

    fn decode_bounded(&self, encoded: &[u8], max_len: usize) -> Result<Vec<u8>, CodecError> {
        let mut out = Vec::new();
        // Bytes after the end of the stream are ignored, as Python's zlib does.
        inflate_vec(CODEC, true, encoded, &mut out, max_len)?;
        super::check_bound(CODEC, out.len(), max_len)?;
        Ok(out)
    }

    fn decode_into(&self, encoded: &[u8], out: &mut [u8]) -> Result<(), CodecError> {
        let (_, written) = inflate_slice(CODEC, true, encoded, out)?;
        if written != out.len() {
            return Err(size_mismatch(CODEC, written, out.len()));
        }
        Ok(())
    }

    fn encode(&self, decoded: &[u8]) -> Result<Vec<u8>, CodecError> {
        let mut enc = flate2::write::ZlibEncoder::new(
            Vec::with_capacity(decoded.len() / 2 + 64),
            Compression::new(self.level),
        );
        enc.write_all(decoded)
            .and_then(|()| enc.finish())
            .map_err(|e| CodecError::encode(CODEC, e.to_string()))
    }
}

fn inflate_error(codec: &str, e: flate2::DecompressError) -> CodecError {
    CodecError::corrupt(codec, format!("invalid deflate data: {e}"))
}

fn truncated(codec: &str) -> CodecError {
    CodecError::corrupt(codec, "truncated stream")
}

/// Inflate one complete deflate stream (zlib-wrapped when `zlib_header`)
/// from the start of `input` into `out`, which must not be overrun: output
/// beyond `out.len()` is an error. Returns (input bytes consumed, bytes
/// written). The stream must end (and, for zlib, its checksum verify).
///
/// Whole-buffer inflate (libdeflate): with the output size known it decodes
/// without a sliding window, about twice as fast as a streaming inflater.
pub(crate) fn inflate_slice(
    codec: &str,
    zlib_header: bool,
    input: &[u8],
    out: &mut [u8],
) -> Result<(usize, usize), CodecError> {
    let result = DECOMPRESSOR.with(|decompressor| {
        let Some(decompressor) = decompressor.0 else {
            return Err(CodecError::corrupt(codec, "no memory for an inflater"));
        };
        let inflate = if zlib_header {
            libdeflate_sys::libdeflate_zlib_decompress_ex
        } else {
            libdeflate_sys::libdeflate_deflate_decompress_ex
        };
        let (mut consumed, mut written) = (0usize, 0usize);
        // SAFETY: the decompressor is this thread's own; the pointers and lengths describe
        // `input` and `out`, which libdeflate reads and writes only within those lengths.
        let status = unsafe {
            inflate(
                decompressor.as_ptr(),
                input.as_ptr().cast(),
                input.len(),
                out.as_mut_ptr().cast(),
                out.len(),
                &mut consumed,
                &mut written,
            )
        };
        Ok((status, consumed, written))
    })?;
    match result {
        (libdeflate_sys::libdeflate_result_LIBDEFLATE_SUCCESS, consumed, written) => {
            Ok((consumed, written))
        }
        (libdeflate_sys::libdeflate_result_LIBDEFLATE_INSUFFICIENT_SPACE, ..) => {
            Err(CodecError::corrupt(
                codec,
                format!(
                    "decoded data exceeds the expected size of {} bytes",
                    out.len()
                ),
            ))
        }
        _ => Err(CodecError::corrupt(
            codec,
            if zlib_header {
                "invalid or truncated zlib stream (or checksum mismatch)"
            } else {
                "invalid or truncated deflate data"
            },
        )),
    }
}

/// A libdeflate decompressor (None when it could not be allocated), freed with its thread.
struct Inflater(Option<std::ptr::NonNull<libdeflate_sys::libdeflate_decompressor>>);

impl Drop for Inflater {
    fn drop(&mut self) {
        if let Some(decompressor) = self.0 {
            // SAFETY: allocated by libdeflate_alloc_decompressor and freed only here.
            unsafe { libdeflate_sys::libdeflate_free_decompressor(decompressor.as_ptr()) }
        }
    }
}

thread_local! {
    /// Each decoding thread's inflater (its tables are reused from one chunk to the next).
    static DECOMPRESSOR: Inflater =
        // SAFETY: no preconditions; a null result is kept as None.
        Inflater(std::ptr::NonNull::new(unsafe { libdeflate_sys::libdeflate_alloc_decompressor() }));
}

/// Inflate one complete deflate stream (zlib-wrapped when `zlib_header`)
/// from the start of `input`, appending to `out`. Returns the number of
/// input bytes consumed.
/// A deflate level, 0..=9.
pub(crate) fn deflate_level(codec: &str, level: u32) -> Result<u32, CodecError> {
    if level > 9 {
        return Err(CodecError::config(
            codec,
            format!("level must be 0..=9, got {level}"),
        ));
    }
    Ok(level)
}

/// The optional integer "level" of a zlib or gzip configuration (default 1); -1 is zlib's
/// default, 6, as Python's `zlib` and `gzip` modules (and so numcodecs) take it.
pub(crate) fn level_field(codec: &str, config: &Value) -> Result<u32, CodecError> {
    Ok(
        match int_field_in(codec, config, "level", -1, 9)?.unwrap_or(1) {
            -1 => 6,
            level => level as u32,
        },
    )
}

pub(crate) fn inflate_vec(
    codec: &str,
    zlib_header: bool,
    input: &[u8],
    out: &mut Vec<u8>,
    max_len: usize,
) -> Result<usize, CodecError> {
    let mut d = Decompress::new(zlib_header);
    let mut grow = input.len().saturating_mul(4).clamp(1024, 1 << 20);
    loop {
        super::check_bound(codec, out.len(), max_len)?;
        if out.len() == out.capacity() {
            // Never room for much more than the bound: one byte past it tells it is passed.
            let room = max_len.saturating_sub(out.len()).saturating_add(1);
            out.try_reserve(grow.min(room)).map_err(|_| {
                CodecError::corrupt(codec, "cannot allocate memory for decoded data")
            })?;
            grow = out.capacity().clamp(1024, 64 << 20);
        }
        let in_pos = d.total_in() as usize;
        let out_pos = d.total_out();
        let status = d
            .decompress_vec(&input[in_pos..], out, FlushDecompress::None)
            .map_err(|e| inflate_error(codec, e))?;
        if status == Status::StreamEnd {
            return Ok(d.total_in() as usize);
        }
        if d.total_in() as usize == in_pos && d.total_out() == out_pos {
            return Err(truncated(codec));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::test_util::{assert_decodes_vectors, assert_round_trips, noise, sample};
    use std::io::Read;

    #[test]
    fn round_trip_levels() {
        for level in 0..=9 {
            // Standard zlib readers accept our output.
            assert_round_trips(&ZlibCodec::new(level).unwrap(), |enc| {
                let mut check = Vec::new();
                flate2::read::ZlibDecoder::new(enc)
                    .read_to_end(&mut check)
                    .unwrap();
                check
            });
        }
        assert!(matches!(ZlibCodec::new(10), Err(CodecError::Config { .. })));
    }

    #[test]
    fn decodes_numcodecs_frames() {
        assert_decodes_vectors(
            &ZlibCodec::new(1).unwrap(),
            &["zlib_l1", "zlib_l9", "zlib_empty"],
        );
    }

    #[test]
    fn rejects_bad_streams() {
        let c = ZlibCodec::new(6).unwrap();
        let data = sample(30_000);
        let enc = c.encode(&data).unwrap();
        let is_corrupt =
            |r: Result<Vec<u8>, CodecError>| matches!(r, Err(CodecError::Corrupt { .. }));
        // Bad checksum (last byte of the Adler-32 trailer).
        let mut bad = enc.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(is_corrupt(c.decode(&bad)));
        let mut out = vec![0u8; data.len()];
        assert!(c.decode_into(&bad, &mut out).is_err());
        // Missing checksum.
        assert!(is_corrupt(c.decode(&enc[..enc.len() - 4])));
        assert!(c.decode_into(&enc[..enc.len() - 4], &mut out).is_err());
        // Trailing bytes after the stream are ignored, as Python's zlib does.
        let mut long = enc.clone();
        long.extend_from_slice(b"xyz");
        assert_eq!(c.decode(&long).unwrap(), data);
        c.decode_into(&long, &mut out).unwrap();
        assert_eq!(out, data);
        // Raw deflate without the zlib header.
        let mut raw = Vec::new();
        flate2::read::DeflateEncoder::new(&data[..], Compression::new(6))
            .read_to_end(&mut raw)
            .unwrap();
        assert!(is_corrupt(c.decode(&raw)));
        for seed in 0..300 {
            let _ = c.decode(&noise(seed, 500));
        }
    }
}
