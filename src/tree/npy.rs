//! NPY headers for the `data.npy` view.

use crate::metadata::DataType;

/// Bytes a header is padded to when its dict fits: one page, so that the data starts on a
/// page of its own. Reading the header (`np.load` does it through a 4 KiB buffer) then
/// decodes nothing, and each page of the data holds the same elements as the same page of
/// `data`, so that a page fault through mmap touches no chunk a row further back.
const PAGE: usize = 4096;

/// Builds the NPY header (magic, version, length, dict, padding) for a C-order array.
/// The header fills one page ([`PAGE`], well within the 10,000 header bytes `np.load`
/// accepts by default) when it fits, else a multiple of 64 bytes (the format's alignment).
pub fn npy_header(dtype: &DataType, shape: &[u64]) -> Vec<u8> {
    let shape_text = match shape.len() {
        0 => "()".to_string(),
        1 => format!("({},)", shape[0]),
        _ => {
            let parts: Vec<String> = shape.iter().map(u64::to_string).collect();
            format!("({})", parts.join(", "))
        }
    };
    let dict = format!(
        "{{'descr': {}, 'fortran_order': False, 'shape': {}, }}",
        dtype.npy_descr(),
        shape_text
    );
    // Version 1.0 stores the dict length in 2 bytes; larger dicts need version 2.0.
    let (version, len_bytes) = if dict.len() + 1 + 10 <= u16::MAX as usize {
        (1u8, 2usize)
    } else {
        (2u8, 4usize)
    };
    let prefix = 6 + 2 + len_bytes;
    let unpadded = prefix + dict.len() + 1;
    let total = if unpadded <= PAGE {
        PAGE
    } else {
        unpadded.div_ceil(64) * 64
    };
    let dict_len = total - prefix;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(b"\x93NUMPY");
    out.push(version);
    out.push(0);
    if len_bytes == 2 {
        out.extend_from_slice(&(dict_len as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&(dict_len as u32).to_le_bytes());
    }
    out.extend_from_slice(dict.as_bytes());
    out.resize(total - 1, b' ');
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_aligned_and_parsable() {
        let dt = DataType::parse_numpy(">f8").unwrap();
        for shape in [vec![], vec![5], vec![3, 4], vec![8192, 16384, 2]] {
            let h = npy_header(&dt, &shape);
            assert_eq!(h.len(), PAGE, "the data starts on a page of its own");
            assert_eq!(&h[..8], b"\x93NUMPY\x01\x00");
            let dict_len = u16::from_le_bytes([h[8], h[9]]) as usize;
            assert_eq!(dict_len + 10, h.len());
            let text = std::str::from_utf8(&h[10..]).unwrap();
            assert!(text.starts_with("{'descr': '>f8', 'fortran_order': False, 'shape': ("));
            assert!(text.ends_with('\n'));
        }
        let h = npy_header(&dt, &[5]);
        assert!(std::str::from_utf8(&h[10..])
            .unwrap()
            .contains("'shape': (5,)"));
        let h = npy_header(&dt, &[]);
        assert!(std::str::from_utf8(&h[10..])
            .unwrap()
            .contains("'shape': ()"));
    }

    #[test]
    fn a_header_larger_than_a_page_keeps_the_format_alignment() {
        let dt = DataType::parse_numpy("<u1").unwrap();
        let shape = vec![1_000_000_000u64; 400];
        let h = npy_header(&dt, &shape);
        assert!(h.len() > PAGE && h.len().is_multiple_of(64));
        let dict_len = u16::from_le_bytes([h[8], h[9]]) as usize;
        assert_eq!(dict_len + 10, h.len());
        assert_eq!(h.last(), Some(&b'\n'));
    }
}
