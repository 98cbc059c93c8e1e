//! zarrfs: mounts Zarr stores as plain files. Each array becomes a directory holding a flat
//! C-order view (`data`), an NPY view (`data.npy`) and one file per decoded chunk; reads
//! decode the chunks they touch in parallel and keep them in a byte-bounded LRU cache.
//!
//! Layers, bottom up: [`store`] and [`metadata`] → [`codec`] → [`geometry`] → [`stored`]
//! (where chunks lie: objects or shards) → [`array`](mod@array), [`cache`] and [`reader`] → [`tree`] →
//! [`fuse`]; [`cli`] wires them to the command line.

#![warn(missing_docs)]

pub mod array;
pub mod blocks;
pub mod cache;
pub mod cli;
pub mod codec;
pub mod error;
pub mod fuse;
pub mod geometry;
pub mod isolation;
pub mod jsonl;
pub mod metadata;
pub mod pattern;
pub mod reader;
pub mod report;
pub mod sample;
pub mod stats;
pub mod store;
pub mod stored;
pub mod tree;
pub mod units;
pub mod writer;
