//! A PyYAML-compatible YAML loader built on saphyr-parser's event stream.
//!
//! PaaSTA reads soa-configs with PyYAML's `CSafeLoader`, so this composer
//! reproduces what matters for byte-identical resources: YAML 1.1 scalar
//! typing ([`super::scalar`]), anchors and aliases, `<<` merge keys (a map or
//! a list of maps, explicit keys win, earlier sources win), duplicate keys
//! (the last value wins, the first position stays), Python key equality
//! (`1`, `1.0` and `true` are the same key) and "one document per file".
//!
//! Every node keeps its line and column for error messages. Limits on nesting
//! depth, alias expansion, node count and document size keep a hostile file
//! from taking the process down.

use super::scalar::{self, Scalar, ScalarError};
use super::yaml_subset;
use crate::value::Text;
use saphyr_parser::{Event, Parser, ScalarStyle, Span, Tag};
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::rc::Rc;

/// A position in a file: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, PartialOrd, Ord)]
pub struct Mark {
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Mark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

impl Mark {
    fn from_span(span: &Span) -> Self {
        Mark {
            line: span.start.line(),
            column: span.start.col() + 1,
        }
    }
}

/// A loaded YAML node with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: NodeValue,
    pub mark: Mark,
}

/// The Python value PyYAML would construct.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeValue {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(Text),
    /// A YAML 1.1 timestamp (a Python `date`/`datetime`), kept as written.
    Timestamp(String),
    Seq(Vec<Node>),
    Map(Mapping),
}

impl NodeValue {
    /// A short name of the type, for error messages.
    #[must_use]
    pub fn type_name(&self) -> &'static str {
        match self {
            NodeValue::Null => "null",
            NodeValue::Bool(_) => "boolean",
            NodeValue::Int(_) => "integer",
            NodeValue::Float(_) => "float",
            NodeValue::Str(_) => "string",
            NodeValue::Timestamp(_) => "timestamp",
            NodeValue::Seq(_) => "sequence",
            NodeValue::Map(_) => "mapping",
        }
    }
}

/// A Python dict: unique keys (by Python equality), insertion order.
///
/// Its entries are shared between clones until one of them changes (copy on
/// write): an anchor and every alias to it are one mapping, and only what is
/// used is ever copied (merging copies one level, converting to a value the
/// rest), not templates or merged keys that get overridden.
#[derive(Debug, Clone, Default)]
pub struct Mapping(Rc<Entries>);

/// Small mappings (nearly all of them) find keys by a linear scan, which
/// needs no allocation; a mapping that grows past [`INDEX_FROM`] entries gets
/// a hash index so that hostile files with huge mappings stay linear.
#[derive(Debug, Clone, Default)]
struct Entries {
    entries: Vec<(Node, Node)>,
    index: Option<HashMap<KeyId, usize>>,
}

impl Mapping {
    /// An empty mapping with room for `capacity` pairs.
    #[must_use]
    pub fn with_capacity(capacity: usize) -> Self {
        Mapping(Rc::new(Entries::with_capacity(capacity)))
    }

    /// The mapping that inserting the `len` pairs one by one makes.
    fn from_pairs(pairs: impl Iterator<Item = (Node, Node)>, len: usize) -> Self {
        Mapping(Rc::new(Entries::from_pairs(pairs, len)))
    }

    /// Inserts like a Python dict: a repeated key keeps its first position and
    /// takes the new value.
    pub fn insert(&mut self, key: Node, value: Node) {
        Rc::make_mut(&mut self.0).insert(key, value);
    }

    /// The value under the string key `key`.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&Node> {
        let position = self.0.position(KeyRef::Str(key))?;
        Some(&self.0.entries[position].1)
    }

    /// The key node and value under the string key `key`.
    #[must_use]
    pub fn get_entry(&self, key: &str) -> Option<(&Node, &Node)> {
        let position = self.0.position(KeyRef::Str(key))?;
        let (k, v) = &self.0.entries[position];
        Some((k, v))
    }

    /// Entries in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&Node, &Node)> {
        self.0.entries.iter().map(|(k, v)| (k, v))
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.0.entries.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.entries.is_empty()
    }

    /// The entries, in insertion order: moved out when this is the only
    /// holder, else copied (one level: nested mappings stay shared).
    #[must_use]
    pub fn into_entries(self) -> Vec<(Node, Node)> {
        Rc::try_unwrap(self.0).map_or_else(|shared| shared.entries.clone(), |own| own.entries)
    }
}

impl Entries {
    fn with_capacity(capacity: usize) -> Self {
        Entries {
            entries: Vec::with_capacity(capacity),
            index: None,
        }
    }

    /// The mapping that inserting the `len` pairs one by one makes.
    ///
    /// Few enough pairs for a linear scan are compared by a fingerprint of
    /// their keys first, so that telling two keys apart (nearly every time)
    /// costs one integer comparison rather than a string comparison.
    fn from_pairs(pairs: impl Iterator<Item = (Node, Node)>, len: usize) -> Self {
        let mut mapping = Entries::with_capacity(len);
        if len >= INDEX_FROM {
            for (key, value) in pairs {
                mapping.insert(key, value);
            }
            return mapping;
        }
        let mut prints = [0u64; INDEX_FROM];
        for (key, value) in pairs {
            let print = key_fingerprint(&key.value);
            let key_ref = KeyRef::of(&key.value);
            let kept = mapping.entries.len();
            let same = (0..kept).find(|&index| {
                prints[index] == print && KeyRef::of(&mapping.entries[index].0.value).same(key_ref)
            });
            match same {
                Some(index) => mapping.entries[index].1 = value,
                None => {
                    prints[kept] = print;
                    mapping.entries.push((key, value));
                }
            }
        }
        mapping
    }
}

/// Equal keys have equal fingerprints. A string's is its first seven bytes
/// and the low byte of its length; every other key's is `u64::MAX`, which no string's can be
/// (UTF-8 has no byte 0xFF), so those are always compared in full.
fn key_fingerprint(key: &NodeValue) -> u64 {
    let NodeValue::Str(text) = key else {
        return u64::MAX;
    };
    let bytes = text.as_bytes();
    let mut print = [0u8; 8];
    match bytes.first_chunk::<8>() {
        Some(eight) => print = *eight,
        None => {
            for (slot, byte) in print.iter_mut().zip(bytes) {
                *slot = *byte;
            }
        }
    }
    // Only the low byte of the length: the fingerprint sorts out unequal
    // keys cheaply, it does not decide equality.
    #[allow(clippy::cast_possible_truncation)]
    {
        print[7] = bytes.len() as u8;
    }
    u64::from_le_bytes(print)
}

impl PartialEq for Mapping {
    fn eq(&self, other: &Self) -> bool {
        self.0.entries == other.0.entries
    }
}

/// Entry count from which a mapping keeps a hash index of its keys.
const INDEX_FROM: usize = 16;

/// Python dict-key identity: `1 == 1.0 == True`, NaN is never equal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum KeyId {
    Null,
    Number(i128),
    FloatBits(u64),
    Str(String),
    Timestamp(String),
    SharedNan,
    Unique(usize),
}

/// [`KeyId`] without allocation, for the linear scan of small mappings.
#[derive(Debug, Clone, Copy)]
enum KeyRef<'k> {
    Null,
    Number(i128),
    FloatBits(u64),
    Str(&'k str),
    Timestamp(&'k str),
    SharedNan,
    /// Equal to no other key (a fresh NaN, an unhashable key).
    Unique,
}

impl KeyRef<'_> {
    fn of(value: &NodeValue) -> KeyRef<'_> {
        match value {
            NodeValue::Null => KeyRef::Null,
            NodeValue::Bool(b) => KeyRef::Number(i128::from(*b)),
            NodeValue::Int(i) => KeyRef::Number(*i),
            // PyYAML's `.nan` is one shared object (equal to itself as a key);
            // `float("nan")` from a `!!float` tag is a fresh one each time.
            NodeValue::Float(f) if f.is_nan() && f.to_bits() != scalar::FRESH_NAN_BITS => {
                KeyRef::SharedNan
            }
            NodeValue::Float(f) if f.is_nan() => KeyRef::Unique,
            #[allow(clippy::cast_possible_truncation)]
            NodeValue::Float(f) if f.fract() == 0.0 && f.abs() < 1e30 => KeyRef::Number(*f as i128),
            NodeValue::Float(f) => KeyRef::FloatBits(f.to_bits()),
            NodeValue::Str(s) => KeyRef::Str(s),
            NodeValue::Timestamp(s) => KeyRef::Timestamp(s),
            // Unhashable keys are rejected before they get here.
            NodeValue::Seq(_) | NodeValue::Map(_) => KeyRef::Unique,
        }
    }

    fn same(self, other: KeyRef<'_>) -> bool {
        match (self, other) {
            (KeyRef::Null, KeyRef::Null) | (KeyRef::SharedNan, KeyRef::SharedNan) => true,
            (KeyRef::Number(a), KeyRef::Number(b)) => a == b,
            (KeyRef::FloatBits(a), KeyRef::FloatBits(b)) => a == b,
            (KeyRef::Str(a), KeyRef::Str(b)) | (KeyRef::Timestamp(a), KeyRef::Timestamp(b)) => {
                a == b
            }
            _ => false,
        }
    }

    /// The owned id of the key at `position`.
    fn id(self, position: usize) -> KeyId {
        match self {
            KeyRef::Null => KeyId::Null,
            KeyRef::Number(n) => KeyId::Number(n),
            KeyRef::FloatBits(bits) => KeyId::FloatBits(bits),
            KeyRef::Str(s) => KeyId::Str(s.to_owned()),
            KeyRef::Timestamp(s) => KeyId::Timestamp(s.to_owned()),
            KeyRef::SharedNan => KeyId::SharedNan,
            KeyRef::Unique => KeyId::Unique(position),
        }
    }
}

impl Entries {
    /// The position of the key equal (as a Python dict key) to `key`.
    fn position(&self, key: KeyRef<'_>) -> Option<usize> {
        if matches!(key, KeyRef::Unique) {
            return None;
        }
        if let Some(index) = &self.index {
            return index.get(&key.id(usize::MAX)).copied();
        }
        // The common case: a string key only ever equals a string key.
        if let KeyRef::Str(text) = key {
            return self.entries.iter().position(
                |(k, _)| matches!(&k.value, NodeValue::Str(other) if other.as_str() == text),
            );
        }
        self.entries
            .iter()
            .position(|(k, _)| key.same(KeyRef::of(&k.value)))
    }

    /// See [`Mapping::insert`].
    fn insert(&mut self, key: Node, value: Node) {
        let key_ref = KeyRef::of(&key.value);
        if let Some(position) = self.position(key_ref) {
            self.entries[position].1 = value;
            return;
        }
        let position = self.entries.len();
        if let Some(index) = &mut self.index {
            index.insert(key_ref.id(position), position);
        } else if position + 1 >= INDEX_FROM {
            let mut index: HashMap<KeyId, usize> = self
                .entries
                .iter()
                .enumerate()
                .map(|(i, (k, _))| (KeyRef::of(&k.value).id(i), i))
                .collect();
            index.insert(key_ref.id(position), position);
            self.index = Some(index);
        }
        self.entries.push((key, value));
    }
}

/// Bounds on what one file may make the loader do (the `limits` section of
/// `flink-gitops.yaml`). PyYAML has none; a file over a limit fails only its
/// service, which is then unknown and never pruned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Deepest nesting of sequences and mappings.
    pub max_depth: usize,
    /// Total nodes that aliases may copy into the document ("billion laughs").
    pub max_alias_nodes: usize,
    /// Largest file accepted, in bytes (also bounds `deployments.json`).
    pub max_document_bytes: usize,
    /// Longest scalar accepted, in bytes of its source text.
    pub max_scalar_bytes: usize,
    /// Most nodes (scalars, sequences, mappings, aliases) written in one
    /// file. The byte limit alone does not bound memory: a flow list item
    /// takes two bytes (`a,`) in the file but well over a hundred once
    /// loaded, converted and rendered, so a 6 MB file of 3 million items
    /// took over 500 MB. Copies made by aliases count toward
    /// `max_alias_nodes` instead.
    pub max_nodes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 128,
            max_alias_nodes: 100_000,
            max_document_bytes: 8 * 1024 * 1024,
            max_scalar_bytes: 1024 * 1024,
            // The largest soa-configs file we know of has a few hundred nodes
            // (docs/memory.md); 100,000 keeps a file's tree to a few MB.
            max_nodes: 100_000,
        }
    }
}

/// Why a file could not be loaded, with the position of the problem.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{mark}: {message}")]
pub struct LoadError {
    pub mark: Mark,
    pub message: String,
}

impl LoadError {
    fn new(mark: Mark, message: impl Into<String>) -> Self {
        LoadError {
            mark,
            message: message.into(),
        }
    }
}

/// Loads a single-document YAML file. An empty stream is `None`, like PyYAML.
pub fn load(text: &str, limits: &Limits) -> Result<Option<Node>, LoadError> {
    check_size(text, limits)?;
    // The fast path takes only printable ASCII, so the character check is
    // only needed when it gives up.
    // A file over `max_nodes` makes the fast path give up, and
    // saphyr-parser's events then reach the same error below.
    let events = match yaml_subset::events(text, limits.max_nodes) {
        Some(events) => Events::Scanned(events.into_iter(), text),
        None => {
            check_characters(text)?;
            Events::Parser(Box::new(Parser::new_from_str(text)))
        }
    };
    compose(events, limits)
}

/// [`load`] without the fast path: every file through saphyr-parser. The
/// reference the fast path is tested against.
#[doc(hidden)]
pub fn load_with_saphyr(text: &str, limits: &Limits) -> Result<Option<Node>, LoadError> {
    check_size(text, limits)?;
    check_characters(text)?;
    compose(Events::Parser(Box::new(Parser::new_from_str(text))), limits)
}

/// The result of [`load`] as text: every value with its position, floats by
/// their bits (a NaN is never equal to itself), mappings without their hash
/// index (whose order is random). Two loads are the same when their texts
/// are; the fast path's tests and fuzz target compare with it.
#[doc(hidden)]
#[must_use]
pub fn canonical_text(loaded: &Result<Option<Node>, LoadError>) -> String {
    fn write_node(node: &Node, out: &mut String) {
        use std::fmt::Write;
        match &node.value {
            NodeValue::Float(f) => {
                let _ = write!(out, "float {:x}", f.to_bits());
            }
            NodeValue::Seq(items) => {
                out.push('[');
                for item in items {
                    write_node(item, out);
                    out.push(',');
                }
                out.push(']');
            }
            NodeValue::Map(mapping) => {
                out.push('{');
                for (key, value) in mapping.iter() {
                    write_node(key, out);
                    out.push_str(": ");
                    write_node(value, out);
                    out.push(',');
                }
                out.push('}');
            }
            other => {
                let _ = write!(out, "{other:?}");
            }
        }
        let _ = write!(out, "@{} ", node.mark);
    }
    match loaded {
        Ok(Some(root)) => {
            let mut out = String::new();
            write_node(root, &mut out);
            out
        }
        other => format!("{other:?}"),
    }
}

/// Whether [`load`] takes the fast path for `text` (for tests and benchmarks
/// that must not quietly measure the slow one).
#[doc(hidden)]
#[must_use]
pub fn takes_fast_path(text: &str) -> bool {
    takes_fast_path_with(text, &Limits::default())
}

/// [`takes_fast_path`] under `limits` (a file over `max_nodes` does not).
#[doc(hidden)]
#[must_use]
pub fn takes_fast_path_with(text: &str, limits: &Limits) -> bool {
    yaml_subset::events(text, limits.max_nodes).is_some()
}

fn compose(events: Events<'_>, limits: &Limits) -> Result<Option<Node>, LoadError> {
    let mut composer = Composer {
        events,
        anchors: HashMap::new(),
        alias_nodes: 0,
        nodes: 0,
        limits: *limits,
        pending_items: Vec::new(),
        pending_pairs: Vec::new(),
    };
    composer.stream()
}

/// Where the composer's events come from: the fast path's list, or
/// saphyr-parser for everything outside the subset.
enum Events<'a> {
    Scanned(std::vec::IntoIter<yaml_subset::Scanned>, &'a str),
    /// Boxed: the parser is large and the fast path is the common case.
    Parser(Box<Parser<'a, saphyr_parser::StrInput<'a>>>),
}

fn check_size(text: &str, limits: &Limits) -> Result<(), LoadError> {
    if text.len() > limits.max_document_bytes {
        return Err(LoadError::new(
            Mark { line: 1, column: 1 },
            format!(
                "the file is {} bytes, over {} bytes (limit max_document_bytes)",
                text.len(),
                limits.max_document_bytes
            ),
        ));
    }
    Ok(())
}

/// Whether every byte of `text` is `allowed`: one pass in blocks without an
/// early exit inside, which the compiler vectorises (nearly every file is
/// printable ASCII, so the pass nearly always runs to the end).
#[inline]
pub(super) fn every_byte(text: &str, allowed: impl Fn(u8) -> bool) -> bool {
    text.as_bytes()
        .chunks(64)
        .all(|block| block.iter().fold(true, |ok, &b| ok & allowed(b)))
}

/// libyaml's reader refuses characters outside YAML's printable set (C0
/// controls other than tab and line breaks, DEL, C1 controls other than NEL,
/// surrogates, U+FFFE/U+FFFF); PyYAML fails on such files, so we do too.
fn check_characters(text: &str) -> Result<(), LoadError> {
    let printable_ascii = every_byte(text, |b| {
        (b' '..=b'~').contains(&b) | matches!(b, b'\t' | b'\n' | b'\r')
    });
    if printable_ascii {
        return Ok(());
    }
    let mut line = 1;
    let mut column = 1;
    for c in text.chars() {
        let printable = matches!(c,
            '\t' | '\n' | '\r' | ' '..='~' | '\u{85}' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..);
        if !printable {
            return Err(LoadError::new(
                Mark { line, column },
                format!(
                    "the character U+{:04X} is not allowed in YAML",
                    u32::from(c)
                ),
            ));
        }
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    Ok(())
}

struct Composer<'a> {
    events: Events<'a>,
    /// Anchor id to the node it names and the node count of that node.
    anchors: HashMap<usize, (Node, usize)>,
    alias_nodes: usize,
    /// Nodes composed so far, each alias counting one (see `max_nodes`).
    nodes: usize,
    limits: Limits,
    /// The items of the sequences being built, innermost last: a sequence
    /// takes exactly its own items at its end (one allocation of the right
    /// size, not a vector doubling as it grows).
    pending_items: Vec<Node>,
    /// The explicit pairs of the mappings being built, the same way.
    pending_pairs: Vec<(Node, Node)>,
}

/// An event and where it starts (the span is not kept: it is three times
/// the size, and events are moved a lot).
type Next<'a> = (Event<'a>, Mark);

impl<'a> Composer<'a> {
    fn next(&mut self) -> Result<Next<'a>, LoadError> {
        let parser = match &mut self.events {
            Events::Scanned(events, text) => {
                return events.next().map(|event| event.event(text)).ok_or_else(|| {
                    LoadError::new(Mark::default(), "unexpected end of the YAML stream")
                });
            }
            Events::Parser(parser) => parser,
        };
        match parser.next_event() {
            Some(Ok((event, span))) => Ok((event, Mark::from_span(&span))),
            Some(Err(e)) => Err(LoadError::new(
                Mark {
                    line: e.marker().line(),
                    column: e.marker().col() + 1,
                },
                e.info().to_owned(),
            )),
            None => Err(LoadError::new(
                Mark::default(),
                "unexpected end of the YAML stream",
            )),
        }
    }

    fn stream(&mut self) -> Result<Option<Node>, LoadError> {
        let mut document: Option<Node> = None;
        loop {
            let (event, mark) = self.next()?;
            match event {
                Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
                Event::StreamEnd => return Ok(document),
                Event::DocumentStart(_) => {
                    if document.is_some() {
                        return Err(LoadError::new(
                            mark,
                            "expected a single document in the file, found another one here",
                        ));
                    }
                    let (event, mark) = self.next()?;
                    let (node, _) = self.value_node(event, mark, 0)?;
                    document = Some(node);
                }
                other => {
                    return Err(LoadError::new(
                        mark,
                        format!("unexpected YAML event {other:?}"),
                    ));
                }
            }
        }
    }

    /// Builds a node in value position (not a mapping key).
    fn value_node(
        &mut self,
        event: Event<'a>,
        mark: Mark,
        depth: usize,
    ) -> Result<(Node, usize), LoadError> {
        let (node, count, role) = self.node(event, mark, depth)?;
        match role {
            Role::Ordinary => Ok((node, count)),
            Role::Merge => Err(LoadError::new(
                mark,
                "could not determine a constructor for the tag 'tag:yaml.org,2002:merge' (`<<` is only a merge key)",
            )),
            Role::ValueKey => Err(LoadError::new(
                mark,
                "could not determine a constructor for the tag 'tag:yaml.org,2002:value' (a plain `=`; quote it)",
            )),
        }
    }

    /// Builds the node starting with `event`; returns it, its node count and
    /// whether it is a special key (`<<`, `=`).
    fn node(
        &mut self,
        event: Event<'a>,
        mark: Mark,
        depth: usize,
    ) -> Result<(Node, usize, Role), LoadError> {
        if matches!(
            event,
            Event::Alias(_)
                | Event::Scalar(..)
                | Event::SequenceStart(..)
                | Event::MappingStart(..)
        ) {
            self.count_node(mark)?;
        }
        match event {
            Event::Alias(id) => {
                let (node, count) = self
                    .anchors
                    .get(&id)
                    .cloned()
                    .ok_or_else(|| LoadError::new(mark, "alias to an unknown anchor"))?;
                self.alias_nodes += count;
                if self.alias_nodes > self.limits.max_alias_nodes {
                    return Err(LoadError::new(
                        mark,
                        format!(
                            "aliases expand to more than {} nodes (limit max_alias_nodes)",
                            self.limits.max_alias_nodes
                        ),
                    ));
                }
                Ok((node, count, Role::Ordinary))
            }
            Event::Scalar(text, style, anchor, tag) => {
                if text.len() > self.limits.max_scalar_bytes {
                    return Err(LoadError::new(
                        mark,
                        format!(
                            "a scalar of {} bytes, over {} bytes (limit max_scalar_bytes)",
                            text.len(),
                            self.limits.max_scalar_bytes
                        ),
                    ));
                }
                let (value, role) = scalar_value(text, style, tag.as_deref())
                    .map_err(|e| LoadError::new(mark, e.to_string()))?;
                let node = Node { value, mark };
                self.remember(anchor, &node, 1);
                Ok((node, 1, role))
            }
            Event::SequenceStart(anchor, tag) => {
                let pairs = matches!(
                    tag.as_deref().map(tag_kind),
                    Some(TagKind::Core("omap" | "pairs"))
                );
                if !pairs {
                    check_collection_tag(tag.as_deref(), "seq", mark)?;
                }
                self.check_depth(depth, mark)?;
                let start = self.pending_items.len();
                let mut count = 1;
                loop {
                    let (event, mark) = self.next()?;
                    if matches!(event, Event::SequenceEnd) {
                        break;
                    }
                    let (item, item_count) = self.value_node(event, mark, depth + 1)?;
                    count += item_count;
                    self.pending_items.push(item);
                }
                let mut items: Vec<Node> = self.pending_items.drain(start..).collect();
                if pairs {
                    items = items.into_iter().map(into_pair).collect::<Result<_, _>>()?;
                }
                let node = Node {
                    value: NodeValue::Seq(items),
                    mark,
                };
                self.remember(anchor, &node, count);
                Ok((node, count, Role::Ordinary))
            }
            Event::MappingStart(anchor, tag) => {
                check_collection_tag(tag.as_deref(), "map", mark)?;
                self.check_depth(depth, mark)?;
                let (mapping, count) = self.mapping(depth)?;
                let node = Node {
                    value: NodeValue::Map(mapping),
                    mark,
                };
                self.remember(anchor, &node, count);
                Ok((node, count, Role::Ordinary))
            }
            other => Err(LoadError::new(
                mark,
                format!("unexpected YAML event {other:?}"),
            )),
        }
    }

    /// Counts one more node, failing on the first one over `max_nodes`: a
    /// huge file stops here, before the rest of it is parsed or built.
    fn count_node(&mut self, mark: Mark) -> Result<(), LoadError> {
        self.nodes += 1;
        if self.nodes > self.limits.max_nodes {
            return Err(LoadError::new(
                mark,
                format!(
                    "the file has {} nodes by here, over {} nodes (limit max_nodes)",
                    self.nodes, self.limits.max_nodes
                ),
            ));
        }
        Ok(())
    }

    fn check_depth(&self, depth: usize, mark: Mark) -> Result<(), LoadError> {
        if depth >= self.limits.max_depth {
            return Err(LoadError::new(
                mark,
                format!(
                    "nesting is deeper than {} levels (limit max_depth)",
                    self.limits.max_depth
                ),
            ));
        }
        Ok(())
    }

    fn remember(&mut self, anchor: usize, node: &Node, count: usize) {
        if anchor != 0 {
            self.anchors.insert(anchor, (node.clone(), count));
        }
    }

    /// Reads key/value pairs up to `MappingEnd` and applies PyYAML's merge rules.
    fn mapping(&mut self, depth: usize) -> Result<(Mapping, usize), LoadError> {
        let mut merged: Vec<(Node, Node)> = Vec::new();
        // The explicit pairs wait in `pending_pairs` and are inserted after
        // the merged pairs, which is PyYAML's order (an explicit key wins,
        // keeping its first position when it repeats).
        let start = self.pending_pairs.len();
        let mut count = 1;
        loop {
            let (event, mark) = self.next()?;
            if matches!(event, Event::MappingEnd) {
                break;
            }
            let key_mark = mark;
            let (key, key_count, role) = self.node(event, mark, depth + 1)?;
            let (event, mark) = self.next()?;
            let (value, value_count) = self.value_node(event, mark, depth + 1)?;
            count += key_count + value_count;
            if role == Role::Merge {
                merged.extend(merge_sources(value)?);
                continue;
            }
            if matches!(key.value, NodeValue::Seq(_) | NodeValue::Map(_)) {
                return Err(LoadError::new(
                    key_mark,
                    format!(
                        "found an unhashable key (a {}); keys must be scalars",
                        key.value.type_name()
                    ),
                ));
            }
            self.pending_pairs.push((key, value));
        }
        let explicit = self.pending_pairs.drain(start..);
        let len = merged.len() + explicit.len();
        Ok((
            Mapping::from_pairs(merged.into_iter().chain(explicit), len),
            count,
        ))
    }
}

/// The pairs a `<<` value contributes, in the order PyYAML puts them before
/// the explicit pairs: for a list, the last mapping first, so that earlier
/// mappings win.
fn merge_sources(value: Node) -> Result<Vec<(Node, Node)>, LoadError> {
    match value.value {
        NodeValue::Map(mapping) => Ok(mapping.into_entries()),
        NodeValue::Seq(items) => {
            let mut pairs = Vec::new();
            for item in items.into_iter().rev() {
                match item.value {
                    NodeValue::Map(mapping) => pairs.extend(mapping.into_entries()),
                    other => {
                        return Err(LoadError::new(
                            item.mark,
                            format!(
                                "expected a mapping for merging, but found a {}",
                                other.type_name()
                            ),
                        ));
                    }
                }
            }
            Ok(pairs)
        }
        other => Err(LoadError::new(
            value.mark,
            format!(
                "expected a mapping or list of mappings for merging, but found a {}",
                other.type_name()
            ),
        )),
    }
}

/// One item of a `!!omap`/`!!pairs` sequence, a one-key mapping, becomes a
/// `[key, value]` pair (PyYAML builds a list of tuples).
fn into_pair(item: Node) -> Result<Node, LoadError> {
    let mark = item.mark;
    match item.value {
        NodeValue::Map(mapping) if mapping.len() == 1 => {
            let mut entries = mapping.into_entries();
            let (key, value) = entries.remove(0);
            Ok(Node {
                value: NodeValue::Seq(vec![key, value]),
                mark,
            })
        }
        other => Err(LoadError::new(
            mark,
            format!(
                "expected a mapping of length 1 in an ordered map or pairs, but found a {}",
                other.type_name()
            ),
        )),
    }
}

/// What a scalar means beyond its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Ordinary,
    /// `<<`: merges when it is a key, an error elsewhere.
    Merge,
    /// `=`: the string `=` when it is a key, an error elsewhere.
    ValueKey,
}

/// A tag as PyYAML sees it: `!` (non-specific), a core-schema type
/// (`!!int`, `!<tag:yaml.org,2002:int>`), or anything else.
enum TagKind<'t> {
    NonSpecific,
    Core(&'t str),
    Other(String),
}

const CORE_PREFIX: &str = "tag:yaml.org,2002:";

fn tag_kind(tag: &Tag) -> TagKind<'_> {
    if tag.is_yaml_core_schema() {
        return TagKind::Core(tag.suffix.as_str());
    }
    if tag.handle.is_empty() {
        if tag.suffix == "!" {
            return TagKind::NonSpecific;
        }
        if let Some(core) = tag.suffix.strip_prefix(CORE_PREFIX) {
            return TagKind::Core(core);
        }
    }
    if tag.handle == "!" && tag.suffix.is_empty() {
        return TagKind::NonSpecific;
    }
    TagKind::Other(format!("{}{}", tag.handle, tag.suffix))
}

fn check_collection_tag(tag: Option<&Tag>, expected: &str, mark: Mark) -> Result<(), LoadError> {
    let Some(tag) = tag else {
        return Ok(());
    };
    match tag_kind(tag) {
        TagKind::NonSpecific => Ok(()),
        TagKind::Core(core) if core == expected => Ok(()),
        TagKind::Core(core) => Err(LoadError::new(
            mark,
            format!(
                "could not determine a constructor for the tag '{CORE_PREFIX}{core}' on a {expected}"
            ),
        )),
        TagKind::Other(name) => Err(LoadError::new(
            mark,
            format!("could not determine a constructor for the tag '{name}'"),
        )),
    }
}

/// A `!`-tagged block scalar keeps its final newline, and Python's `$`
/// matches before it, so PyYAML resolves `"12\n"` as 12 (and `int()` ignores
/// the newline); a boolean then fails its lookup, as in PyYAML.
fn resolve_non_specific(text: &str) -> Result<Scalar, ScalarError> {
    let Some(stripped) = text.strip_suffix('\n') else {
        return scalar::resolve_plain(text);
    };
    match scalar::resolve_plain(stripped)? {
        Scalar::Bool(_) => Err(ScalarError::BadTaggedValue {
            text: text.to_owned(),
            tag: "bool (PyYAML fails on the trailing newline)",
        }),
        Scalar::Str(_) => Ok(Scalar::Str(Text::new(text))),
        other => Ok(other),
    }
}

/// The scalar's text, inline when short, else in an allocation of exactly
/// its length. saphyr-parser's owned scalars keep a lot of spare capacity (a
/// plain scalar reserves its read-ahead buffer): kept in the tree, that spare
/// room would stay allocated until the resources are written.
fn exact_text(text: Cow<'_, str>) -> Text {
    match text {
        Cow::Owned(owned) if owned.capacity() == owned.len() => Text::from(owned),
        other => Text::new(other.as_ref()),
    }
}

fn scalar_value(
    text: Cow<'_, str>,
    style: ScalarStyle,
    tag: Option<&Tag>,
) -> Result<(NodeValue, Role), ScalarError> {
    let scalar = match tag.map(tag_kind) {
        // libyaml resolves a `!`-tagged scalar like a plain one, whatever its
        // style, except an empty node, which is the empty string.
        Some(TagKind::NonSpecific) if style == ScalarStyle::Plain && text.is_empty() => {
            Scalar::Str(Text::default())
        }
        Some(TagKind::NonSpecific) => resolve_non_specific(&text)?,
        Some(TagKind::Core(core)) => scalar::construct_tagged(core, &text)?,
        Some(TagKind::Other(name)) => {
            return Err(ScalarError::BadTaggedValue {
                text: format!("{name} {text}"),
                tag: "tag PyYAML's SafeLoader knows",
            });
        }
        None if style == ScalarStyle::Plain => scalar::resolve_plain(&text)?,
        None => Scalar::Str(exact_text(text)),
    };
    Ok(match scalar {
        Scalar::Null => (NodeValue::Null, Role::Ordinary),
        Scalar::Bool(b) => (NodeValue::Bool(b), Role::Ordinary),
        Scalar::Int(i) => (NodeValue::Int(i), Role::Ordinary),
        Scalar::Float(f) => (NodeValue::Float(f), Role::Ordinary),
        Scalar::Str(s) => (NodeValue::Str(s), Role::Ordinary),
        Scalar::Timestamp(s) => (NodeValue::Timestamp(s), Role::Ordinary),
        Scalar::Merge => (NodeValue::Str("<<".into()), Role::Merge),
        Scalar::ValueKey => (NodeValue::Str("=".into()), Role::ValueKey),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_ok(text: &str) -> Node {
        load(text, &Limits::default())
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("empty document"))
    }

    fn map(node: &Node) -> &Mapping {
        match &node.value {
            NodeValue::Map(m) => m,
            other => panic!("not a map: {other:?}"),
        }
    }

    fn keys(node: &Node) -> Vec<String> {
        map(node)
            .iter()
            .map(|(k, _)| match &k.value {
                NodeValue::Str(s) => s.to_string(),
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn empty_file_is_none() {
        assert_eq!(load("", &Limits::default()), Ok(None));
        assert_eq!(load("# only a comment\n", &Limits::default()), Ok(None));
    }

    #[test]
    fn marks_are_one_based() {
        let node = load_ok("a: 1\nb:\n  c: x\n");
        let b = map(&node).get("b").expect("b");
        let c = map(b).get("c").expect("c");
        assert_eq!(c.mark, Mark { line: 3, column: 6 });
    }

    #[test]
    fn merge_keys_explicit_wins_and_earlier_sources_win() {
        let node = load_ok(
            "base: &base {a: 1, b: 1, c: 1}\nmore: &more {b: 2, d: 2}\nx:\n  <<: [*base, *more]\n  c: 3\n",
        );
        let x = map(map(&node).get("x").expect("x"));
        let get = |k: &str| x.get(k).map(|n| n.value.clone());
        assert_eq!(get("a"), Some(NodeValue::Int(1)));
        assert_eq!(
            get("b"),
            Some(NodeValue::Int(1)),
            "earlier merge source wins"
        );
        assert_eq!(get("c"), Some(NodeValue::Int(3)), "explicit key wins");
        assert_eq!(get("d"), Some(NodeValue::Int(2)));
        assert!(x.get("<<").is_none());
    }

    #[test]
    fn merge_is_shallow() {
        let node = load_ok("d: &d {tm: {cpus: 1, mem: 2}}\nx:\n  <<: *d\n  tm: {instances: 3}\n");
        let x = map(map(&node).get("x").expect("x"));
        let tm = x.get("tm").expect("tm");
        assert_eq!(keys(tm), ["instances"]);
    }

    #[test]
    fn quoted_merge_key_is_a_plain_key() {
        let node = load_ok("x: {'<<': 1}\n");
        let x = map(&node).get("x").expect("x");
        assert_eq!(keys(x), ["<<"]);
    }

    #[test]
    fn duplicate_keys_last_value_first_position() {
        let node = load_ok("a: 1\nb: 2\na: 3\n");
        assert_eq!(keys(&node), ["a", "b"]);
        assert_eq!(
            map(&node).get("a").map(|n| n.value.clone()),
            Some(NodeValue::Int(3))
        );
    }

    /// Building a mapping from its pairs at once (with key fingerprints)
    /// gives what inserting them one by one gives, for keys that share a
    /// fingerprint or a prefix, keys of every type, and mappings on both
    /// sides of the size where a hash index takes over.
    #[test]
    fn mapping_from_pairs_is_inserting_one_by_one() {
        let key = |value: NodeValue| Node {
            value,
            mark: Mark::default(),
        };
        let keys = [
            NodeValue::Str("abcdefgX".into()),
            NodeValue::Str("abcdefgY".into()),
            NodeValue::Str("abcdefg".into()),
            NodeValue::Str("abcdefgX".into()),
            NodeValue::Str(String::from_utf8(vec![b'a'; 263]).expect("ascii").into()),
            NodeValue::Str(String::from_utf8(vec![b'a'; 7]).expect("ascii").into()),
            NodeValue::Str("1".into()),
            NodeValue::Str(String::new().into()),
            NodeValue::Int(1),
            NodeValue::Bool(true),
            NodeValue::Float(1.0),
            NodeValue::Null,
            NodeValue::Float(f64::NAN),
            NodeValue::Float(f64::from_bits(scalar::FRESH_NAN_BITS)),
            NodeValue::Float(f64::from_bits(scalar::FRESH_NAN_BITS)),
            NodeValue::Timestamp("2024-01-01".into()),
            NodeValue::Str("2024-01-01".into()),
            NodeValue::Null,
        ];
        for len in [1, 2, 5, keys.len()] {
            for repeat in [1, 2, 3] {
                let pairs: Vec<(Node, Node)> = (0..len * repeat)
                    .map(|i| {
                        #[allow(clippy::cast_possible_wrap)]
                        let value = key(NodeValue::Int(i as i128));
                        (key(keys[(i * 7) % len].clone()), value)
                    })
                    .collect();
                let mut one_by_one = Mapping::default();
                for (k, v) in pairs.clone() {
                    one_by_one.insert(k, v);
                }
                let count = pairs.len();
                let at_once = Mapping::from_pairs(pairs.into_iter(), count);
                // Debug text, as NaN keys are unequal to themselves.
                let entries = |m: &Mapping| format!("{:?}", m.iter().collect::<Vec<_>>());
                assert_eq!(
                    entries(&at_once),
                    entries(&one_by_one),
                    "{len} keys, {repeat} times"
                );
                assert!(
                    at_once.len() < count || repeat == 1,
                    "{len} keys, {repeat} times"
                );
            }
        }
    }

    /// An anchor and its aliases share one mapping until one of them is
    /// changed or taken apart; the others never see it.
    #[test]
    fn aliased_mappings_are_copied_on_write() {
        let node = load_ok("base: &b {x: 1, y: {z: 2}}\none:\n  <<: *b\n  x: 10\ntwo: *b\n");
        let int = |node: Option<&Node>| node.map(|n| n.value.clone());
        let top = map(&node);
        assert_eq!(
            int(map(top.get("one").expect("one")).get("x")),
            Some(NodeValue::Int(10))
        );
        let two = map(top.get("two").expect("two")).clone();
        let mut changed = two.clone();
        changed.insert(
            Node {
                value: NodeValue::Str("x".into()),
                mark: Mark::default(),
            },
            Node {
                value: NodeValue::Int(5),
                mark: Mark::default(),
            },
        );
        assert_eq!(int(changed.get("x")), Some(NodeValue::Int(5)));
        assert_eq!(int(two.get("x")), Some(NodeValue::Int(1)));
        assert_eq!(
            int(map(top.get("base").expect("base")).get("x")),
            Some(NodeValue::Int(1))
        );
        let taken = two.clone().into_entries();
        assert_eq!(taken.len(), 2);
        assert_eq!(two.len(), 2);
        assert_eq!(
            int(map(two.get("y").expect("y")).get("z")),
            Some(NodeValue::Int(2))
        );
    }

    #[test]
    fn python_key_equality_merges_1_and_true() {
        let node = load_ok("1: a\ntrue: b\n1.0: c\n");
        assert_eq!(map(&node).len(), 1);
    }

    #[test]
    fn quoted_scalars_stay_strings() {
        let node = load_ok("a: '010'\nb: \"yes\"\nc: 010\nd: |\n  yes\n");
        let get = |k: &str| map(&node).get(k).map(|n| n.value.clone());
        assert_eq!(get("a"), Some(NodeValue::Str("010".into())));
        assert_eq!(get("b"), Some(NodeValue::Str("yes".into())));
        assert_eq!(get("c"), Some(NodeValue::Int(8)));
        assert_eq!(get("d"), Some(NodeValue::Str("yes\n".into())));
    }

    #[test]
    fn rejects_multiple_documents_unknown_tags_and_unhashable_keys() {
        let limits = Limits::default();
        assert!(load("a: 1\n---\nb: 2\n", &limits).is_err());
        assert!(load("a: !custom 1\n", &limits).is_err());
        assert!(load("? [a]\n: 1\n", &limits).is_err());
        assert!(load("a: !!binary AAAA\n", &limits).is_err());
        assert!(load("a: =\n", &limits).is_err());
        assert!(load("a: <<\n", &limits).is_err());
        assert!(load("a: x\u{1}y\n", &limits).is_err());
    }

    #[test]
    fn syntax_errors_carry_a_position() {
        let err = load("a: 1\nb: {c: 1\n", &Limits::default()).expect_err("unclosed flow map");
        assert!(err.mark.line >= 2, "{err}");
    }

    #[test]
    fn alias_bomb_hits_the_expansion_limit() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x]\n");
        for level in 1..9 {
            let prev = level - 1;
            text.push_str(&format!(
                "a{level}: &a{level} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"
            ));
        }
        let err = load(&text, &Limits::default()).expect_err("bomb");
        assert!(err.message.contains("max_alias_nodes"), "{err}");
    }

    #[test]
    fn deep_nesting_hits_the_depth_limit() {
        let text = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let err = load(&text, &Limits::default()).expect_err("deep");
        assert!(err.message.contains("max_depth"), "{err}");
        // Far deeper input is stopped by the parser itself, still as an error.
        let text = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(load(&text, &Limits::default()).is_err());
    }

    #[test]
    fn oversized_document_is_refused() {
        let limits = Limits {
            max_document_bytes: 10,
            ..Limits::default()
        };
        let err = load("a: 123456789012\n", &limits).expect_err("too big");
        assert!(err.message.contains("max_document_bytes"), "{err}");
        assert_eq!(err.mark, Mark { line: 1, column: 1 });
    }

    #[test]
    fn a_long_scalar_is_refused_where_it_starts() {
        let limits = Limits {
            max_scalar_bytes: 8,
            ..Limits::default()
        };
        assert!(load("a: 12345678\n", &limits).is_ok());
        let err = load("a: 1\nb:\n  c: \"123456789\"\n", &limits).expect_err("long");
        assert!(err.message.contains("max_scalar_bytes"), "{err}");
        assert_eq!(err.mark.line, 3, "{err}");
        // Keys are scalars too.
        let err = load("abcdefghijk: 1\n", &limits).expect_err("long key");
        assert!(err.message.contains("max_scalar_bytes"), "{err}");
    }

    /// `[x, x, …]` with `items` items: `items + 1` nodes on line 1, the last
    /// item at column `3 * items - 1`.
    fn flow_list(items: usize) -> String {
        let mut text = String::with_capacity(3 * items + 2);
        text.push('[');
        for i in 0..items {
            text.push_str(if i == 0 { "x" } else { ", x" });
        }
        text.push_str("]\n");
        text
    }

    #[test]
    fn a_file_over_max_nodes_is_refused_at_the_first_node_over() {
        let limit = Limits::default().max_nodes;
        // The list and `limit - 1` items: exactly at the limit.
        let at = flow_list(limit - 1);
        for loaded in [
            load(&at, &Limits::default()),
            load_with_saphyr(&at, &Limits::default()),
        ] {
            match loaded {
                Ok(Some(Node {
                    value: NodeValue::Seq(items),
                    ..
                })) => assert_eq!(items.len(), limit - 1),
                other => panic!("{:?}", other.map(|_| ())),
            }
        }
        // One more item, and a list of `limit + 1` items.
        for items in [limit, limit + 1] {
            let over = flow_list(items);
            let expected = LoadError::new(
                Mark {
                    line: 1,
                    column: 3 * limit - 1,
                },
                format!(
                    "the file has {} nodes by here, over {limit} nodes (limit max_nodes)",
                    limit + 1
                ),
            );
            assert_eq!(load(&over, &Limits::default()), Err(expected.clone()));
            assert_eq!(load_with_saphyr(&over, &Limits::default()), Err(expected));
        }
    }

    #[test]
    fn max_nodes_counts_keys_collections_and_aliases_but_not_alias_copies() {
        let limits = |max_nodes| Limits {
            max_nodes,
            ..Limits::default()
        };
        // A mapping, two keys, a list of two, an alias: 7 nodes (the alias
        // copies three, which `max_alias_nodes` counts).
        let text = "a: &l [1, 2]\nb: *l\n";
        assert!(load(text, &limits(7)).is_ok());
        let err = load(text, &limits(6)).expect_err("over");
        assert_eq!(err.mark, Mark { line: 2, column: 4 }, "{err}");
        assert!(
            err.message.ends_with("over 6 nodes (limit max_nodes)"),
            "{err}"
        );
        // Block collections, and a file the fast path does not take.
        let text = "a:\n  - 1\n  - 2\nb: |\n  text\n";
        let root = load(text, &limits(7))
            .expect("at the limit")
            .expect("a root");
        let NodeValue::Map(mapping) = root.value else {
            panic!("a mapping");
        };
        let block = mapping.get("b").expect("b").mark;
        let err = load(text, &limits(6)).expect_err("over");
        // The position the loader gives the block scalar itself.
        assert_eq!(err.mark, block, "{err}");
    }

    #[test]
    fn the_fast_path_takes_a_file_at_max_nodes_and_gives_up_over_it() {
        let text = "a:\n  - 1\n  - [2, *x]\n";
        let text = text.replace("*x", "3");
        // A mapping, a key, two lists and three numbers: 7 nodes.
        assert!(yaml_subset::events(&text, 7).is_some());
        assert!(yaml_subset::events(&text, 6).is_none());
        // A file with more content lines than the limit allows is not even
        // split into lines.
        let many = "- a\n".repeat(10);
        assert!(yaml_subset::events(&many, 11).is_some());
        assert!(yaml_subset::events(&many, 4).is_none());
    }

    #[test]
    fn limits_are_configured_with_defaults_for_missing_keys() {
        let limits: Limits = serde_json::from_str(r#"{"max_depth": 4}"#).expect("partial limits");
        assert_eq!(
            limits,
            Limits {
                max_depth: 4,
                ..Limits::default()
            }
        );
        let limits: Limits = serde_json::from_str(r#"{"max_nodes": 4}"#).expect("max_nodes");
        assert_eq!(limits.max_nodes, 4);
        assert!(serde_json::from_str::<Limits>(r#"{"max_items": 4}"#).is_err());
    }
}
