//! NPY headers for the `data.npy` view.

use crate::metadata::DataType;

/// Builds the NPY header (magic, version, length, dict, padding) for a C-order array.
/// The header length is a multiple of 64 so the data that follows is aligned.
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
    let total = unpadded.div_ceil(64) * 64;
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
            assert_eq!(h.len() % 64, 0);
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
}
