//! Test support for berth's control plane (dev-only, plus the `--simulated-nodes`
//! development flag of `berth server`).
//!
//! - [`TestCluster`]: the real API server over the in-memory store, with the controllers,
//!   the scheduler and simulated nodes wired through in-process kube clients, exactly as
//!   `berth server` wires them (DESIGN §9: the integration-test tier).
//! - Simulated nodes: KWOK-like fake kubelets that register Nodes, renew Leases, mark pods
//!   bound to them Running (and Succeeded for run-to-completion pods), finish graceful
//!   deletions and report fake resource usage, so the control plane can be exercised at
//!   scale on one machine.
//!
//! May depend on every control-plane crate (it is a test crate in the dependency rules);
//! the simulated nodes themselves are kube clients only.

mod cluster;
mod error;
mod simnodes;

pub use cluster::{TEST_CA_PEM, TestCluster, TestClusterOptions, fast_control_plane, fast_nodes};
pub use error::{Error, Result};
pub use simnodes::{
    ANNOTATION_CPU_USAGE, ANNOTATION_EXIT_CODE, ANNOTATION_FAIL_ATTEMPTS, ANNOTATION_RUN_SECONDS,
    SIMULATED_LABEL, SimulatedNodes, SimulatedNodesConfig, SimulatedNodesHandle,
};
