//! The id field, and the id of a record that has none.

use std::borrow::Cow;

use super::Decoder;
use super::fields::{FieldError, json_str, kind};
use super::scan::Entry;

pub(super) fn id_field<'k, 'de>(entry: &'k Entry<'de>) -> Result<Cow<'de, str>, FieldError<'k>> {
    let key = &*entry.key;
    let text = entry.value.get();
    if let Some(s) = json_str(entry.value) {
        return match s {
            Ok(s) if s.is_empty() => Err(FieldError::EmptyId { key }),
            Ok(s) => Ok(s),
            Err(()) => Err(FieldError::Unreadable { key }),
        };
    }
    let digits = text.strip_prefix('-').unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(Cow::Borrowed(text));
    }
    let got = match kind(entry.value) {
        "number" => "a number that is not an integer",
        other => other,
    };
    Err(FieldError::IdType { key, got })
}

impl Decoder<'_, '_> {
    /// The id of a record that has none, and whether the host derived it from the message's
    /// bytes (rather than from the producer's `message_id`).
    pub(super) fn new_id(&self, index: usize) -> (Cow<'static, str>, bool) {
        match self.ctx.message_id {
            Some(id) if !id.is_empty() => {
                let mut digits = [0u8; 20];
                let mut n = index;
                let mut len = 0;
                for slot in digits.iter_mut().rev() {
                    *slot = b'0' + (n % 10) as u8;
                    n /= 10;
                    len += 1;
                    if n == 0 {
                        break;
                    }
                }
                let digits = digits.get(digits.len() - len..).unwrap_or_default();
                let mut out = String::with_capacity(id.len() + 1 + len);
                out.push_str(id);
                out.push(':');
                out.push_str(std::str::from_utf8(digits).unwrap_or_default());
                (Cow::Owned(out), false)
            }
            _ => (Cow::Owned(self.ctx.fingerprint.record_id(index)), true),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
mod tests {
    use crate::decode::tests::*;
    use crate::decode::{Decoded, decode};
    use crate::fingerprint::Fingerprint;

    #[test]
    fn id_rules() {
        assert_eq!(one(r#"{"message":"m","id":"abc"}"#).id.as_str(), "abc");
        assert_eq!(one(r#"{"message":"m","id":"a\"b"}"#).id.as_str(), "a\"b");
        assert_eq!(one(r#"{"message":"m","id":42}"#).id.as_str(), "42");
        assert_eq!(one(r#"{"message":"m","id":-7}"#).id.as_str(), "-7");
        assert_eq!(
            one(r#"{"message":"m","id":123456789012345678901234567890}"#)
                .id
                .as_str(),
            "123456789012345678901234567890"
        );
        for (value, got) in [
            ("1.5", "a number that is not an integer"),
            ("1e3", "a number that is not an integer"),
            ("true", "boolean"),
            ("{}", "object"),
            ("null", "null"),
        ] {
            assert_eq!(
                whole_bad(&format!(r#"{{"message":"m","id":{value}}}"#)),
                format!("field `id` must be a string or an integer, got {got}")
            );
        }
        assert_eq!(
            whole_bad(r#"{"message":"m","id":""}"#),
            "field `id` must not be empty"
        );
    }

    #[test]
    fn missing_id_from_the_message_id() {
        assert_eq!(one(r#"{"message":"m"}"#).id.as_str(), "m1:0");
        let d = decode_str(r#"[{"message":"a"},{"message":"b"}]"#);
        assert_eq!(d.records[1].id.as_str(), "m1:1");
        let d = decode_str(
            "{\"message\":\"a\"}\n{\"message\":\"b\",\"id\":\"own\"}\n{\"message\":\"c\"}",
        );
        let ids: Vec<_> = d.records.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["m1:0", "own", "m1:2"]);
    }

    #[test]
    fn missing_id_without_message_id_is_derived_from_the_fingerprint() {
        use logrelay_plugin_api::RecordFlags as F;
        for message_id in [None, Some("")] {
            let mut c = ctx();
            c.message_id = message_id;
            let d = decode(
                br#"[{"message":"a"},{"message":"b","id":"own"},{"message":"c"}]"#,
                &c,
            );
            assert_eq!(d.records[0].id.as_str(), Fingerprint(7).record_id(0));
            assert_eq!(d.records[1].id.as_str(), "own");
            assert_eq!(d.records[2].id.as_str(), Fingerprint(7).record_id(2));
            // Seen for the first time: only the derived ids are unseen.
            let unseen = F::RECEIVE_TIME.with(F::UNSEEN);
            assert_eq!(d.flags, vec![unseen, F::RECEIVE_TIME, unseen]);
            // A redelivery gives the same ids, and nothing is unseen.
            c.redelivered = true;
            c.received_ns += 5_000_000_000;
            let again = decode(
                br#"[{"message":"a"},{"message":"b","id":"own"},{"message":"c"}]"#,
                &c,
            );
            let ids = |d: &Decoded| {
                d.records
                    .iter()
                    .map(|r| r.id.to_string())
                    .collect::<Vec<_>>()
            };
            assert_eq!(ids(&again), ids(&d));
            assert_eq!(again.flags, vec![F::RECEIVE_TIME; 3]);
        }
        // Ids from the message id are the producer's: never unseen.
        let d = decode_str(r#"{"message":"m"}"#);
        assert_eq!(d.flags, vec![F::RECEIVE_TIME]);
    }
}
