//! berth image store (in progress).
