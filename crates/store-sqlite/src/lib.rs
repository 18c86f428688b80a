//! berth's embedded store (the default backend): a revision log in SQLite implementing the
//! `berth_store::Store` seam, in the manner of kine.
