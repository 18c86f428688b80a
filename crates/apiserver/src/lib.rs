//! berth's Kubernetes API server.
