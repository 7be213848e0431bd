//! Ingest from a queue engine: hashsieved consumes work from Redis Streams in consumer groups,
//! so that several daemons share a queue — how a hotline or an ISP scales past one machine —
//! and no message is lost or answered twice when one of them dies.
//!
//! [`stream`] is the consumer: read in a group, take over the messages of dead consumers,
//! publish each result once and acknowledge it in the same atomic step.

pub mod stream;
