//! Shared helpers for hashsieve benchmarks.
