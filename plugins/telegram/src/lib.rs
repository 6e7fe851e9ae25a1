//! The telegram connector (being written).
