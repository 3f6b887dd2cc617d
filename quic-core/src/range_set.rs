//! A set of disjoint u64 ranges.
