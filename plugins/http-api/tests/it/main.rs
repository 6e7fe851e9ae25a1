//! Tests of the http-api connector over real HTTP against the real store.
