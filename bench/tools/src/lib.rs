//! What the clients of bench/tools share: one connection (plaintext or TLS), one request and
//! its whole response, why either failed, and percentiles of a series of latencies.

pub mod client;
pub mod tls;
