//! The three kinds of keyed state: [`ValueState`], [`MapState`] and
//! [`ListState`]. Each is an in-memory hash table of typed values (no
//! serialization on access) that remembers which keys changed since the
//! last snapshot, so a delta snapshot writes only those.

use std::any::Any;
use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::format::{Line, OP_PUT, OP_REMOVE, put, take};
use crate::error::{Result, RuntimeError};

/// What a key type needs: hashable, cloneable, serializable.
pub trait StateKey: Hash + Eq + Clone + Serialize + DeserializeOwned + Send + 'static {}
impl<T: Hash + Eq + Clone + Serialize + DeserializeOwned + Send + 'static> StateKey for T {}

/// What a value type needs: serializable.
pub trait StateValue: Serialize + DeserializeOwned + Send + 'static {}
impl<T: Serialize + DeserializeOwned + Send + 'static> StateValue for T {}

/// The kind of a table, as written in snapshot headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateKind {
    /// [`ValueState`].
    Value,
    /// [`MapState`].
    Map,
    /// [`ListState`].
    List,
}

impl StateKind {
    /// The name used in files.
    pub fn name(self) -> &'static str {
        match self {
            StateKind::Value => "value",
            StateKind::Map => "map",
            StateKind::List => "list",
        }
    }
}

/// A value and whether it changed since the last snapshot.
#[derive(Debug, Clone)]
struct Slot<V> {
    value: V,
    dirty: bool,
}

impl<V> Slot<V> {
    fn new(value: V) -> Self {
        Slot { value, dirty: true }
    }
}

/// The object-safe side of a table: snapshot writing and restore.
pub(crate) trait Table: Send {
    fn kind(&self) -> StateKind;
    /// Appends every entry (`full`) or the changed ones to `out` as
    /// entries of table number `table` (see [`super::format`]), and forgets
    /// the changes. Returns the number of entries written.
    fn write(&mut self, table: u32, full: bool, out: &mut Vec<u8>) -> Result<u64>;
    /// Applies one entry of a snapshot file: `op`, then `input` starts with
    /// the entry's key. Returns the input after the entry.
    fn apply<'a>(&mut self, op: u8, input: &'a [u8]) -> Result<&'a [u8]>;
    /// Applies one entry of a version 1 (JSON lines) file.
    fn apply_v1(&mut self, line: Line) -> Result<()>;
    /// Keys held.
    fn keys(&self) -> usize;
    fn as_any_mut(&mut self) -> &mut dyn Any;
    fn as_any(&self) -> &dyn Any;
}

fn decode_v1<T: DeserializeOwned>(v: Value, what: &str) -> Result<T> {
    serde_json::from_value(v)
        .map_err(|e| RuntimeError::User(format!("keyed state: cannot read a {what}: {e}")))
}

/// Starts an entry: table number and operation.
fn entry(out: &mut Vec<u8>, table: u32, op: u8) -> Result<()> {
    put(out, &table)?;
    out.push(op);
    Ok(())
}

// ---- value ---------------------------------------------------------------

/// One value per key.
#[derive(Debug)]
pub struct ValueState<K, V> {
    map: HashMap<K, Slot<V>>,
    removed: Vec<K>,
}

impl<K: StateKey, V: StateValue> Default for ValueState<K, V> {
    fn default() -> Self {
        ValueState {
            map: HashMap::new(),
            removed: Vec::new(),
        }
    }
}

impl<K: StateKey, V: StateValue> ValueState<K, V> {
    /// The value of `key`.
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.get(key).map(|s| &s.value)
    }

    /// The value of `key` to change in place (marked changed).
    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.get_mut(key).map(|s| {
            s.dirty = true;
            &mut s.value
        })
    }

    /// The value of `key`, created with `make` if absent (the key is cloned
    /// only then); marked changed.
    pub fn get_or_insert_with<Q>(&mut self, key: &Q, make: impl FnOnce() -> V) -> &mut V
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        if !self.map.contains_key(key) {
            self.map.insert(key.to_owned(), Slot::new(make()));
        }
        let s = self.map.get_mut(key).expect("just inserted");
        s.dirty = true;
        &mut s.value
    }

    /// Sets the value of `key`.
    pub fn insert(&mut self, key: K, value: V) {
        self.map.insert(key, Slot::new(value));
    }

    /// Removes `key`, returning its value.
    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (k, s) = self.map.remove_entry(key)?;
        self.removed.push(k);
        Some(s.value)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no key has a value.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Every `(key, value)`, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.map.iter().map(|(k, s)| (k, &s.value))
    }
}

impl<K: StateKey, V: StateValue> Table for ValueState<K, V> {
    fn kind(&self) -> StateKind {
        StateKind::Value
    }

    fn write(&mut self, table: u32, full: bool, out: &mut Vec<u8>) -> Result<u64> {
        let mut n = 0;
        for k in self.removed.drain(..) {
            if !full && !self.map.contains_key(&k) {
                entry(out, table, OP_REMOVE)?;
                put(out, &k)?;
                n += 1;
            }
        }
        for (k, s) in self.map.iter_mut() {
            if full || s.dirty {
                entry(out, table, OP_PUT)?;
                put(out, k)?;
                put(out, &s.value)?;
                n += 1;
            }
            s.dirty = false;
        }
        Ok(n)
    }

    fn apply<'a>(&mut self, op: u8, input: &'a [u8]) -> Result<&'a [u8]> {
        let (key, rest): (K, _) = take(input, "key")?;
        if op == OP_PUT {
            let (value, rest): (V, _) = take(rest, "value")?;
            self.map.insert(
                key,
                Slot {
                    value,
                    dirty: false,
                },
            );
            Ok(rest)
        } else {
            self.map.remove(&key);
            Ok(rest)
        }
    }

    fn apply_v1(&mut self, line: Line) -> Result<()> {
        let key: K = decode_v1(line.k, "key")?;
        match line.v {
            Some(v) => {
                let value: V = decode_v1(v, "value")?;
                self.map.insert(
                    key,
                    Slot {
                        value,
                        dirty: false,
                    },
                );
            }
            None => {
                self.map.remove(&key);
            }
        }
        Ok(())
    }

    fn keys(&self) -> usize {
        self.map.len()
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

// ---- map -----------------------------------------------------------------

/// A map per key (`key → map key → value`); changes are tracked per map
/// entry.
#[derive(Debug)]
pub struct MapState<K, M, V> {
    map: HashMap<K, HashMap<M, Slot<V>>>,
    removed: Vec<(K, M)>,
}

impl<K: StateKey, M: StateKey, V: StateValue> Default for MapState<K, M, V> {
    fn default() -> Self {
        MapState {
            map: HashMap::new(),
            removed: Vec::new(),
        }
    }
}

impl<K: StateKey, M: StateKey, V: StateValue> MapState<K, M, V> {
    /// The value at `key`/`entry`.
    pub fn get<Q, R>(&self, key: &Q, entry: &R) -> Option<&V>
    where
        K: Borrow<Q>,
        M: Borrow<R>,
        Q: Hash + Eq + ?Sized,
        R: Hash + Eq + ?Sized,
    {
        self.map.get(key)?.get(entry).map(|s| &s.value)
    }

    /// Sets the value at `key`/`entry`.
    pub fn insert(&mut self, key: K, entry: M, value: V) {
        self.map
            .entry(key)
            .or_default()
            .insert(entry, Slot::new(value));
    }

    /// The value at `key`/`entry` to change in place (marked changed).
    pub fn get_mut<Q, R>(&mut self, key: &Q, entry: &R) -> Option<&mut V>
    where
        K: Borrow<Q>,
        M: Borrow<R>,
        Q: Hash + Eq + ?Sized,
        R: Hash + Eq + ?Sized,
    {
        self.map.get_mut(key)?.get_mut(entry).map(|s| {
            s.dirty = true;
            &mut s.value
        })
    }

    /// Removes `key`/`entry`.
    pub fn remove<Q, R>(&mut self, key: &Q, entry: &R) -> Option<V>
    where
        K: Borrow<Q>,
        M: Borrow<R>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        R: Hash + Eq + ?Sized,
    {
        let inner = self.map.get_mut(key)?;
        let (m, s) = inner.remove_entry(entry)?;
        if inner.is_empty() {
            self.map.remove(key);
        }
        self.removed.push((key.to_owned(), m));
        Some(s.value)
    }

    /// The entries of `key`, in no particular order.
    pub fn entries<Q>(&self, key: &Q) -> impl Iterator<Item = (&M, &V)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map
            .get(key)
            .into_iter()
            .flat_map(|m| m.iter().map(|(e, s)| (e, &s.value)))
    }

    /// Number of keys with at least one entry.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no key has an entry.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

impl<K: StateKey, M: StateKey, V: StateValue> Table for MapState<K, M, V> {
    fn kind(&self) -> StateKind {
        StateKind::Map
    }

    fn write(&mut self, table: u32, full: bool, out: &mut Vec<u8>) -> Result<u64> {
        let mut n = 0;
        for (k, m) in self.removed.drain(..) {
            let present = self.map.get(&k).is_some_and(|inner| inner.contains_key(&m));
            if !full && !present {
                entry(out, table, OP_REMOVE)?;
                put(out, &k)?;
                put(out, &m)?;
                n += 1;
            }
        }
        for (k, inner) in self.map.iter_mut() {
            for (m, s) in inner.iter_mut() {
                if full || s.dirty {
                    entry(out, table, OP_PUT)?;
                    put(out, k)?;
                    put(out, m)?;
                    put(out, &s.value)?;
                    n += 1;
                }
                s.dirty = false;
            }
        }
        Ok(n)
    }

    fn apply<'a>(&mut self, op: u8, input: &'a [u8]) -> Result<&'a [u8]> {
        let (key, rest): (K, _) = take(input, "key")?;
        let (m, rest): (M, _) = take(rest, "map key")?;
        if op == OP_PUT {
            let (value, rest): (V, _) = take(rest, "value")?;
            self.map.entry(key).or_default().insert(
                m,
                Slot {
                    value,
                    dirty: false,
                },
            );
            return Ok(rest);
        }
        if let Some(inner) = self.map.get_mut(&key) {
            inner.remove(&m);
            if inner.is_empty() {
                self.map.remove(&key);
            }
        }
        Ok(rest)
    }

    fn apply_v1(&mut self, line: Line) -> Result<()> {
        let key: K = decode_v1(line.k, "key")?;
        let entry: M = decode_v1(
            line.m.ok_or_else(|| {
                RuntimeError::User("keyed state: a map state line has no map key".into())
            })?,
            "map key",
        )?;
        match line.v {
            Some(v) => {
                let value: V = decode_v1(v, "value")?;
                self.map.entry(key).or_default().insert(
                    entry,
                    Slot {
                        value,
                        dirty: false,
                    },
                );
            }
            None => {
                if let Some(inner) = self.map.get_mut(&key) {
                    inner.remove(&entry);
                    if inner.is_empty() {
                        self.map.remove(&key);
                    }
                }
            }
        }
        Ok(())
    }

    fn keys(&self) -> usize {
        self.map.len()
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

// ---- list ----------------------------------------------------------------

/// A list per key; a changed list is written whole in a delta.
#[derive(Debug)]
pub struct ListState<K, V> {
    inner: ValueState<K, Vec<V>>,
}

impl<K: StateKey, V: StateValue> Default for ListState<K, V> {
    fn default() -> Self {
        ListState {
            inner: ValueState::default(),
        }
    }
}

impl<K: StateKey, V: StateValue> ListState<K, V> {
    /// The list of `key` (empty if none).
    pub fn get<Q>(&self, key: &Q) -> &[V]
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.inner.get(key).map_or(&[], Vec::as_slice)
    }

    /// Appends `value` to the list of `key`.
    pub fn push<Q>(&mut self, key: &Q, value: V)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.inner.get_or_insert_with(key, Vec::new).push(value);
    }

    /// The list of `key` to change in place (marked changed).
    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut Vec<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.inner.get_mut(key)
    }

    /// Removes the list of `key`.
    pub fn remove<Q>(&mut self, key: &Q) -> Option<Vec<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.inner.remove(key)
    }

    /// Number of keys with a list.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether no key has a list.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }
}

impl<K: StateKey, V: StateValue> Table for ListState<K, V> {
    fn kind(&self) -> StateKind {
        StateKind::List
    }

    fn write(&mut self, table: u32, full: bool, out: &mut Vec<u8>) -> Result<u64> {
        self.inner.write(table, full, out)
    }

    fn apply<'a>(&mut self, op: u8, input: &'a [u8]) -> Result<&'a [u8]> {
        self.inner.apply(op, input)
    }

    fn apply_v1(&mut self, line: Line) -> Result<()> {
        self.inner.apply_v1(line)
    }

    fn keys(&self) -> usize {
        self.inner.len()
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}
