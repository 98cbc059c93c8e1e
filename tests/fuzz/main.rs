//! Property tests of everything that reads what a store holds: random and mutated bytes
//! thrown at every metadata parser and codec decoder must never panic, nor allocate at once
//! more than a bound of their input's size and the chunk size the metadata declares (a
//! counting global allocator watches). `PROPTEST_CASES` sets the cases per property
//! (`scripts/fuzz.sh` runs many more than the default).

mod alloc;
mod codecs;
mod corpus;
mod metadata;

#[global_allocator]
static ALLOCATOR: alloc::Counting = alloc::Counting;

/// Cases per property: `PROPTEST_CASES`, else a few for every run of the test suite.
fn config() -> proptest::prelude::ProptestConfig {
    proptest::prelude::ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|cases| cases.parse().ok())
            .unwrap_or(64),
        failure_persistence: None,
        ..proptest::prelude::ProptestConfig::default()
    }
}
