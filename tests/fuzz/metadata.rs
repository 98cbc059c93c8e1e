//! Every metadata parser takes random and mutated documents without panicking or allocating
//! at once more than a bound of the input's size.

use super::alloc::largest_during;
use super::corpus::{apply, edits, interesting_u64, CORPUS};
use proptest::prelude::*;
use serde_json::{json, Value};
use zarrfs::metadata::fill::fill_value_bytes;
use zarrfs::metadata::{json as zjson, v2, v3, DataType};

/// The largest element a data type may declare (and so the largest fill value).
const MAX_ITEMSIZE: usize = 16 << 20;

/// The most a parser may allocate at once for `len` bytes of input: a parsed JSON value
/// takes a few dozen bytes per input byte, and a fill value up to an element's size.
fn bound(len: usize) -> usize {
    128 * len + 2 * MAX_ITEMSIZE + (1 << 20)
}

/// Names and values the parsers give a meaning to.
const WORDS: &[&str] = &[
    "<f8",
    ">i2",
    "|u1",
    "|b1",
    "<c16",
    "<f2",
    "<M8[ns]",
    "<m8[10ms]",
    "|S5",
    "<U3",
    "|V4",
    "|O",
    "<U4194305",
    "|V16777217",
    "r8",
    "r16",
    "r24",
    "r134217728",
    "r4294967296",
    "r99999999999999999999",
    "raw_bytes",
    "float16",
    "int64",
    "uint64",
    "complex128",
    "bool",
    "string",
    "bytes",
    "structured",
    "numpy.datetime64",
    "numpy.timedelta64",
    "fixed_length_utf32",
    "null_terminated_bytes",
    "NaN",
    "Infinity",
    "-Infinity",
    "0x7fc00001",
    "0xffffffffffffffffff",
    "NaT",
    "C",
    "F",
    ".",
    "/",
    "regular",
    "default",
    "v2",
    "transpose",
    "blosc",
    "zstd",
    "gzip",
    "crc32c",
    "sharding_indexed",
    "vlen-utf8",
    "numcodecs.delta",
    "little",
    "big",
    "start",
    "end",
    "AAAA",
    "",
    "group",
    "array",
];

/// Any JSON value, leaning to what the parsers look for.
pub fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        interesting_u64().prop_map(|v| json!(v)),
        any::<i64>().prop_map(|v| json!(v)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|v| json!(v)),
        prop::sample::select(WORDS).prop_map(|s| json!(s)),
        "[ -~]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(("[a-z_]{1,12}", inner), 0..6)
                .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

/// Replaces the `n`-th value inside `doc` (depth first, wrapping around) by `new`.
fn replace_nth(doc: &mut Value, n: usize, new: Value) {
    fn count(value: &Value) -> usize {
        match value {
            Value::Array(items) => items.iter().map(|v| 1 + count(v)).sum(),
            Value::Object(fields) => fields.values().map(|v| 1 + count(v)).sum(),
            _ => 0,
        }
    }
    fn visit(value: &mut Value, n: &mut usize, new: &mut Option<Value>) {
        let children: Vec<&mut Value> = match value {
            Value::Array(items) => items.iter_mut().collect(),
            Value::Object(fields) => fields.values_mut().collect(),
            _ => return,
        };
        for child in children {
            if new.is_none() {
                return;
            }
            if *n == 0 {
                *child = new.take().expect("checked");
                return;
            }
            *n -= 1;
            visit(child, n, new);
        }
    }
    match count(doc) {
        0 => *doc = new,
        total => visit(doc, &mut (n % total), &mut Some(new)),
    }
}

/// Runs every parser that could see `bytes`: JSON, then the v2 and v3 documents, their data
/// types and fill values.
fn parse_everything(bytes: &[u8]) {
    let Ok(doc) = zjson::parse(bytes) else {
        return;
    };
    let attributes = doc.get("attributes").cloned().unwrap_or(json!({}));
    let _ = v2::parse_zarray(&doc, attributes);
    let _ = v3::parse_node(&doc);
    let fill = doc.get("fill_value").unwrap_or(&Value::Null);
    if let Some(Ok(dtype)) = doc.get("dtype").map(DataType::parse_v2) {
        let _ = fill_value_bytes(fill, &dtype);
    }
    for big in [false, true] {
        if let Some(Ok(dtype)) = doc.get("data_type").map(|d| DataType::parse_v3(d, big)) {
            let _ = fill_value_bytes(fill, &dtype);
        }
    }
}

fn check(bytes: &[u8]) -> Result<(), TestCaseError> {
    let ((), largest) = largest_during(|| parse_everything(bytes));
    prop_assert!(
        largest <= bound(bytes.len()),
        "{largest} bytes allocated at once for {} bytes of metadata: {}",
        bytes.len(),
        String::from_utf8_lossy(bytes)
    );
    Ok(())
}

/// A data type as v2 or v3 documents write it, or anything.
fn arb_dtype() -> impl Strategy<Value = Value> {
    let word = || prop::sample::select(WORDS).prop_map(|s| json!(s));
    let field = (
        "[a-z]{1,3}",
        word(),
        prop::option::of(prop::collection::vec(interesting_u64(), 0..3)),
    )
        .prop_map(|(name, dtype, shape)| match shape {
            Some(shape) => json!([name, dtype, shape]),
            None => json!([name, dtype]),
        });
    prop_oneof![
        word(),
        prop::collection::vec(field, 0..4).prop_map(Value::Array),
        (word(), interesting_u64(), word(), interesting_u64()).prop_map(
            |(name, length, unit, scale)| json!({"name": name, "configuration": {
                "length_bytes": length, "unit": unit, "scale_factor": scale}})
        ),
        arb_json(),
    ]
}

proptest! {
    #![proptest_config(super::config())]

    #[test]
    fn random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        check(&bytes)?;
    }

    #[test]
    fn mutated_documents(seed in any::<usize>(), edits in edits()) {
        let documents = &CORPUS.documents;
        check(&apply(&documents[seed % documents.len()], &edits))?;
    }

    #[test]
    fn documents_with_a_value_replaced(
        seed in any::<usize>(),
        at in prop::collection::vec(any::<usize>(), 1..4),
        new in prop::collection::vec(arb_json(), 1..4),
    ) {
        let documents = &CORPUS.documents;
        let Ok(mut doc) = zjson::parse(&documents[seed % documents.len()]) else {
            return Ok(());
        };
        for (n, value) in at.into_iter().zip(new) {
            replace_nth(&mut doc, n, value);
        }
        check(&serde_json::to_vec(&doc).unwrap())?;
    }

    #[test]
    fn data_types_and_fill_values(dtype in arb_dtype(), fill in arb_json()) {
        let doc = json!({"dtype": dtype, "data_type": dtype, "fill_value": fill});
        check(&serde_json::to_vec(&doc).unwrap())?;
    }
}
