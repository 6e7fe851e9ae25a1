//! Integration tests of the files connector: through the in-process harness, with an injected
//! clock, over real HTTP, on a full tmpfs, and as the real .so through the host's loader.

mod common;
mod disk_full;
mod files;
mod http;
mod links;
mod so;
