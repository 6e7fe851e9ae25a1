//! Field formatting engine (being written).
