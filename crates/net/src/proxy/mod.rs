//! The Service proxy: Services and EndpointSlices to the node's nftables table.

pub mod model;
pub mod render;
pub mod sync;
