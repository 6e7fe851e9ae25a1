//! The timescale connector (being written).
