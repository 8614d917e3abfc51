//! Upstream name resolution is `common::resolve` (shared with waitfor); the pool re-resolves
//! every name on the DNS TTL, see [`crate::pool`].
pub use common::resolve::Resolver;
