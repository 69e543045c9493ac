//! What the clients of bench/tools share: one connection (plaintext or TLS), one request and
//! its whole response (HTTP/1.1, or HTTP/2 in `h2`), why either failed, and percentiles of a
//! series of latencies.

pub mod client;
pub mod h2;
pub mod tls;
