//! Where each YAML value and key is: a map from YAML path to position.
//!
//! Built from yaml-rust2's marked event stream (no YAML parsing of our own), and
//! only for documents serde_yaml has already accepted (serde_yaml guards against
//! alias bombs and deep nesting; this pass never expands aliases). Paths are lists
//! of map keys and list indexes as strings: `["transforms", "big", "inputs", "0"]`.
//!
//! The pass also finds duplicate keys, which serde_yaml reports only at the start
//! of the enclosing map.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::error::Location;

/// One YAML node as stored: a link to its parent, not a whole path, so memory stays
/// linear in the file size however deep the nesting.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    parent: Option<usize>,
    depth: usize,
    /// The map key naming this node; `None` for list items and the root.
    key_name: Option<Box<str>>,
    /// The index of this node in its parent list (list items only).
    item: u32,
    /// Where the key naming this node starts (map entries only).
    pub key: Option<Location>,
    /// Where the value starts.
    pub value: Location,
    /// The scalar text, for scalars.
    pub scalar: Option<Box<str>>,
    /// The scalar style, for scalars.
    pub style: Option<TScalarStyle>,
    /// For maps and lists: (exclusive) end, where the closing event was seen.
    pub end: Option<Location>,
    /// One past the index of the last node of this subtree (nodes are in document
    /// order, so a subtree is a contiguous range).
    subtree_end: usize,
}

impl Entry {
    /// The map key naming this node (`None` for list items and the root).
    pub fn key_name(&self) -> Option<&str> {
        self.key_name.as_deref()
    }

    /// Where this node starts: its key if it has one, else its value.
    pub fn start(&self) -> Location {
        self.key.map_or(self.value, |k| k.min(self.value))
    }

    /// Whether this node is a map or a list.
    pub fn is_collection(&self) -> bool {
        self.end.is_some()
    }

    /// Whether `loc` falls inside this node (collections), or is its key or value.
    pub fn contains(&self, loc: Location) -> bool {
        match self.end {
            Some(end) => self.start() <= loc && loc < end,
            None => self.value == loc || self.key == Some(loc),
        }
    }
}

/// A node found by a query, with its full path.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub path: Vec<String>,
    pub key: Option<Location>,
    pub value: Location,
    pub scalar: Option<String>,
}

/// A key that appears twice in one map.
#[derive(Debug, Clone)]
pub(crate) struct Duplicate {
    /// The path of the map holding the key.
    pub map: Vec<String>,
    pub key: String,
    pub first: Location,
    pub second: Location,
}

/// YAML path -> position, in document order.
#[derive(Debug, Default)]
pub(crate) struct PositionMap {
    nodes: Vec<Entry>,
    /// The first document's root node.
    root: Option<usize>,
    /// (parent map, key) -> node.
    keys: HashMap<(usize, Box<str>), usize>,
    /// list -> its items.
    items: HashMap<usize, Vec<usize>>,
}

impl PositionMap {
    /// Build the map for `text`; also returns the first duplicate key, if any.
    /// An error from yaml-rust2 (which should not happen after serde_yaml accepted the
    /// text) yields an empty map: errors then fall back to coarser positions.
    pub fn build(text: &str) -> (PositionMap, Option<Duplicate>) {
        let mut b = Builder::default();
        let mut parser = Parser::new_from_str(text);
        let ok = parser.load(&mut b, false).is_ok();
        let duplicate = b
            .duplicate
            .take()
            .map(|(map, key, first, second)| Duplicate {
                map: b.map.path_of(map),
                key,
                first,
                second,
            });
        if !ok {
            return (PositionMap::default(), duplicate);
        }
        (b.map, duplicate)
    }

    fn lookup<S: AsRef<str>>(&self, path: &[S]) -> Option<usize> {
        let mut cur = self.root?;
        for seg in path {
            let seg = seg.as_ref();
            cur = match self.items.get(&cur) {
                Some(items) => *items.get(seg.parse::<usize>().ok()?)?,
                None => *self.keys.get(&(cur, seg.into()))?,
            };
        }
        Some(cur)
    }

    fn path_of(&self, mut i: usize) -> Vec<String> {
        let mut out = Vec::with_capacity(self.nodes[i].depth);
        while let Some(p) = self.nodes[i].parent {
            let e = &self.nodes[i];
            out.push(
                e.key_name
                    .as_deref()
                    .map_or_else(|| e.item.to_string(), str::to_string),
            );
            i = p;
        }
        out.reverse();
        out
    }

    fn found(&self, i: usize) -> Node {
        let e = &self.nodes[i];
        Node {
            path: self.path_of(i),
            key: e.key,
            value: e.value,
            scalar: e.scalar.as_deref().map(str::to_string),
        }
    }

    /// Indexes of the nodes at or below `prefix`, in document order.
    fn under<S: AsRef<str>>(&self, prefix: &[S]) -> std::ops::Range<usize> {
        match self.lookup(prefix) {
            Some(r) => r..self.nodes[r].subtree_end,
            None => 0..0,
        }
    }

    /// The node at `path`.
    pub fn node<S: AsRef<str>>(&self, path: &[S]) -> Option<Node> {
        self.lookup(path).map(|i| self.found(i))
    }

    /// Where the value at `path` starts.
    pub fn value<S: AsRef<str>>(&self, path: &[S]) -> Option<Location> {
        self.lookup(path).map(|i| self.nodes[i].value)
    }

    /// Where the value at `path` starts, or at its nearest existing parent.
    pub fn nearest_value(&self, path: &[&str]) -> Option<Location> {
        (0..=path.len()).rev().find_map(|n| self.value(&path[..n]))
    }

    /// Where the key naming `path` starts (falls back to the value, then to parents).
    pub fn nearest_key(&self, path: &[&str]) -> Option<Location> {
        (0..=path.len()).rev().find_map(|n| {
            self.lookup(&path[..n])
                .map(|i| self.nodes[i].key.unwrap_or(self.nodes[i].value))
        })
    }

    /// The deepest node at or below `prefix` that contains `loc`.
    pub fn deepest_containing(
        &self,
        loc: Location,
        prefix: &[String],
        collections_only: bool,
    ) -> Option<Node> {
        self.under(prefix)
            .filter(|&i| {
                let e = &self.nodes[i];
                (!collections_only || e.is_collection()) && e.contains(loc)
            })
            .max_by_key(|&i| self.nodes[i].depth)
            .map(|i| self.found(i))
    }

    /// The first map entry named `key` below `prefix` (shallowest first).
    pub fn find_key_under(&self, prefix: &[String], key: &str) -> Option<Node> {
        let depth = self.lookup(prefix).map(|r| self.nodes[r].depth)?;
        self.under(prefix)
            .filter(|&i| {
                let e = &self.nodes[i];
                e.depth > depth && e.key_name() == Some(key)
            })
            .min_by_key(|&i| self.nodes[i].depth)
            .map(|i| self.found(i))
    }

    /// The first scalar with text `text` at or below `prefix`.
    pub fn find_scalar_under(&self, prefix: &[String], text: &str) -> Option<Node> {
        self.find_under(prefix, |e| e.scalar.as_deref() == Some(text))
            .or_else(|| {
                // serde prints numbers its own way: 1.50 -> 1.5
                let want: f64 = text.parse().ok()?;
                self.find_under(prefix, |e| {
                    e.scalar
                        .as_deref()
                        .and_then(|s| s.replace('_', "").parse::<f64>().ok())
                        == Some(want)
                })
            })
    }

    /// The first node at or below `prefix` matching `pred`, in document order.
    pub fn find_under(&self, prefix: &[String], pred: impl Fn(&Entry) -> bool) -> Option<Node> {
        self.under(prefix)
            .find(|&i| pred(&self.nodes[i]))
            .map(|i| self.found(i))
    }

    /// Map a 1-based line/column inside the string value at `path` to a file position.
    pub fn position_in_value(
        &self,
        text: &str,
        path: &[&str],
        line: usize,
        column: usize,
    ) -> Option<Location> {
        let node = &self.nodes[self.lookup(path)?];
        let style = node.style?;
        let line = line.max(1);
        let column = column.max(1);
        match style {
            TScalarStyle::Literal => {
                // yaml-rust2 marks the first content line; be robust to a mark on `|`.
                let mut lines = text.lines().skip(node.value.line.checked_sub(1)?);
                let mark_line = lines.next()?;
                let on_indicator = mark_line.chars().nth(node.value.column - 1) == Some('|');
                let first = node.value.line + usize::from(on_indicator);
                let indent = text
                    .lines()
                    .skip(first - 1)
                    .find(|l| !l.trim().is_empty())
                    .map(|l| l.chars().take_while(|c| *c == ' ').count())?;
                Some(Location::new(first + line - 1, indent + column))
            }
            TScalarStyle::Plain | TScalarStyle::SingleQuoted | TScalarStyle::DoubleQuoted
                if line == 1 =>
            {
                let quoted = usize::from(style != TScalarStyle::Plain);
                Some(Location::new(
                    node.value.line,
                    node.value.column + quoted + column - 1,
                ))
            }
            _ => None,
        }
    }
}

enum Frame {
    Map {
        /// Index of this map's node.
        node: usize,
        /// The key read, waiting for its value.
        key: Option<(String, Location)>,
        seen: HashMap<String, Location>,
    },
    Seq {
        /// Index of this list's node.
        node: usize,
        /// Its items so far.
        items: Vec<usize>,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    map: PositionMap,
    /// The first duplicate key: (map node, key, first, second).
    duplicate: Option<(usize, String, Location, Location)>,
    /// Nesting depth inside a complex (list or map) key, which we do not index.
    skip: usize,
}

enum Kind {
    Scalar(String, TScalarStyle),
    Alias,
    Map,
    Seq,
}

impl Builder {
    fn node(&mut self, kind: Kind, loc: Location) {
        // A key?
        if let Some(Frame::Map {
            node,
            key: key @ None,
            seen,
        }) = self.stack.last_mut()
        {
            // Block maps are marked at their first `:`; start them at their first key.
            if seen.is_empty() && loc < self.map.nodes[*node].value {
                self.map.nodes[*node].value = loc;
            }
            let name = match kind {
                Kind::Scalar(s, _) => s,
                Kind::Alias => "*alias".to_string(),
                Kind::Map | Kind::Seq => {
                    self.skip = 1;
                    return;
                }
            };
            if let Some(&first) = seen.get(&name) {
                if self.duplicate.is_none() {
                    self.duplicate = Some((*node, name.clone(), first, loc));
                }
            } else {
                seen.insert(name.clone(), loc);
            }
            *key = Some((name, loc));
            return;
        }
        // A value.
        let (parent, key_name, item, key_loc) = match self.stack.last_mut() {
            None => (None, None, 0, None),
            Some(Frame::Map { node, key, .. }) => {
                let (k, kl) = key.take().unwrap_or_else(|| ("?".to_string(), loc));
                (Some(*node), Some(k.into_boxed_str()), 0, Some(kl))
            }
            Some(Frame::Seq { node, items }) => {
                let item = u32::try_from(items.len()).unwrap_or(u32::MAX);
                items.push(self.map.nodes.len());
                (Some(*node), None, item, None)
            }
        };
        let depth = parent.map_or(0, |p| self.map.nodes[p].depth + 1);
        let (scalar, style) = match kind {
            Kind::Scalar(ref s, st) => (Some(s.as_str().into()), Some(st)),
            _ => (None, None),
        };
        let idx = self.map.nodes.len();
        match (parent, &key_name) {
            // The first occurrence wins for duplicate keys (an error anyway).
            (Some(p), Some(k)) => {
                self.map.keys.entry((p, k.clone())).or_insert(idx);
            }
            (None, _) if self.map.root.is_none() => self.map.root = Some(idx),
            _ => {}
        }
        // Collections get their real end when closed.
        let end = matches!(kind, Kind::Map | Kind::Seq).then_some(loc);
        self.map.nodes.push(Entry {
            parent,
            depth,
            key_name,
            item,
            key: key_loc,
            value: loc,
            scalar,
            style,
            end,
            subtree_end: idx + 1,
        });
        match kind {
            Kind::Map => self.stack.push(Frame::Map {
                node: idx,
                key: None,
                seen: HashMap::new(),
            }),
            Kind::Seq => self.stack.push(Frame::Seq {
                node: idx,
                items: Vec::new(),
            }),
            _ => {}
        }
    }
}

fn location(mark: Marker) -> Location {
    // yaml-rust2: 1-based lines, 0-based columns (in characters).
    Location::new(mark.line().max(1), mark.col() + 1)
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let loc = location(mark);
        if self.skip > 0 {
            match ev {
                Event::MappingStart(..) | Event::SequenceStart(..) => self.skip += 1,
                Event::MappingEnd | Event::SequenceEnd => {
                    self.skip -= 1;
                    if self.skip == 0
                        && let Some(Frame::Map { key, .. }) = self.stack.last_mut()
                    {
                        *key = Some(("<complex key>".to_string(), loc));
                    }
                }
                _ => {}
            }
            return;
        }
        match ev {
            Event::Scalar(s, style, _, _) => self.node(Kind::Scalar(s, style), loc),
            Event::Alias(_) => self.node(Kind::Alias, loc),
            Event::MappingStart(..) => self.node(Kind::Map, loc),
            Event::SequenceStart(..) => self.node(Kind::Seq, loc),
            Event::MappingEnd | Event::SequenceEnd => {
                let node = match self.stack.pop() {
                    Some(Frame::Map { node, .. }) => node,
                    Some(Frame::Seq { node, items }) => {
                        self.map.items.insert(node, items);
                        node
                    }
                    None => return,
                };
                // Exclusive end: just past a closing `]`/`}`, or at the next token.
                self.map.nodes[node].end = Some(Location::new(loc.line, loc.column + 1));
                self.map.nodes[node].subtree_end = self.map.nodes.len();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn block_and_flow_positions() {
        let text = "name: x\nsources:\n  txns: { type: generator, seed: 42 }\ntransforms:\n  big:\n    inputs: [txns, other]\n    query: |\n      SELECT 1\n      FROM t\n";
        let (m, dup) = PositionMap::build(text);
        assert!(dup.is_none());
        assert_eq!(m.value(&["name"]), Some(Location::new(1, 7)));
        assert_eq!(m.node(&["name"]).unwrap().key, Some(Location::new(1, 1)));
        assert_eq!(
            m.node(&["sources", "txns"]).unwrap().key,
            Some(Location::new(3, 3))
        );
        assert_eq!(
            m.value(&["sources", "txns", "type"]),
            Some(Location::new(3, 17))
        );
        assert_eq!(
            m.value(&["sources", "txns", "seed"]),
            Some(Location::new(3, 34))
        );
        assert_eq!(
            m.value(&["transforms", "big", "inputs", "0"]),
            Some(Location::new(6, 14))
        );
        assert_eq!(
            m.value(&["transforms", "big", "inputs", "1"]),
            Some(Location::new(6, 20))
        );
        assert_eq!(
            m.nearest_value(&["transforms", "big", "nope", "x"]),
            m.value(&["transforms", "big"])
        );
        assert_eq!(
            m.position_in_value(text, &["transforms", "big", "query"], 2, 6),
            Some(Location::new(9, 12))
        );
        assert_eq!(
            m.position_in_value(text, &["sources", "txns", "type"], 1, 3),
            Some(Location::new(3, 19))
        );
        let found = m.find_key_under(&p(&["transforms"]), "query").unwrap();
        assert_eq!(found.path, p(&["transforms", "big", "query"]));
        let found = m.find_scalar_under(&p(&["transforms"]), "other").unwrap();
        assert_eq!(found.path, p(&["transforms", "big", "inputs", "1"]));
    }

    #[test]
    fn duplicate_keys_are_found_at_the_second_key() {
        let text = "sources:\n  txns: {type: generator}\n  other: 1\n  txns: {type: generator}\n";
        let (_, dup) = PositionMap::build(text);
        let dup = dup.unwrap();
        assert_eq!(dup.key, "txns");
        assert_eq!(dup.map, p(&["sources"]));
        assert_eq!(dup.first, Location::new(2, 3));
        assert_eq!(dup.second, Location::new(4, 3));
    }

    #[test]
    fn complex_keys_and_aliases_do_not_confuse_paths() {
        let text = "a: &x {b: 1}\n? [k1, k2]\n: v\nc: *x\nd: [1, {e: 2}]\n";
        let (m, dup) = PositionMap::build(text);
        assert!(dup.is_none());
        assert_eq!(m.value(&["c"]), Some(Location::new(4, 4)));
        assert_eq!(m.value(&["d", "1", "e"]), Some(Location::new(5, 12)));
    }
}
