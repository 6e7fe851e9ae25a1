//! One pass over a JSON value with serde: an object's fields are sorted into the known fields
//! and the attributes as they are read, and nested values are only scanned to find where they end
//! (kept as raw JSON text), so that no depth of nesting recurses.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer as _, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::shapes::{Alias, DecodeOptions, Field, Rule};
use super::{Decoded, Decoder};

/// One field of an object as sent: its position, its key (unescaped; dotted for a member of an
/// object, e.g. `fields.message`) and its value's JSON text.
#[derive(Debug, Clone)]
pub(super) struct Entry<'de> {
    pub(super) pos: u32,
    pub(super) key: Cow<'de, str>,
    pub(super) value: &'de RawValue,
}

/// The field that currently holds a known field, the rank of its name and how it is read.
#[derive(Debug)]
pub(super) struct Slot<'de> {
    pub(super) rank: u8,
    pub(super) rule: Rule,
    pub(super) entry: Entry<'de>,
    /// Whether the attributes hold it already (a member of an object kept whole, or a template):
    /// when a better name displaces it, it is not added again.
    pub(super) in_attrs: bool,
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
    pub(super) options: &'v DecodeOptions,
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
        let options = self.options;
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
            let Some(info) = options.key(&entry.key) else {
                attrs.push(entry);
                continue;
            };
            if info.container && value.get().starts_with('{') {
                // `{"log":{"level":...}}` as `log.level`; the object stays an attribute whole.
                let mut sorter = Sorter {
                    slots: &mut *slots,
                    attrs: &mut *attrs,
                    out_of_order: &mut *out_of_order,
                };
                sorter.container(options, entry);
                continue;
            }
            let mut sorter = Sorter {
                slots: &mut *slots,
                attrs: &mut *attrs,
                out_of_order: &mut *out_of_order,
            };
            match info.alias {
                Some(alias) => sorter.place(alias, entry, false),
                None => attrs.push(entry),
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

/// Sorts fields into the known fields and the attributes.
struct Sorter<'s, 'de> {
    slots: &'s mut Slots<'de>,
    attrs: &'s mut Vec<Entry<'de>>,
    out_of_order: &'s mut bool,
}

impl<'de> Sorter<'_, 'de> {
    /// Puts a field named by `alias` in its slot unless a better name holds it; what it displaces
    /// or what loses goes to the attributes, unless they hold it already (`in_attrs`).
    #[inline(always)]
    fn place(&mut self, alias: Alias, entry: Entry<'de>, in_attrs: bool) {
        let in_attrs = if alias.rule == Rule::Template && !in_attrs {
            // A template is kept as sent, rendered or not.
            self.attrs.push(entry.clone());
            true
        } else {
            in_attrs
        };
        let slot = self.slots.get_mut(alias.field);
        if slot.is_none() {
            // The common case: the first name of the field.
            *slot = Some(Slot {
                rank: alias.rank,
                rule: alias.rule,
                entry,
                in_attrs,
            });
            return;
        }
        let new = Slot {
            rank: alias.rank,
            rule: alias.rule,
            entry,
            in_attrs,
        };
        match slot {
            None => *slot = Some(new),
            // The same key again: the last occurrence wins.
            Some(held) if held.rank == new.rank && !held.in_attrs && !new.in_attrs => *held = new,
            // The same name as a dotted key and as a member: the first stays.
            Some(held) if held.rank == new.rank => {
                if !new.in_attrs {
                    self.attrs.push(new.entry);
                }
            }
            // A name listed earlier: the one held goes back to the attributes.
            Some(held) if new.rank < held.rank => {
                let old = std::mem::replace(held, new);
                if !old.in_attrs {
                    self.attrs.push(old.entry);
                    *self.out_of_order = true;
                }
            }
            Some(_) => {
                if !new.in_attrs {
                    self.attrs.push(new.entry);
                }
            }
        }
    }

    /// Searches the object of a container for dotted names, then keeps it as an attribute.
    #[cold]
    #[inline(never)]
    fn container(&mut self, options: &DecodeOptions, entry: Entry<'de>) {
        self.members(options, &entry.key, entry.value, entry.pos, 1);
        self.attrs.push(entry);
    }

    /// Looks for dotted names among the members of the object `value` held under `prefix`
    /// (`depth` dots deep). The members stay in their object: nothing goes to the attributes.
    fn members(
        &mut self,
        options: &DecodeOptions,
        prefix: &str,
        value: &'de RawValue,
        pos: u32,
        depth: usize,
    ) {
        if depth > options.max_dots() {
            return;
        }
        let mut de = serde_json::Deserializer::from_str(value.get());
        // The value was read as JSON already; an error here (none is expected) only means its
        // members are not searched.
        let _ = de.deserialize_map(MembersVisitor {
            sorter: self,
            options,
            prefix,
            pos,
            depth,
        });
    }
}

/// Reads the members of an object under a dotted prefix.
struct MembersVisitor<'x, 's, 'de> {
    sorter: &'x mut Sorter<'s, 'de>,
    options: &'x DecodeOptions,
    prefix: &'x str,
    pos: u32,
    depth: usize,
}

impl<'de> Visitor<'de> for MembersVisitor<'_, '_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // The dotted name is put together on the stack; only a name that is found is kept.
        let mut buf = [0u8; 256];
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let value: &'de RawValue = map.next_value()?;
            let Some(name) = join(&mut buf, self.prefix, &key) else {
                continue;
            };
            let Some(info) = self.options.key(name) else {
                continue;
            };
            if info.container && value.get().starts_with('{') {
                let name = name.to_owned();
                self.sorter
                    .members(self.options, &name, value, self.pos, self.depth + 1);
                continue;
            }
            if let Some(alias) = info.alias {
                let entry = Entry {
                    pos: self.pos,
                    key: Cow::Owned(name.to_owned()),
                    value,
                };
                self.sorter.place(alias, entry, true);
            }
        }
        Ok(())
    }
}

/// `prefix.key` written into `buf`; `None` when it does not fit.
fn join<'b>(buf: &'b mut [u8; 256], prefix: &str, key: &str) -> Option<&'b str> {
    let len = prefix.len() + 1 + key.len();
    let out = buf.get_mut(..len)?;
    let (head, tail) = out.split_at_mut(prefix.len());
    head.copy_from_slice(prefix.as_bytes());
    let (dot, rest) = tail.split_first_mut()?;
    *dot = b'.';
    rest.copy_from_slice(key.as_bytes());
    std::str::from_utf8(out).ok()
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
            options: self.decoder.ctx.options,
        })? {
            let outcome = self.decoder.finish(item, self.scratch, index);
            // The element's span is filled in afterwards, only when it is bad.
            self.out.push(outcome, index, 0..0, "element");
            index += 1;
        }
        Ok(index)
    }
}
