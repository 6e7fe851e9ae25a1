//! What identifies a message across its redeliveries, and the ids derived from it.
//!
//! RabbitMQ redelivers a message byte for byte: the same body, routing key and properties. A
//! record the producer gave no id (and whose message has no `message_id`) gets an id derived
//! from those bytes and the record's place in the message, so a redelivery produces the very
//! same ids as the first delivery, and the store recognises it. The hash is XXH3-128, a
//! published, fixed algorithm: ids stay the same across logrelay versions and machines.
//!
//! Two publishes that are byte-identical in everything the broker redelivers are the same
//! message as far as this can tell; RELIABILITY.md gives the rule the store applies then.

use xxhash_rust::xxh3::Xxh3;

/// The identity of one message (or, for `logrelay replay`, one line of a file): a 128-bit hash
/// of what a redelivery repeats unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Fingerprint(pub u128);

impl Fingerprint {
    /// The fingerprint of a message: its routing key, `message_id` and `timestamp` properties,
    /// and its body. Each part is length-prefixed, so no two different messages share the bytes
    /// that are hashed.
    pub fn of_message(
        routing_key: &str,
        message_id: Option<&str>,
        amqp_timestamp: Option<u64>,
        body: &[u8],
    ) -> Fingerprint {
        let mut h = Xxh3::new();
        let mut part = |bytes: &[u8]| {
            h.update(&(bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        };
        part(routing_key.as_bytes());
        match message_id {
            Some(id) => part(id.as_bytes()),
            None => part(b""),
        }
        match amqp_timestamp {
            Some(t) => part(&t.to_le_bytes()),
            None => part(b""),
        }
        part(body);
        Fingerprint(h.digest128())
    }

    /// The fingerprint of line `line` (from 1) of a file replayed by `logrelay replay`.
    pub fn of_line(line: usize, text: &[u8]) -> Fingerprint {
        let mut h = Xxh3::new();
        h.update(b"line");
        h.update(&(line as u64).to_le_bytes());
        h.update(text);
        Fingerprint(h.digest128())
    }

    /// The id of element `index` of this message: a UUID (version 8, RFC 9562's custom
    /// layout), hyphenated and lowercase, made of a hash of the fingerprint and the index.
    pub fn record_id(self, index: usize) -> String {
        let mut h = Xxh3::new();
        h.update(&self.0.to_le_bytes());
        h.update(&(index as u64).to_le_bytes());
        let mut bytes = h.digest128().to_be_bytes();
        bytes[6] = (bytes[6] & 0x0f) | 0x80;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
        uuid::Uuid::from_bytes(bytes)
            .hyphenated()
            .encode_lower(&mut buf)
            .to_owned()
    }

    /// As 32 lowercase hex digits (the crash journal's key).
    pub fn hex(self) -> String {
        format!("{:032x}", self.0)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn the_same_message_gives_the_same_ids() {
        let a = Fingerprint::of_message("shop.api", None, None, br#"{"msg":"x"}"#);
        let b = Fingerprint::of_message("shop.api", None, None, br#"{"msg":"x"}"#);
        assert_eq!(a, b);
        assert_eq!(a.record_id(0), b.record_id(0));
        assert_ne!(a.record_id(0), a.record_id(1));
    }

    #[test]
    fn every_part_counts() {
        let base = Fingerprint::of_message("k", Some("m"), Some(1), b"body");
        for other in [
            Fingerprint::of_message("k2", Some("m"), Some(1), b"body"),
            Fingerprint::of_message("k", Some("m2"), Some(1), b"body"),
            Fingerprint::of_message("k", None, Some(1), b"body"),
            Fingerprint::of_message("k", Some("m"), Some(2), b"body"),
            Fingerprint::of_message("k", Some("m"), None, b"body"),
            Fingerprint::of_message("k", Some("m"), Some(1), b"body2"),
            // Length prefixes: moving a byte from one part to the next changes the hash.
            Fingerprint::of_message("km", Some(""), Some(1), b"body"),
        ] {
            assert_ne!(base, other);
        }
        assert_ne!(Fingerprint::of_line(1, b"x"), Fingerprint::of_line(2, b"x"));
    }

    #[test]
    fn ids_are_version_8_uuids_and_distinct() {
        let f = Fingerprint::of_message("k", None, None, b"{}");
        let ids: HashSet<String> = (0..10_000).map(|i| f.record_id(i)).collect();
        assert_eq!(ids.len(), 10_000);
        for id in ids.iter().take(100) {
            let u = uuid::Uuid::parse_str(id).unwrap();
            assert_eq!(u.get_version_num(), 8);
            assert_eq!(u.get_variant(), uuid::Variant::RFC4122);
            assert_eq!(id, &id.to_lowercase());
        }
    }

    #[test]
    fn ids_are_stable_across_versions() {
        // Stored ids must not change with a new logrelay: this pins the algorithm.
        let f = Fingerprint::of_message("shop.api", None, None, br#"{"msg":"x"}"#);
        assert_eq!(f.record_id(0), PINNED);
    }

    const PINNED: &str = "811fc06d-4e2d-8c92-b54b-8a95ea417db7";
}
