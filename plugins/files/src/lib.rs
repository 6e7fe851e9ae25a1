//! The files connector (being written).
