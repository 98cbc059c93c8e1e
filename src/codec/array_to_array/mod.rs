//! Array→array codecs: they map a chunk of elements to another chunk of elements (another
//! shape or element type), before an array→bytes codec serialises it: transpose, and
//! numcodecs' filters (delta, fixedscaleoffset, quantize, bitround, packbits, astype).

mod astype;
mod bitround;
mod categorize;
mod delta;
mod fixedscaleoffset;
mod numcodecs;
mod numeric;
mod packbits;
mod quantize;
mod transpose;

pub use astype::AsTypeCodec;
pub use bitround::BitRoundCodec;
pub use categorize::CategorizeCodec;
pub use delta::DeltaCodec;
pub use fixedscaleoffset::FixedScaleOffsetCodec;
pub use numcodecs::{numcodecs_filter, outermost_filter_dtype};
pub use packbits::PackBitsCodec;
pub use quantize::QuantizeCodec;
pub use transpose::{c_to_f_order, f_to_c_order, try_c_to_f_order, try_f_to_c_order};

use super::{ChunkRepr, CodecError};
use ndarray::{ArrayView, ArrayViewMut, IxDyn};

/// A codec from chunks of elements to chunks of elements.
pub trait ArrayToArrayCodec: Send + Sync + std::fmt::Debug {
    /// Short description with parameters, e.g. `transpose(order=[1, 0])`.
    fn describe(&self) -> String;
    /// The representation a chunk of `decoded` is encoded into.
    fn encoded_repr(&self, decoded: &ChunkRepr) -> Result<ChunkRepr, CodecError>;
    /// The element type decoding yields whatever it is given, for codecs that name one
    /// (numcodecs' `dtype`); `None` when decoded elements keep the type of the stage before.
    fn decodes_to(&self) -> Option<crate::metadata::DataType> {
        None
    }
    /// Encodes a chunk of `decoded` (C order) into one of [`Self::encoded_repr`].
    fn encode(&self, chunk: &[u8], decoded: &ChunkRepr) -> Result<Vec<u8>, CodecError>;
    /// Decodes a chunk of [`Self::encoded_repr`] into `out`, a chunk of `decoded`.
    fn decode_into(
        &self,
        encoded: &[u8],
        decoded: &ChunkRepr,
        out: &mut [u8],
    ) -> Result<(), CodecError>;
}

/// The v3 `transpose` codec (and v2's `order: "F"`, the reversal of the axes): the encoded
/// chunk's axis `i` is the decoded chunk's axis `order[i]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransposeCodec {
    order: Vec<usize>,
}

impl TransposeCodec {
    /// A transpose by the permutation `order`, which must hold each axis of a chunk of
    /// `rank` dimensions once.
    pub fn new(order: Vec<usize>, rank: usize) -> Result<Self, CodecError> {
        let mut seen = vec![false; rank];
        if order.len() != rank
            || order
                .iter()
                .any(|&axis| axis >= rank || std::mem::replace(&mut seen[axis], true))
        {
            return Err(CodecError::config(
                "transpose",
                format!("order {order:?} is not a permutation of {rank} axes"),
            ));
        }
        Ok(TransposeCodec { order })
    }

    /// The reversal of `rank` axes: C order to Fortran order.
    pub fn reversed(rank: usize) -> Self {
        TransposeCodec {
            order: (0..rank).rev().collect(),
        }
    }

    fn is_reversal(&self) -> bool {
        self.order.iter().rev().copied().eq(0..self.order.len())
    }

    fn inverse(&self) -> Vec<usize> {
        let mut inverse = vec![0; self.order.len()];
        for (i, &axis) in self.order.iter().enumerate() {
            inverse[axis] = i;
        }
        inverse
    }
}

/// Copies `src`, a C-order chunk of `shape` and `itemsize`-byte elements, into `dst` with its
/// axes permuted: `dst`'s axis `i` is `src`'s axis `order[i]`.
fn permute(src: &[u8], shape: &[usize], itemsize: usize, order: &[usize], dst: &mut [u8]) {
    fn typed<const N: usize>(src: &[u8], shape: &[usize], order: &[usize], dst: &mut [u8]) {
        let (src, _) = src.as_chunks::<N>();
        let (dst, _) = dst.as_chunks_mut::<N>();
        let permuted_shape: Vec<usize> = order.iter().map(|&axis| shape[axis]).collect();
        let from = ArrayView::from_shape(IxDyn(shape), src).expect("sizes checked by the caller");
        let mut to = ArrayViewMut::from_shape(IxDyn(&permuted_shape), dst)
            .expect("sizes checked by the caller");
        to.assign(&from.permuted_axes(IxDyn(order)));
    }
    match itemsize {
        1 => typed::<1>(src, shape, order, dst),
        2 => typed::<2>(src, shape, order, dst),
        4 => typed::<4>(src, shape, order, dst),
        8 => typed::<8>(src, shape, order, dst),
        16 => typed::<16>(src, shape, order, dst),
        _ => {
            // Other element sizes: permute element indices, then copy whole elements.
            let count = shape.iter().product::<usize>();
            let indices: Vec<u64> = (0..count as u64).collect();
            let mut permuted = vec![0u64; count];
            typed::<8>(
                u64_bytes(&indices),
                shape,
                order,
                u64_bytes_mut(&mut permuted),
            );
            for (i, &from) in permuted.iter().enumerate() {
                let from = from as usize * itemsize;
                dst[i * itemsize..(i + 1) * itemsize].copy_from_slice(&src[from..from + itemsize]);
            }
        }
    }
}

fn u64_bytes(values: &[u64]) -> &[u8] {
    // SAFETY: u64 has no padding and u8 has alignment 1; the length covers the same bytes.
    unsafe { std::slice::from_raw_parts(values.as_ptr().cast(), values.len() * 8) }
}

fn u64_bytes_mut(values: &mut [u64]) -> &mut [u8] {
    // SAFETY: as above; every byte pattern is a valid u64.
    unsafe { std::slice::from_raw_parts_mut(values.as_mut_ptr().cast(), values.len() * 8) }
}

impl ArrayToArrayCodec for TransposeCodec {
    fn describe(&self) -> String {
        format!("transpose(order={:?})", self.order)
    }

    fn encoded_repr(&self, decoded: &ChunkRepr) -> Result<ChunkRepr, CodecError> {
        if decoded.shape.len() != self.order.len() {
            return Err(CodecError::config(
                "transpose",
                format!(
                    "order {:?} does not fit chunks of rank {}",
                    self.order,
                    decoded.shape.len()
                ),
            ));
        }
        Ok(ChunkRepr {
            shape: self.order.iter().map(|&axis| decoded.shape[axis]).collect(),
            dtype: decoded.dtype,
        })
    }

    fn encode(&self, chunk: &[u8], decoded: &ChunkRepr) -> Result<Vec<u8>, CodecError> {
        let size = decoded.checked_bytes("transpose", chunk.len())?;
        if self.is_reversal() {
            return try_c_to_f_order(chunk, &decoded.shape, decoded.dtype.size);
        }
        let mut out = vec![0u8; size];
        permute(
            chunk,
            &decoded.shape,
            decoded.dtype.size,
            &self.order,
            &mut out,
        );
        Ok(out)
    }

    fn decode_into(
        &self,
        encoded: &[u8],
        decoded: &ChunkRepr,
        out: &mut [u8],
    ) -> Result<(), CodecError> {
        decoded.checked_bytes("transpose", encoded.len())?;
        decoded.checked_bytes("transpose", out.len())?;
        if self.is_reversal() {
            out.copy_from_slice(&try_f_to_c_order(
                encoded,
                &decoded.shape,
                decoded.dtype.size,
            )?);
            return Ok(());
        }
        let encoded_repr = self.encoded_repr(decoded)?;
        permute(
            encoded,
            &encoded_repr.shape,
            decoded.dtype.size,
            &self.inverse(),
            out,
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::DataType;

    fn repr(shape: &[usize], dtype: &str) -> ChunkRepr {
        ChunkRepr {
            shape: shape.to_vec(),
            dtype: DataType::parse_numpy(dtype).unwrap(),
        }
    }

    /// Element `index` (C order over `shape`) after a permutation, computed naively.
    fn naive(src: &[u8], shape: &[usize], k: usize, order: &[usize]) -> Vec<u8> {
        let permuted: Vec<usize> = order.iter().map(|&a| shape[a]).collect();
        let count: usize = shape.iter().product();
        let mut out = vec![0u8; count * k];
        for dst_linear in 0..count {
            let mut rest = dst_linear;
            let mut dst_index = vec![0; shape.len()];
            for axis in (0..shape.len()).rev() {
                dst_index[axis] = rest % permuted[axis];
                rest /= permuted[axis];
            }
            let mut src_index = vec![0; shape.len()];
            for (i, &axis) in order.iter().enumerate() {
                src_index[axis] = dst_index[i];
            }
            let src_linear = src_index
                .iter()
                .zip(shape)
                .fold(0, |acc, (&i, &d)| acc * d + i);
            out[dst_linear * k..(dst_linear + 1) * k]
                .copy_from_slice(&src[src_linear * k..(src_linear + 1) * k]);
        }
        out
    }

    #[test]
    fn every_permutation_matches_the_naive_one_and_round_trips() {
        let shapes: [&[usize]; 4] = [&[3, 4], &[2, 3, 5], &[2, 1, 3, 4], &[5]];
        for shape in shapes {
            let rank = shape.len();
            let mut orders = vec![(0..rank).collect::<Vec<_>>()];
            // All permutations of up to 4 axes.
            fn extend(prefix: Vec<usize>, rank: usize, out: &mut Vec<Vec<usize>>) {
                if prefix.len() == rank {
                    out.push(prefix);
                    return;
                }
                for a in 0..rank {
                    if !prefix.contains(&a) {
                        let mut p = prefix.clone();
                        p.push(a);
                        extend(p, rank, out);
                    }
                }
            }
            orders.clear();
            extend(Vec::new(), rank, &mut orders);
            for dtype in ["|u1", "<i2", "<f4", ">f8", "<c16", "|V3"] {
                let r = repr(shape, dtype);
                let k = r.dtype.size;
                let chunk: Vec<u8> = (0..r.bytes().unwrap())
                    .map(|i| (i * 7 % 251) as u8)
                    .collect();
                for order in &orders {
                    let codec = TransposeCodec::new(order.clone(), rank).unwrap();
                    let encoded = codec.encode(&chunk, &r).unwrap();
                    assert_eq!(
                        encoded,
                        naive(&chunk, shape, k, order),
                        "{shape:?} {order:?} {dtype}"
                    );
                    let mut back = vec![0u8; chunk.len()];
                    codec.decode_into(&encoded, &r, &mut back).unwrap();
                    assert_eq!(back, chunk, "{shape:?} {order:?} {dtype}");
                }
            }
        }
    }

    #[test]
    fn invalid_orders_and_sizes_are_errors() {
        assert!(TransposeCodec::new(vec![0, 0], 2).is_err());
        assert!(TransposeCodec::new(vec![0, 2], 2).is_err());
        assert!(TransposeCodec::new(vec![1, 0], 3).is_err());
        let codec = TransposeCodec::new(vec![1, 0], 2).unwrap();
        let r = repr(&[2, 3], "<i4");
        assert!(codec.encode(&[0u8; 5], &r).is_err());
        assert!(codec.decode_into(&[0u8; 24], &r, &mut [0u8; 4]).is_err());
        assert!(codec.encoded_repr(&repr(&[2, 3, 4], "<i4")).is_err());
    }
}

/// Measures the two ways of transposing a chunk (the blocked axis reversal used for
/// Fortran order and ndarray's general permutation). Prints; asserts only that both agree.
/// `cargo test --release --lib transpose_speed -- --ignored --nocapture`
#[cfg(test)]
mod speed {
    use super::*;

    #[test]
    #[ignore]
    fn transpose_speed() {
        for (shape, itemsize) in [
            (vec![512usize, 512], 4usize),
            (vec![64, 128, 128], 4),
            (vec![1024, 1024], 8),
            (vec![100, 100, 100], 2),
        ] {
            let n: usize = shape.iter().product::<usize>() * itemsize;
            let src: Vec<u8> = (0..n).map(|i| (i * 31 % 251) as u8).collect();
            let order: Vec<usize> = (0..shape.len()).rev().collect();
            let mut by_ndarray = vec![0u8; n];
            let runs = 20;
            let t = std::time::Instant::now();
            for _ in 0..runs {
                permute(&src, &shape, itemsize, &order, &mut by_ndarray);
            }
            let ndarray_time = t.elapsed() / runs;
            let t = std::time::Instant::now();
            let mut blocked = Vec::new();
            for _ in 0..runs {
                blocked = try_c_to_f_order(&src, &shape, itemsize).unwrap();
            }
            let blocked_time = t.elapsed() / runs;
            assert_eq!(blocked, by_ndarray);
            println!(
                "{shape:?} x {itemsize} B: ndarray {:.2} ms, blocked {:.2} ms ({:.1}x)",
                ndarray_time.as_secs_f64() * 1e3,
                blocked_time.as_secs_f64() * 1e3,
                ndarray_time.as_secs_f64() / blocked_time.as_secs_f64()
            );
        }
    }
}
