//! Fortran (column-major) <-> C (row-major) reordering of chunk buffers.
//!
//! A Fortran-ordered buffer of shape `[d0, .., dn-1]` is the C-ordered buffer
//! of the reversed shape, so both directions are the same axis reversal. The
//! work is a cache-blocked 2-D transpose between the first and last axes for
//! every index of the middle axes, copying whole elements.

use super::CodecError;

/// Tile edge (in elements) of the blocked transpose.
const TILE: usize = 32;

/// Reorder a chunk buffer stored in Fortran order (shape `shape`, element
/// size `itemsize` bytes) into C order.
///
/// The output always has `product(shape) * itemsize` bytes; a `src` of another
/// length is zero-padded or cut to that length first (use
/// [`try_f_to_c_order`] to get an error instead). 0-d and 1-d buffers are
/// plain copies.
pub fn f_to_c_order(src: &[u8], shape: &[usize], itemsize: usize) -> Vec<u8> {
    lenient(src, shape, itemsize, false)
}

/// Reorder a C-ordered chunk buffer into Fortran order: the inverse of
/// [`f_to_c_order`], with the same handling of mismatched lengths.
pub fn c_to_f_order(src: &[u8], shape: &[usize], itemsize: usize) -> Vec<u8> {
    lenient(src, shape, itemsize, true)
}

/// Like [`f_to_c_order`], but a `src` whose length is not
/// `product(shape) * itemsize` is a [`CodecError::Config`] error.
pub fn try_f_to_c_order(
    src: &[u8],
    shape: &[usize],
    itemsize: usize,
) -> Result<Vec<u8>, CodecError> {
    strict(src, shape, itemsize, false)
}

/// Like [`c_to_f_order`], but a `src` whose length is not
/// `product(shape) * itemsize` is a [`CodecError::Config`] error.
pub fn try_c_to_f_order(
    src: &[u8],
    shape: &[usize],
    itemsize: usize,
) -> Result<Vec<u8>, CodecError> {
    strict(src, shape, itemsize, true)
}

/// Byte length of a buffer of `shape` and `itemsize`, if it fits in usize.
fn byte_len(shape: &[usize], itemsize: usize) -> Option<usize> {
    shape
        .iter()
        .try_fold(itemsize, |acc, &d| acc.checked_mul(d))
}

fn strict(src: &[u8], shape: &[usize], itemsize: usize, to_f: bool) -> Result<Vec<u8>, CodecError> {
    let n = byte_len(shape, itemsize)
        .ok_or_else(|| CodecError::config("transpose", format!("shape {shape:?} overflows")))?;
    if src.len() != n {
        return Err(CodecError::config(
            "transpose",
            format!(
                "buffer of {} bytes does not match shape {shape:?} with itemsize {itemsize} ({n} bytes)",
                src.len()
            ),
        ));
    }
    let mut dst = vec![0u8; n];
    reorder(src, &mut dst, shape, itemsize, to_f);
    Ok(dst)
}

fn lenient(src: &[u8], shape: &[usize], itemsize: usize, to_f: bool) -> Vec<u8> {
    let Some(n) = byte_len(shape, itemsize) else {
        // No buffer of this shape can exist in memory; nothing sensible to do.
        return src.to_vec();
    };
    let mut dst = vec![0u8; n];
    if src.len() == n {
        reorder(src, &mut dst, shape, itemsize, to_f);
    } else {
        let mut fixed = src[..src.len().min(n)].to_vec();
        fixed.resize(n, 0);
        reorder(&fixed, &mut dst, shape, itemsize, to_f);
    }
    dst
}

/// Reorder `src` into `dst` (both exactly `product(shape) * itemsize` bytes).
/// `to_f == false`: src is Fortran order, dst C order; `true`: the reverse.
fn reorder(src: &[u8], dst: &mut [u8], shape: &[usize], itemsize: usize, to_f: bool) {
    // Axes of extent 1 do not affect the layout in either order.
    let mut dims: Vec<usize> = shape.iter().copied().filter(|&d| d != 1).collect();
    if dims.len() < 2 || itemsize == 0 || dims.contains(&0) {
        dst.copy_from_slice(src);
        return;
    }
    if to_f {
        // A C-ordered buffer of shape S is the Fortran-ordered one of rev(S).
        dims.reverse();
    }
    match itemsize {
        1 => reorder_fixed::<1>(src, dst, &dims),
        2 => reorder_fixed::<2>(src, dst, &dims),
        4 => reorder_fixed::<4>(src, dst, &dims),
        8 => reorder_fixed::<8>(src, dst, &dims),
        16 => reorder_fixed::<16>(src, dst, &dims),
        _ => for_each_run(&dims, |s0, stride, d0, len| {
            for j in 0..len {
                let s = (s0 + j * stride) * itemsize;
                let d = (d0 + j) * itemsize;
                dst[d..d + itemsize].copy_from_slice(&src[s..s + itemsize]);
            }
        }),
    }
}

/// Fortran -> C reordering copying whole `N`-byte elements.
fn reorder_fixed<const N: usize>(src: &[u8], dst: &mut [u8], dims: &[usize]) {
    let (src, _) = src.as_chunks::<N>();
    let (dst, _) = dst.as_chunks_mut::<N>();
    for_each_run(dims, |s0, stride, d0, len| {
        for (j, out) in dst[d0..d0 + len].iter_mut().enumerate() {
            *out = src[s0 + j * stride];
        }
    });
}

/// Walk a Fortran -> C reordering of `dims` (at least 2 axes, none empty) as
/// runs: `run(src_first, src_stride, dst_first, len)` copies `len` elements,
/// the j-th from source element `src_first + j * src_stride` to destination
/// element `dst_first + j` (indices in elements).
fn for_each_run(dims: &[usize], mut run: impl FnMut(usize, usize, usize, usize)) {
    let nd = dims.len();
    // Fortran strides: axis 0 fastest. C strides: last axis fastest.
    let mut f_stride = vec![1usize; nd];
    for k in 1..nd {
        f_stride[k] = f_stride[k - 1] * dims[k - 1];
    }
    let mut c_stride = vec![1usize; nd];
    for k in (0..nd - 1).rev() {
        c_stride[k] = c_stride[k + 1] * dims[k + 1];
    }
    let (first, last) = (dims[0], dims[nd - 1]);
    let (src_last_stride, dst_first_stride) = (f_stride[nd - 1], c_stride[0]);
    // Odometer over the middle axes 1..nd-1.
    let mut idx = vec![0usize; nd - 2];
    loop {
        let mut src_base = 0;
        let mut dst_base = 0;
        for (k, &i) in idx.iter().enumerate() {
            src_base += i * f_stride[k + 1];
            dst_base += i * c_stride[k + 1];
        }
        // 2-D blocked transpose of the (first, last) plane: element (a, b) is
        // at src_base + a + b * src_last_stride and dst_base + a * dst_first_stride + b.
        for a0 in (0..first).step_by(TILE) {
            let a_end = (a0 + TILE).min(first);
            for b0 in (0..last).step_by(TILE) {
                let len = TILE.min(last - b0);
                for a in a0..a_end {
                    run(
                        src_base + a + b0 * src_last_stride,
                        src_last_stride,
                        dst_base + a * dst_first_stride + b0,
                        len,
                    );
                }
            }
        }
        // Advance the odometer; done when it wraps.
        let mut k = 0;
        loop {
            if k == idx.len() {
                return;
            }
            idx[k] += 1;
            if idx[k] < dims[k + 1] {
                break;
            }
            idx[k] = 0;
            k += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Element `e` as `itemsize` distinct-looking bytes (first byte = e).
    fn elem(e: usize, itemsize: usize) -> Vec<u8> {
        (0..itemsize)
            .map(|b| {
                if b == 0 {
                    e as u8
                } else {
                    (e * 7 + b * 31) as u8
                }
            })
            .collect()
    }

    fn buf(order: &[usize], itemsize: usize) -> Vec<u8> {
        order.iter().flat_map(|&e| elem(e, itemsize)).collect()
    }

    /// Naive reference: element numbering is the C-order linear index.
    fn naive_f_buffer(shape: &[usize], itemsize: usize) -> Vec<u8> {
        let n: usize = shape.iter().product();
        let mut order = vec![0usize; n];
        for c_lin in 0..n {
            // Multi-index from C linear index.
            let mut rem = c_lin;
            let mut idx = vec![0usize; shape.len()];
            for k in (0..shape.len()).rev() {
                idx[k] = rem % shape[k];
                rem /= shape[k];
            }
            let mut f_lin = 0;
            let mut stride = 1;
            for k in 0..shape.len() {
                f_lin += idx[k] * stride;
                stride *= shape[k];
            }
            order[f_lin] = c_lin;
        }
        buf(&order, itemsize)
    }

    const ITEMSIZES: [usize; 7] = [1, 2, 4, 8, 16, 3, 5];

    #[test]
    fn known_2x3() {
        // [[0,1,2],[3,4,5]] in Fortran order is 0,3,1,4,2,5.
        for itemsize in ITEMSIZES {
            let f = buf(&[0, 3, 1, 4, 2, 5], itemsize);
            let c = buf(&[0, 1, 2, 3, 4, 5], itemsize);
            assert_eq!(
                f_to_c_order(&f, &[2, 3], itemsize),
                c,
                "itemsize {itemsize}"
            );
            assert_eq!(
                c_to_f_order(&c, &[2, 3], itemsize),
                f,
                "itemsize {itemsize}"
            );
        }
    }

    #[test]
    fn known_2x3x4() {
        // Element (i, j, k) = 12i + 4j + k; Fortran order runs i fastest.
        let mut f_order = Vec::new();
        for k in 0..4 {
            for j in 0..3 {
                for i in 0..2 {
                    f_order.push(12 * i + 4 * j + k);
                }
            }
        }
        assert_eq!(&f_order[..6], &[0, 12, 4, 16, 8, 20]);
        let c_order: Vec<usize> = (0..24).collect();
        for itemsize in ITEMSIZES {
            let f = buf(&f_order, itemsize);
            let c = buf(&c_order, itemsize);
            assert_eq!(
                f_to_c_order(&f, &[2, 3, 4], itemsize),
                c,
                "itemsize {itemsize}"
            );
            assert_eq!(
                c_to_f_order(&c, &[2, 3, 4], itemsize),
                f,
                "itemsize {itemsize}"
            );
        }
    }

    #[test]
    fn matches_naive_and_round_trips() {
        let shapes: &[&[usize]] = &[
            &[],
            &[5],
            &[1, 7],
            &[7, 1],
            &[3, 0, 2],
            &[33, 65],
            &[70, 3, 45],
            &[2, 1, 3, 1, 4],
            &[5, 4, 3, 2],
            &[40, 2, 2, 37],
            &[1, 1, 1],
        ];
        for &shape in shapes {
            for itemsize in ITEMSIZES {
                let f = naive_f_buffer(shape, itemsize);
                let n: usize = shape.iter().product();
                let c: Vec<u8> = buf(&(0..n).collect::<Vec<_>>(), itemsize);
                let got = try_f_to_c_order(&f, shape, itemsize).unwrap();
                assert_eq!(got, c, "shape {shape:?} itemsize {itemsize}");
                assert_eq!(
                    try_c_to_f_order(&got, shape, itemsize).unwrap(),
                    f,
                    "shape {shape:?} itemsize {itemsize}"
                );
            }
        }
    }

    #[test]
    fn zero_and_one_dimensional_are_copies() {
        let data: Vec<u8> = (0..24).collect();
        assert_eq!(f_to_c_order(&data, &[6], 4), data);
        assert_eq!(c_to_f_order(&data, &[24], 1), data);
        assert_eq!(f_to_c_order(&data[..8], &[], 8), &data[..8]);
    }

    #[test]
    fn mismatched_lengths() {
        let data: Vec<u8> = (0..6).collect();
        assert!(matches!(
            try_f_to_c_order(&data, &[2, 2], 1),
            Err(CodecError::Config { .. })
        ));
        assert!(try_c_to_f_order(&data, &[usize::MAX, 3], 2).is_err());
        // Lenient forms never panic and return the shape's byte length.
        assert_eq!(f_to_c_order(&data, &[2, 2], 1), vec![0, 2, 1, 3]);
        assert_eq!(
            f_to_c_order(&data, &[2, 4], 1),
            vec![0, 2, 4, 0, 1, 3, 5, 0]
        );
        assert_eq!(c_to_f_order(&data, &[usize::MAX, 3], 2), data);
        assert_eq!(f_to_c_order(&data, &[2, 3], 0), Vec::<u8>::new());
    }
}
