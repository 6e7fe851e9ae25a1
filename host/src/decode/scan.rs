//! One pass over a JSON value with serde: an object's fields are sorted into the known fields
//! and the attributes as they are read, and nested values are only scanned to find where they end
//! (kept as raw JSON text), so that no depth of nesting recurses.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::fields::{Field, classify};
use super::{Decoded, Decoder};

/// One field of an object as sent: its position, its key (unescaped) and its value's JSON text.
#[derive(Debug)]
pub(super) struct Entry<'de> {
    pub(super) pos: u32,
    pub(super) key: Cow<'de, str>,
    pub(super) value: &'de RawValue,
}

/// The field that currently holds a known field, and the rank of its name.
#[derive(Debug)]
pub(super) struct Slot<'de> {
    pub(super) rank: u8,
    pub(super) entry: Entry<'de>,
}

/// The known fields of one object.
#[derive(Debug, Default)]
pub(super) struct Slots<'de> {
    pub(super) timestamp: Option<Slot<'de>>,
    pub(super) level: Option<Slot<'de>>,
    pub(super) project: Option<Slot<'de>>,
    pub(super) module: Option<Slot<'de>>,
    pub(super) message: Option<Slot<'de>>,
    pub(super) id: Option<Slot<'de>>,
}

impl<'de> Slots<'de> {
    fn get_mut(&mut self, field: Field) -> &mut Option<Slot<'de>> {
        match field {
            Field::Timestamp => &mut self.timestamp,
            Field::Level => &mut self.level,
            Field::Project => &mut self.project,
            Field::Module => &mut self.module,
            Field::Message => &mut self.message,
            Field::Id => &mut self.id,
        }
    }
}

/// The fields of the object read last; reused from one object to the next.
#[derive(Debug, Default)]
pub(super) struct Scratch<'de> {
    /// Its known fields.
    pub(super) slots: Slots<'de>,
    /// Its other fields.
    pub(super) attrs: Vec<Entry<'de>>,
    /// Whether `attrs` is out of the order the fields were sent in.
    pub(super) out_of_order: bool,
}

/// A JSON value, as far as one pass over it tells.
pub(super) enum Item {
    /// An object, whose fields are in the [`Scratch`].
    Object,
    /// Anything else, by the name of its type.
    Other(&'static str),
}

impl Scratch<'_> {
    /// An empty scratch, with room for the attributes of a typical object.
    pub(super) fn new() -> Self {
        Scratch {
            slots: Slots::default(),
            attrs: Vec::with_capacity(16),
            out_of_order: false,
        }
    }
}

/// Reads one JSON value; for an object, fills the scratch with its fields.
pub(super) struct ItemSeed<'v, 'de> {
    pub(super) scratch: &'v mut Scratch<'de>,
}

impl<'de> DeserializeSeed<'de> for ItemSeed<'_, 'de> {
    type Value = Item;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Item, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ItemSeed<'_, 'de> {
    type Value = Item;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Item, A::Error> {
        let Scratch {
            slots,
            attrs,
            out_of_order,
        } = self.scratch;
        *slots = Slots::default();
        attrs.clear();
        *out_of_order = false;
        let mut pos: u32 = 0;
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let value: &'de RawValue = map.next_value()?;
            let entry = Entry { pos, key, value };
            pos = pos.saturating_add(1);
            let Some((field, rank)) = classify(&entry.key) else {
                attrs.push(entry);
                continue;
            };
            let slot = slots.get_mut(field);
            match slot {
                None => *slot = Some(Slot { rank, entry }),
                // The same key again: the last occurrence wins.
                Some(held) if held.rank == rank => held.entry = entry,
                // A name listed earlier: the one held goes back to the attributes.
                Some(held) if rank < held.rank => {
                    let old = std::mem::replace(held, Slot { rank, entry });
                    attrs.push(old.entry);
                    *out_of_order = true;
                }
                Some(_) => attrs.push(entry),
            }
        }
        Ok(Item::Object)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Item, A::Error> {
        // Skipped as raw values: no recursion, however deep the nesting.
        while seq.next_element::<&'de RawValue>()?.is_some() {}
        Ok(Item::Other("array"))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Item, E> {
        Ok(Item::Other("boolean"))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Item, E> {
        Ok(Item::Other("number"))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Item, E> {
        Ok(Item::Other("number"))
    }

    fn visit_i128<E: de::Error>(self, _: i128) -> Result<Item, E> {
        Ok(Item::Other("number"))
    }

    fn visit_u128<E: de::Error>(self, _: u128) -> Result<Item, E> {
        Ok(Item::Other("number"))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Item, E> {
        Ok(Item::Other("number"))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Item, E> {
        Ok(Item::Other("string"))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Item, E> {
        Ok(Item::Other("null"))
    }

    fn visit_none<E: de::Error>(self) -> Result<Item, E> {
        Ok(Item::Other("null"))
    }
}

/// Reads an object key, borrowing it from the body when it has no escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Cow<'de, str>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v))
    }
}

/// Reads the elements of a top-level array, decoding each as it comes.
pub(super) struct ArrayVisitor<'x, 'c, 'a, 'de> {
    pub(super) decoder: &'x Decoder<'c, 'a>,
    pub(super) scratch: &'x mut Scratch<'de>,
    pub(super) out: &'x mut Decoded,
}

impl<'de> Visitor<'de> for ArrayVisitor<'_, '_, '_, 'de> {
    /// How many elements there were.
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
        let mut index = 0;
        while let Some(item) = seq.next_element_seed(ItemSeed {
            scratch: &mut *self.scratch,
        })? {
            let outcome = self.decoder.finish(item, self.scratch, index);
            // The element's span is filled in afterwards, only when it is bad.
            self.out.push(outcome, index, 0..0, "element");
            index += 1;
        }
        Ok(index)
    }
}
