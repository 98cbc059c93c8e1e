//! Blosc codec on top of the c-blosc 1.x context API (thread-safe, one
//! internal thread per call: parallelism happens at chunk level).
//!
//! Frames carry their own typesize, shuffle mode and internal compressor in
//! the 16-byte header, so decoding never depends on the configuration.

use std::ffi::{c_char, c_int, c_void, CStr};

use serde_json::Value;

use crate::codec::{
    alloc_zeroed, int_field, int_field_in, size_mismatch, BytesToBytesCodec, CodecError,
};

const CODEC: &str = "blosc";
/// Blosc 1.x frame header length.
const HEADER_LEN: usize = blosc_src::BLOSC_MIN_HEADER_LENGTH as usize;
/// Extra room `blosc_compress_ctx` may need beyond the input size.
const MAX_OVERHEAD: usize = blosc_src::BLOSC_MAX_OVERHEAD as usize;
/// Largest uncompressed buffer a blosc 1.x frame can hold.
const MAX_BUFFERSIZE: usize = blosc_src::BLOSC_MAX_BUFFERSIZE as usize;
/// Header format version written by c-blosc 1.x.
const VERSION_FORMAT: u8 = blosc_src::BLOSC_VERSION_FORMAT as u8;

/// Internal compressor used inside a blosc frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BloscCompressor {
    /// "blosclz"
    BloscLz,
    /// "lz4"
    Lz4,
    /// "lz4hc"
    Lz4hc,
    /// "zlib"
    Zlib,
    /// "zstd"
    Zstd,
    /// "snappy" (c-blosc built with snappy; numcodecs' wheels leave it out)
    Snappy,
}

impl BloscCompressor {
    /// Parse a blosc `cname`; unknown names are unsupported.
    pub fn from_name(name: &str) -> Result<Self, CodecError> {
        match name {
            "blosclz" => Ok(Self::BloscLz),
            "lz4" => Ok(Self::Lz4),
            "lz4hc" => Ok(Self::Lz4hc),
            "zlib" => Ok(Self::Zlib),
            "zstd" => Ok(Self::Zstd),
            "snappy" => Ok(Self::Snappy),
            other => Err(CodecError::Unsupported(format!(
                "blosc with cname {other:?}"
            ))),
        }
    }

    /// The `cname` spelling of this compressor.
    pub fn name(self) -> &'static str {
        match self {
            Self::BloscLz => "blosclz",
            Self::Lz4 => "lz4",
            Self::Lz4hc => "lz4hc",
            Self::Zlib => "zlib",
            Self::Zstd => "zstd",
            Self::Snappy => "snappy",
        }
    }

    fn c_name(self) -> &'static CStr {
        match self {
            Self::BloscLz => c"blosclz",
            Self::Lz4 => c"lz4",
            Self::Lz4hc => c"lz4hc",
            Self::Zlib => c"zlib",
            Self::Zstd => c"zstd",
            Self::Snappy => c"snappy",
        }
    }
}

/// Blosc shuffle filter applied before compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BloscShuffle {
    /// No shuffle (0 / "noshuffle").
    None,
    /// Byte shuffle (1 / "shuffle").
    Byte,
    /// Bit shuffle (2 / "bitshuffle").
    Bit,
}

impl BloscShuffle {
    /// Parse a numcodecs shuffle code: 0, 1, 2, or -1 (AUTOSHUFFLE: bit
    /// shuffle when `typesize` is 1, byte shuffle otherwise).
    pub fn from_code(code: i64, typesize: usize) -> Result<Self, CodecError> {
        match code {
            0 => Ok(Self::None),
            1 => Ok(Self::Byte),
            2 => Ok(Self::Bit),
            -1 => Ok(Self::auto(typesize)),
            other => Err(CodecError::config(
                CODEC,
                format!("shuffle must be -1, 0, 1 or 2, got {other}"),
            )),
        }
    }

    /// The default zarr-python picks for an element size: bit shuffle for
    /// single bytes, byte shuffle otherwise.
    pub fn auto(typesize: usize) -> Self {
        if typesize == 1 {
            Self::Bit
        } else {
            Self::Byte
        }
    }

    fn code(self) -> c_int {
        match self {
            Self::None => blosc_src::BLOSC_NOSHUFFLE as c_int,
            Self::Byte => blosc_src::BLOSC_SHUFFLE as c_int,
            Self::Bit => blosc_src::BLOSC_BITSHUFFLE as c_int,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Byte => "byte",
            Self::Bit => "bit",
        }
    }
}

/// The blosc meta-compressor (c-blosc 1.x frame format, as numcodecs writes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BloscCodec {
    cname: BloscCompressor,
    clevel: u8,
    shuffle: BloscShuffle,
    typesize: usize,
    blocksize: usize,
}

impl BloscCodec {
    /// Create a blosc codec; `clevel` must be 0..=9 and `typesize` at least 1
    /// (values above 255 make c-blosc fall back to typesize 1, as it does for
    /// numcodecs). `blocksize` 0 lets c-blosc choose.
    pub fn new(
        cname: BloscCompressor,
        clevel: u8,
        shuffle: BloscShuffle,
        typesize: usize,
        blocksize: usize,
    ) -> Result<Self, CodecError> {
        if clevel > 9 {
            return Err(CodecError::config(
                CODEC,
                format!("clevel must be 0..=9, got {clevel}"),
            ));
        }
        if typesize == 0 {
            return Err(CodecError::config(CODEC, "typesize must be at least 1"));
        }
        Ok(Self {
            cname,
            clevel,
            shuffle,
            typesize,
            blocksize,
        })
    }

    /// From a Zarr v2 / numcodecs config object. Defaults follow numcodecs:
    /// cname "lz4", clevel 5, shuffle 1, blocksize 0, typesize `itemsize`.
    pub(crate) fn from_v2(config: &Value, itemsize: usize) -> Result<Self, CodecError> {
        let cname = cname_field(config, "lz4")?;
        let clevel = int_field_in(CODEC, config, "clevel", 0, 9)?.unwrap_or(5);
        let typesize = typesize_field(config, itemsize)?;
        let shuffle = match int_field(CODEC, config, "shuffle")? {
            Some(code) => BloscShuffle::from_code(code, typesize)?,
            None => BloscShuffle::Byte,
        };
        let blocksize = blocksize_field(config)?;
        Self::new(cname, clevel as u8, shuffle, typesize, blocksize)
    }

    /// From a Zarr v3 `blosc` codec configuration. Missing fields take the
    /// zarr-python defaults: cname "zstd", clevel 5, typesize `itemsize`,
    /// shuffle by typesize (bit for 1, byte otherwise), blocksize 0.
    pub(crate) fn from_v3(config: &Value, itemsize: usize) -> Result<Self, CodecError> {
        let cname = cname_field(config, "zstd")?;
        let clevel = int_field_in(CODEC, config, "clevel", 0, 9)?.unwrap_or(5);
        let typesize = typesize_field(config, itemsize)?;
        let shuffle = match config.get("shuffle") {
            None | Some(Value::Null) => BloscShuffle::auto(typesize),
            Some(Value::String(s)) => match s.as_str() {
                "noshuffle" => BloscShuffle::None,
                "shuffle" => BloscShuffle::Byte,
                "bitshuffle" => BloscShuffle::Bit,
                other => {
                    return Err(CodecError::config(
                        CODEC,
                        format!(
                            "shuffle must be \"noshuffle\", \"shuffle\" or \"bitshuffle\", got {other:?}"
                        ),
                    ))
                }
            },
            // Tolerate numcodecs-style integer codes.
            Some(v) => match v.as_i64() {
                Some(code) => BloscShuffle::from_code(code, typesize)?,
                None => {
                    return Err(CodecError::config(
                        CODEC,
                        format!("shuffle must be a string, got {v}"),
                    ))
                }
            },
        };
        let blocksize = blocksize_field(config)?;
        Self::new(cname, clevel as u8, shuffle, typesize, blocksize)
    }

    /// Uncompressed size recorded in a blosc frame header, after validating
    /// that `encoded` starts with a well-formed-looking blosc 1.x frame.
    pub fn frame_decoded_len(encoded: &[u8]) -> Result<usize, CodecError> {
        Ok(Self::frame(encoded)?.1)
    }

    /// Validate the header and split off the frame: returns the frame (the
    /// header's compressed size; trailing bytes after it are ignored, as
    /// numcodecs does) and its decoded size.
    fn frame(encoded: &[u8]) -> Result<(&[u8], usize), CodecError> {
        if encoded.len() < HEADER_LEN {
            return Err(CodecError::corrupt(
                CODEC,
                format!(
                    "input of {} bytes is shorter than the {HEADER_LEN}-byte header",
                    encoded.len()
                ),
            ));
        }
        if encoded[0] != VERSION_FORMAT {
            return Err(CodecError::corrupt(
                CODEC,
                format!("unsupported frame format version {}", encoded[0]),
            ));
        }
        let cbytes = u32::from_le_bytes([encoded[12], encoded[13], encoded[14], encoded[15]]);
        let frame = usize::try_from(cbytes)
            .ok()
            .and_then(|n| encoded.get(..n))
            .ok_or_else(|| {
                CodecError::corrupt(
                    CODEC,
                    format!(
                        "header says the frame is {cbytes} bytes but the input is only {} bytes",
                        encoded.len()
                    ),
                )
            })?;
        let mut nbytes: usize = 0;
        // SAFETY: `frame` is a live slice and `nbytes` a valid out-pointer; the
        // function checks `frame.len()` >= 16 before reading the header, and
        // reads nothing else.
        let rc = unsafe {
            blosc_src::blosc_cbuffer_validate(
                frame.as_ptr().cast::<c_void>(),
                frame.len(),
                &mut nbytes,
            )
        };
        if rc != 0 || nbytes > MAX_BUFFERSIZE {
            return Err(CodecError::corrupt(CODEC, "invalid frame header"));
        }
        Ok((frame, nbytes))
    }
}

/// Where the blocks of a stored c-blosc 1.x frame lie (from its header and block offsets),
/// so that one block can be read and decoded without the rest of the frame.
#[derive(Clone, Debug)]
pub struct BloscBlocks {
    header: [u8; HEADER_LEN],
    nbytes: usize,
    blocksize: usize,
    memcpyed: bool,
    /// Byte range of each block in the frame.
    ranges: Vec<std::ops::Range<usize>>,
}

/// Header flag: blocks are not split into one stream per byte of an item.
const DONT_SPLIT: u8 = 0x10;

impl BloscBlocks {
    /// How many bytes from the start of a frame [`Self::parse`] needs, given its first
    /// [`HEADER_LEN`] bytes: the header and the block offsets.
    pub fn index_len(header: &[u8]) -> Result<usize, CodecError> {
        let (nbytes, blocksize, memcpyed) = Self::header_fields(header)?;
        Ok(if memcpyed {
            HEADER_LEN
        } else {
            HEADER_LEN + 4 * nbytes.div_ceil(blocksize)
        })
    }

    fn header_fields(header: &[u8]) -> Result<(usize, usize, bool), CodecError> {
        let word = |i: usize| {
            u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]) as usize
        };
        if header.len() < HEADER_LEN || header[0] != VERSION_FORMAT {
            return Err(CodecError::corrupt(CODEC, "not a blosc 1.x frame header"));
        }
        let (nbytes, blocksize) = (word(4), word(8));
        if blocksize == 0 || nbytes > MAX_BUFFERSIZE || header[3] == 0 {
            return Err(CodecError::corrupt(CODEC, "invalid frame header"));
        }
        Ok((nbytes, blocksize, header[2] & 0x2 != 0))
    }

    /// Parses the first [`Self::index_len`] bytes of a frame that is `frame_len` bytes long.
    pub fn parse(head: &[u8], frame_len: usize) -> Result<Self, CodecError> {
        let (nbytes, blocksize, memcpyed) = Self::header_fields(head)?;
        let cbytes = u32::from_le_bytes([head[12], head[13], head[14], head[15]]) as usize;
        if cbytes != frame_len {
            return Err(CodecError::corrupt(
                CODEC,
                format!("header says the frame is {cbytes} bytes but it is {frame_len} bytes"),
            ));
        }
        let nblocks = nbytes.div_ceil(blocksize);
        let ranges = if memcpyed {
            if cbytes != HEADER_LEN + nbytes {
                return Err(CodecError::corrupt(
                    CODEC,
                    "plain-copy frame of the wrong size",
                ));
            }
            (0..nblocks)
                .map(|b| {
                    let start = HEADER_LEN + b * blocksize;
                    start..(start + blocksize).min(cbytes)
                })
                .collect()
        } else {
            let data_start = HEADER_LEN + 4 * nblocks;
            if head.len() < data_start || data_start > cbytes {
                return Err(CodecError::corrupt(CODEC, "block offsets past the frame"));
            }
            let starts: Vec<usize> = (0..nblocks)
                .map(|b| {
                    let i = HEADER_LEN + 4 * b;
                    u32::from_le_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]) as usize
                })
                .collect();
            // Blocks may be stored in any order (compressed by several threads): each ends
            // where the next one in the frame starts.
            let mut sorted = starts.clone();
            sorted.sort_unstable();
            if sorted.windows(2).any(|w| w[0] == w[1])
                || sorted.first().is_some_and(|&s| s < data_start)
                || sorted.last().is_some_and(|&s| s >= cbytes)
            {
                return Err(CodecError::corrupt(CODEC, "invalid block offsets"));
            }
            starts
                .iter()
                .map(|&start| {
                    let next = sorted.partition_point(|&s| s <= start);
                    start..sorted.get(next).copied().unwrap_or(cbytes)
                })
                .collect()
        };
        let mut header = [0u8; HEADER_LEN];
        header.copy_from_slice(&head[..HEADER_LEN]);
        Ok(BloscBlocks {
            header,
            nbytes,
            blocksize,
            memcpyed,
            ranges,
        })
    }

    /// Decoded size of the frame.
    pub fn decoded_len(&self) -> usize {
        self.nbytes
    }

    /// Decoded size of a block (the last one may be shorter).
    pub fn block_size(&self) -> usize {
        self.blocksize
    }

    /// Number of blocks.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// Whether the frame holds no block.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Where block `block` lies in the frame.
    pub fn stored_range(&self, block: usize) -> std::ops::Range<usize> {
        self.ranges[block].clone()
    }

    /// Decodes block `block` from its stored bytes (the frame's [`Self::stored_range`])
    /// into `out`, whose length is the block's decoded size; `scratch` is reused.
    pub fn decode_block(
        &self,
        block: usize,
        stored: &[u8],
        scratch: &mut Vec<u8>,
        out: &mut [u8],
    ) -> Result<(), CodecError> {
        let start = block * self.blocksize;
        let len = self.blocksize.min(self.nbytes.saturating_sub(start));
        if block >= self.ranges.len()
            || out.len() != len
            || stored.len() != self.ranges[block].len()
        {
            return Err(CodecError::corrupt(CODEC, "block outside the frame"));
        }
        if self.memcpyed {
            out.copy_from_slice(stored);
            return Ok(());
        }
        // A frame of this one block: the same header (a last, shorter block is never split
        // into streams), one block offset, the block's bytes.
        let cbytes = HEADER_LEN + 4 + stored.len();
        scratch.clear();
        scratch.extend_from_slice(&self.header[..4]);
        if len < self.blocksize {
            scratch[2] |= DONT_SPLIT;
        }
        for word in [len, len, cbytes, HEADER_LEN + 4] {
            scratch.extend_from_slice(&(word as u32).to_le_bytes());
        }
        scratch.extend_from_slice(stored);
        // SAFETY: `scratch` is a complete frame of `cbytes` bytes (header, one block offset
        // pointing just past itself, the block).
        unsafe { decompress_frame(scratch, out) }.map_err(|rc| {
            CodecError::corrupt(CODEC, format!("c-blosc rejected block {block} (code {rc})"))
        })
    }
}

/// Decodes a whole frame into `out` with c-blosc (one thread); `Err` carries c-blosc's code
/// when it fails or decodes another size than `out.len()`.
///
/// # Safety
/// `frame` must be a blosc 1.x frame whose header's compressed size is `frame.len()`:
/// c-blosc bounds every block offset and length it reads by that size, and writes at most
/// `out.len()` bytes into `out` (a distinct buffer).
unsafe fn decompress_frame(frame: &[u8], out: &mut [u8]) -> Result<(), c_int> {
    // SAFETY: as the caller guarantees (see above).
    let rc = unsafe {
        blosc_src::blosc_decompress_ctx(
            frame.as_ptr().cast::<c_void>(),
            out.as_mut_ptr().cast::<c_void>(),
            out.len(),
            1,
        )
    };
    if rc < 0 || rc as usize != out.len() {
        return Err(rc);
    }
    Ok(())
}

fn cname_field(config: &Value, default: &str) -> Result<BloscCompressor, CodecError> {
    match config.get("cname") {
        None | Some(Value::Null) => BloscCompressor::from_name(default),
        Some(Value::String(s)) => BloscCompressor::from_name(s),
        Some(v) => Err(CodecError::config(
            CODEC,
            format!("cname must be a string, got {v}"),
        )),
    }
}

fn typesize_field(config: &Value, itemsize: usize) -> Result<usize, CodecError> {
    Ok(
        match int_field_in(CODEC, config, "typesize", 1, i64::from(u32::MAX))? {
            Some(t) => t as usize,
            None => itemsize.max(1),
        },
    )
}

fn blocksize_field(config: &Value) -> Result<usize, CodecError> {
    let max = i64::from(blosc_src::BLOSC_MAX_BLOCKSIZE);
    Ok(int_field_in(CODEC, config, "blocksize", 0, max)?.unwrap_or(0) as usize)
}

impl BytesToBytesCodec for BloscCodec {
    fn describe(&self) -> String {
        format!(
            "blosc(cname={},clevel={},shuffle={},typesize={},blocksize={})",
            self.cname.name(),
            self.clevel,
            self.shuffle.label(),
            self.typesize,
            self.blocksize
        )
    }

    fn decode(&self, encoded: &[u8]) -> Result<Vec<u8>, CodecError> {
        self.decode_bounded(encoded, usize::MAX)
    }

    fn decode_bounded(&self, encoded: &[u8], max_len: usize) -> Result<Vec<u8>, CodecError> {
        let nbytes = Self::frame_decoded_len(encoded)?;
        super::check_bound(CODEC, nbytes, max_len)?;
        let mut out = alloc_zeroed(CODEC, nbytes)?;
        self.decode_into(encoded, &mut out)?;
        Ok(out)
    }

    fn decode_into(&self, encoded: &[u8], out: &mut [u8]) -> Result<(), CodecError> {
        let (frame, nbytes) = Self::frame(encoded)?;
        if nbytes != out.len() {
            return Err(size_mismatch(CODEC, nbytes, out.len()));
        }
        if nbytes == 0 {
            return Ok(());
        }
        // SAFETY: `frame` was validated above: at least 16 bytes, format version 2, and its
        // header's compressed size equals `frame.len()`.
        unsafe { decompress_frame(frame, out) }.map_err(|rc| {
            CodecError::corrupt(CODEC, format!("c-blosc rejected the frame (code {rc})"))
        })
    }

    fn encode(&self, decoded: &[u8]) -> Result<Vec<u8>, CodecError> {
        if decoded.len() > MAX_BUFFERSIZE {
            return Err(CodecError::encode(
                CODEC,
                format!(
                    "input of {} bytes exceeds the blosc maximum of {MAX_BUFFERSIZE}",
                    decoded.len()
                ),
            ));
        }
        // Compressed into this thread's scratch buffer (faulted in once), then copied out at
        // the size it came to: a fresh output buffer of the input's size is a new mapping,
        // faulted in page by page, for every chunk encoded.
        // Larger chunks than `SCRATCH_MAX` are rare and get a buffer of their own (a scratch
        // buffer is kept by its thread).
        const SCRATCH_MAX: usize = 16 << 20;
        thread_local! {
            static SCRATCH: std::cell::RefCell<Vec<u8>> =
                const { std::cell::RefCell::new(Vec::new()) };
        }
        let len = decoded.len() + MAX_OVERHEAD;
        if len > SCRATCH_MAX {
            let mut dest = vec![0u8; len];
            let n = self.compress_into(decoded, &mut dest)?;
            dest.truncate(n);
            return Ok(dest);
        }
        SCRATCH.with_borrow_mut(|scratch| {
            scratch.resize(scratch.len().max(len), 0);
            // Exactly the room blosc is given without a scratch buffer: more room changes
            // what it writes for incompressible input.
            let n = self.compress_into(decoded, &mut scratch[..len])?;
            Ok(scratch[..n].to_vec())
        })
    }

    fn stores_blocks(&self) -> bool {
        true
    }
}

impl BloscCodec {
    /// Compresses `decoded` into `dest`, of exactly `decoded.len() + MAX_OVERHEAD` bytes
    /// (more room changes what c-blosc writes for incompressible input); returns the
    /// compressed size.
    fn compress_into(&self, decoded: &[u8], dest: &mut [u8]) -> Result<usize, CodecError> {
        let cname: *const c_char = self.cname.c_name().as_ptr();
        // SAFETY: `decoded` is readable for `decoded.len()` bytes, `dest` is
        // writable for `dest.len()` bytes (input size + BLOSC_MAX_OVERHEAD, so
        // compression always fits) and c-blosc never writes past it; `cname`
        // is a NUL-terminated static string; the buffers do not overlap.
        let rc = unsafe {
            blosc_src::blosc_compress_ctx(
                c_int::from(self.clevel),
                self.shuffle.code(),
                self.typesize,
                decoded.len(),
                decoded.as_ptr().cast::<c_void>(),
                dest.as_mut_ptr().cast::<c_void>(),
                dest.len(),
                cname,
                self.blocksize,
                1,
            )
        };
        if rc <= 0 {
            return Err(CodecError::encode(
                CODEC,
                format!("c-blosc compression failed (code {rc})"),
            ));
        }
        Ok(rc as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::test_util::{assert_decodes_vectors, noise, sample, vector};
    use serde_json::json;

    const ALL_CNAMES: [BloscCompressor; 6] = [
        BloscCompressor::BloscLz,
        BloscCompressor::Lz4,
        BloscCompressor::Lz4hc,
        BloscCompressor::Zlib,
        BloscCompressor::Zstd,
        BloscCompressor::Snappy,
    ];
    const ALL_SHUFFLES: [BloscShuffle; 3] =
        [BloscShuffle::None, BloscShuffle::Byte, BloscShuffle::Bit];

    #[test]
    fn round_trip_every_cname_shuffle_typesize() {
        for cname in ALL_CNAMES {
            for shuffle in ALL_SHUFFLES {
                for typesize in [1usize, 2, 4, 8, 3, 16] {
                    for len in [0usize, 1, 7, 64, 1001, 40_000, 300_007] {
                        let c = BloscCodec::new(cname, 5, shuffle, typesize, 0).unwrap();
                        let data = sample(len);
                        let enc = c.encode(&data).unwrap();
                        assert!(enc.len() <= len + MAX_OVERHEAD);
                        assert_eq!(BloscCodec::frame_decoded_len(&enc).unwrap(), len);
                        assert_eq!(c.decode(&enc).unwrap(), data, "{} len {len}", c.describe());
                        let mut out = vec![0u8; len];
                        c.decode_into(&enc, &mut out).unwrap();
                        assert_eq!(out, data);
                    }
                }
            }
        }
    }

    #[test]
    fn round_trip_levels_and_blocksizes() {
        let data = sample(100_003);
        for clevel in [0u8, 1, 9] {
            for blocksize in [0usize, 1, 256, 4096, 65_536, 1 << 20] {
                let c = BloscCodec::new(
                    BloscCompressor::Lz4,
                    clevel,
                    BloscShuffle::Byte,
                    4,
                    blocksize,
                )
                .unwrap();
                let enc = c.encode(&data).unwrap();
                assert_eq!(c.decode(&enc).unwrap(), data, "{}", c.describe());
            }
        }
        // Incompressible data is stored (memcpy flag) and still round trips.
        let junk = noise(3, 10_000);
        let c = BloscCodec::new(BloscCompressor::Lz4, 5, BloscShuffle::None, 1, 0).unwrap();
        let enc = c.encode(&junk).unwrap();
        assert_eq!(enc.len(), junk.len() + HEADER_LEN);
        assert_eq!(c.decode(&enc).unwrap(), junk);
        // A typesize beyond 255 is accepted (c-blosc then uses 1).
        let c = BloscCodec::new(BloscCompressor::Zstd, 5, BloscShuffle::Byte, 300, 0).unwrap();
        let data = sample(3000);
        assert_eq!(c.decode(&c.encode(&data).unwrap()).unwrap(), data);
    }

    /// Decoding ignores the codec configuration: the frame header rules.
    #[test]
    fn decode_uses_frame_header_not_config() {
        let data = sample(5000);
        let writer = BloscCodec::new(BloscCompressor::Zstd, 3, BloscShuffle::Bit, 8, 0).unwrap();
        let reader = BloscCodec::new(BloscCompressor::Lz4, 1, BloscShuffle::None, 1, 0).unwrap();
        assert_eq!(reader.decode(&writer.encode(&data).unwrap()).unwrap(), data);
    }

    /// Our frames carry a c-blosc 1.x header: version 2, the internal
    /// compressor's format version, flags with shuffle bits and compressor
    /// code, typesize, sizes.
    #[test]
    fn header_layout_matches_c_blosc_1() {
        let data: Vec<u8> = (0..5000u32).flat_map(|i| (i / 3).to_le_bytes()).collect();
        let cases = [
            (BloscCompressor::BloscLz, 0u8),
            (BloscCompressor::Lz4, 1),
            (BloscCompressor::Lz4hc, 1),
            (BloscCompressor::Snappy, 2),
            (BloscCompressor::Zlib, 3),
            (BloscCompressor::Zstd, 4),
        ];
        for (cname, format) in cases {
            for (shuffle, bits) in [
                (BloscShuffle::None, 0u8),
                (BloscShuffle::Byte, 0x01),
                (BloscShuffle::Bit, 0x04),
            ] {
                let c = BloscCodec::new(cname, 5, shuffle, 4, 0).unwrap();
                let enc = c.encode(&data).unwrap();
                assert_eq!(enc[0], 2, "format version");
                assert_eq!(enc[1], 1, "compressor format version");
                let flags = enc[2];
                assert_eq!(flags & 0x02, 0, "not memcpyed");
                assert_eq!(
                    flags & 0x05,
                    bits,
                    "{} shuffle flags {flags:#x}",
                    c.describe()
                );
                assert_eq!(flags >> 5, format, "compressor code");
                assert_eq!(enc[3], 4, "typesize");
                let u32_at = |i: usize| u32::from_le_bytes(enc[i..i + 4].try_into().unwrap());
                assert_eq!(u32_at(4) as usize, data.len());
                assert!(u32_at(8) > 0);
                assert_eq!(u32_at(12) as usize, enc.len());
            }
        }
        // Exactly what numcodecs 0.16 writes for u4 ramps of 100 and 1000
        // items (lz4, byte shuffle): the small one is not split into
        // per-byte streams (flag 0x10).
        let c = BloscCodec::new(BloscCompressor::Lz4, 5, BloscShuffle::Byte, 4, 0).unwrap();
        for (n, flags) in [(100u32, 0x31u8), (1000, 0x21)] {
            let ramp: Vec<u8> = (0..n).flat_map(u32::to_le_bytes).collect();
            let enc = c.encode(&ramp).unwrap();
            assert_eq!(&enc[..4], &[2, 1, flags, 4], "{n} items");
        }
    }

    #[test]
    fn v2_config_parsing() {
        let c = BloscCodec::from_v2(&json!({"id":"blosc"}), 8).unwrap();
        assert_eq!(
            c,
            BloscCodec::new(BloscCompressor::Lz4, 5, BloscShuffle::Byte, 8, 0).unwrap()
        );
        let c = BloscCodec::from_v2(&json!({"id":"blosc","shuffle":-1}), 1).unwrap();
        assert_eq!(c.shuffle, BloscShuffle::Bit);
        let c = BloscCodec::from_v2(&json!({"id":"blosc","shuffle":-1}), 2).unwrap();
        assert_eq!(c.shuffle, BloscShuffle::Byte);
        let c = BloscCodec::from_v2(
            &json!({"id":"blosc","cname":"zstd","clevel":9,"shuffle":2,"blocksize":4096,"typesize":2}),
            8,
        )
        .unwrap();
        assert_eq!(
            c,
            BloscCodec::new(BloscCompressor::Zstd, 9, BloscShuffle::Bit, 2, 4096).unwrap()
        );
        for bad in [
            json!({"id":"blosc","clevel":10}),
            json!({"id":"blosc","clevel":-1}),
            json!({"id":"blosc","blocksize":-4}),
            json!({"id":"blosc","cname":5}),
            json!({"id":"blosc","shuffle":"shuffle"}),
            json!({"id":"blosc","typesize":0}),
        ] {
            assert!(
                matches!(BloscCodec::from_v2(&bad, 4), Err(CodecError::Config { .. })),
                "{bad}"
            );
        }
        assert_eq!(
            BloscCodec::from_v2(&json!({"id":"blosc","cname":"snappy"}), 4)
                .unwrap()
                .cname,
            BloscCompressor::Snappy
        );
        for cname in ["lzma", "brotli"] {
            assert!(matches!(
                BloscCodec::from_v2(&json!({"id":"blosc","cname":cname}), 4),
                Err(CodecError::Unsupported(m)) if m.contains(cname)
            ));
        }
    }

    #[test]
    fn v3_config_parsing() {
        let c = BloscCodec::from_v3(
            &json!({"cname":"lz4","clevel":1,"shuffle":"shuffle","typesize":4,"blocksize":0}),
            4,
        )
        .unwrap();
        assert_eq!(
            c,
            BloscCodec::new(BloscCompressor::Lz4, 1, BloscShuffle::Byte, 4, 0).unwrap()
        );
        let c = BloscCodec::from_v3(&json!({"shuffle":"noshuffle"}), 2).unwrap();
        assert_eq!(
            c,
            BloscCodec::new(BloscCompressor::Zstd, 5, BloscShuffle::None, 2, 0).unwrap()
        );
        let c = BloscCodec::from_v3(&Value::Null, 1).unwrap();
        assert_eq!(c.shuffle, BloscShuffle::Bit);
        assert!(matches!(
            BloscCodec::from_v3(&json!({"shuffle":"sometimes"}), 2),
            Err(CodecError::Config { .. })
        ));
        assert!(matches!(
            BloscCodec::from_v3(&json!({"cname":"lzma"}), 2),
            Err(CodecError::Unsupported(_))
        ));
    }

    #[test]
    fn single_blocks_decode_like_whole_frames() {
        let data = sample(300_000);
        for (cname, shuffle, typesize, blocksize) in [
            (BloscCompressor::Lz4, BloscShuffle::Byte, 4, 0),
            (BloscCompressor::Zstd, BloscShuffle::Bit, 2, 16_384),
            (BloscCompressor::BloscLz, BloscShuffle::None, 8, 1_000),
            (BloscCompressor::Lz4hc, BloscShuffle::Byte, 8, 65_536),
            (BloscCompressor::Zlib, BloscShuffle::Bit, 4, 40_000),
        ] {
            let c = BloscCodec::new(cname, 5, shuffle, typesize, blocksize).unwrap();
            let frame = c.encode(&data).unwrap();
            let need = BloscBlocks::index_len(&frame[..HEADER_LEN]).unwrap();
            let blocks = BloscBlocks::parse(&frame[..need], frame.len()).unwrap();
            assert_eq!(blocks.decoded_len(), data.len());
            let mut scratch = Vec::new();
            for b in 0..blocks.len() {
                let start = b * blocks.block_size();
                let end = (start + blocks.block_size()).min(data.len());
                let mut out = vec![0u8; end - start];
                blocks
                    .decode_block(b, &frame[blocks.stored_range(b)], &mut scratch, &mut out)
                    .unwrap();
                assert_eq!(out, data[start..end], "{cname:?} block {b}");
            }
            assert!(BloscBlocks::parse(&frame[..need], frame.len() + 1).is_err());
        }
        // Frames compressed by several threads store blocks out of order.
        let frame = vector("blosc_threads.enc");
        let raw = vector("blosc_threads.raw");
        let need = BloscBlocks::index_len(&frame[..HEADER_LEN]).unwrap();
        let blocks = BloscBlocks::parse(&frame[..need], frame.len()).unwrap();
        let mut scratch = Vec::new();
        let mut whole = Vec::new();
        for b in 0..blocks.len() {
            let start = b * blocks.block_size();
            let mut out = vec![0u8; blocks.block_size().min(raw.len() - start)];
            blocks
                .decode_block(b, &frame[blocks.stored_range(b)], &mut scratch, &mut out)
                .unwrap();
            whole.extend(out);
        }
        assert_eq!(whole, raw);
        // Incompressible data is stored as a plain copy.
        let noisy = noise(3, 100_000);
        let c = BloscCodec::new(BloscCompressor::Lz4, 9, BloscShuffle::None, 1, 0).unwrap();
        let frame = c.encode(&noisy).unwrap();
        let need = BloscBlocks::index_len(&frame[..HEADER_LEN]).unwrap();
        let blocks = BloscBlocks::parse(&frame[..need], frame.len()).unwrap();
        let mut out = vec![0u8; blocks.block_size().min(noisy.len())];
        blocks
            .decode_block(0, &frame[blocks.stored_range(0)], &mut scratch, &mut out)
            .unwrap();
        assert_eq!(out, noisy[..out.len()]);
    }

    fn check_vector(stem: &str) {
        // Settings come from each frame's header, not from the codec's own.
        let c = BloscCodec::new(BloscCompressor::Lz4, 5, BloscShuffle::None, 1, 0).unwrap();
        assert_decodes_vectors(&c, &[stem]);
    }

    /// Frames written by numcodecs (tests/data/codec, see
    /// scripts/make_codec_vectors.py).
    #[test]
    fn decodes_numcodecs_frames() {
        let mut n = 0;
        for cname in ["lz4", "lz4hc", "blosclz", "zstd", "zlib"] {
            for shuffle in [0, 1, 2] {
                for itemsize in [1, 4, 8] {
                    check_vector(&format!("blosc_{cname}_s{shuffle}_i{itemsize}"));
                    n += 1;
                }
            }
        }
        for stem in [
            "blosc_lz4_auto_i1",
            "blosc_zstd_bs256_i4",
            "blosc_lz4_empty",
        ] {
            check_vector(stem);
            n += 1;
        }
        assert_eq!(n, 48);
    }

    /// Re-encoding numcodecs' input with the same settings reproduces
    /// numcodecs' frame byte for byte (same c-blosc 1.x algorithm).
    #[test]
    fn encodes_like_numcodecs() {
        for (stem, cname, shuffle, typesize) in [
            (
                "blosc_lz4_s1_i4",
                BloscCompressor::Lz4,
                BloscShuffle::Byte,
                4,
            ),
            (
                "blosc_zstd_s2_i8",
                BloscCompressor::Zstd,
                BloscShuffle::Bit,
                8,
            ),
            (
                "blosc_blosclz_s0_i1",
                BloscCompressor::BloscLz,
                BloscShuffle::None,
                1,
            ),
        ] {
            let raw = vector(&format!("{stem}.raw"));
            let enc = vector(&format!("{stem}.enc"));
            let c = BloscCodec::new(cname, 5, shuffle, typesize, 0).unwrap();
            let ours = c.encode(&raw).unwrap();
            assert_eq!(&ours[..16], &enc[..16], "{stem} header");
            assert_eq!(c.decode(&ours).unwrap(), raw);
        }
    }

    #[test]
    fn rejects_bad_frames() {
        let c = BloscCodec::new(BloscCompressor::Lz4, 5, BloscShuffle::Byte, 4, 0).unwrap();
        let data = sample(10_000);
        let enc = c.encode(&data).unwrap();
        let corrupt = |r: Result<Vec<u8>, CodecError>| matches!(r, Err(CodecError::Corrupt { .. }));

        // Trailing bytes after the frame are ignored, as numcodecs does.
        let mut long = enc.clone();
        long.extend_from_slice(b"xyz");
        assert_eq!(c.decode(&long).unwrap(), data);
        // Header claims a frame longer than the input.
        let mut bad = enc.clone();
        bad[12..16].copy_from_slice(&(enc.len() as u32 + 1).to_le_bytes());
        assert!(corrupt(c.decode(&bad)));
        // Wrong format version.
        let mut bad = enc.clone();
        bad[0] = 3;
        assert!(corrupt(c.decode(&bad)));
        // Header claims a huge decoded size.
        let mut bad = enc.clone();
        bad[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(corrupt(c.decode(&bad)));
        // Header claims a larger block than the output.
        let mut bad = enc.clone();
        bad[8..12].copy_from_slice(&(1u32 << 30).to_le_bytes());
        assert!(corrupt(c.decode(&bad)));
        // Block start offsets pointing outside the frame.
        let mut bad = enc.clone();
        bad[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(corrupt(c.decode(&bad)));
        // Unknown compressor code in flags.
        let mut bad = enc.clone();
        bad[2] = (bad[2] & 0x1f) | (6 << 5);
        assert!(corrupt(c.decode(&bad)));
        // Memcpy flag on a compressed frame.
        let mut bad = enc.clone();
        bad[2] |= 0x02;
        assert!(corrupt(c.decode(&bad)));
        // Zeroed payload.
        let mut bad = enc.clone();
        bad[16..].fill(0);
        assert!(corrupt(c.decode(&bad)));
        // Random bodies behind a plausible header.
        for seed in 0..500u64 {
            let mut bad = noise(seed, 16 + (seed as usize % 200));
            bad[0] = 2;
            bad[2] &= !0x08;
            bad[3] = 1 + (seed % 8) as u8;
            let len = bad.len() as u32;
            bad[4..8].copy_from_slice(&(1000 + seed as u32).to_le_bytes());
            bad[8..12].copy_from_slice(&(1 + (seed as u32 * 97) % 2000).to_le_bytes());
            bad[12..16].copy_from_slice(&len.to_le_bytes());
            let r = c.decode(&bad);
            if let Ok(v) = r {
                assert_eq!(v.len(), 1000 + seed as usize);
            }
        }
    }
}
