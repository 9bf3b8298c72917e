//! A fast path for the YAML that soa-configs are written in.
//!
//! saphyr-parser is a complete YAML scanner, and it is about half of the time
//! spent rendering a large tree. Nearly every soa-configs file uses only a
//! small block subset: one document of indented mappings and sequences, plain
//! and one-line quoted scalars, anchors, aliases and one-line flow sequences.
//! [`events`] recognises exactly that subset and returns the event stream
//! saphyr-parser would produce for it, with the same positions for every node.
//! On anything else (block scalars, tags, multi-line scalars, escapes, tabs,
//! non-ASCII text, flow mappings, unusual spacing, unknown aliases, errors) it
//! gives up and returns `None`, and the caller parses the file with
//! saphyr-parser as before. The loader's tests compare both paths.
//!
//! It also gives up as soon as the file has more nodes than `max_nodes`
//! (without scanning the rest): saphyr-parser, whose events the composer
//! reads one at a time, then reports the error at the same node. Stopping
//! there keeps the event list of a huge file to the limit's size, and
//! leaving the error to one path keeps the two paths' results the same
//! even when the rest of the line would not have been in the subset.

use super::yaml::{Mark, every_byte};
use saphyr_parser::{Event, ScalarStyle};
use std::borrow::Cow;

/// One event of the fast path, with the position of the node it starts.
/// Scalars are ranges of the text rather than strings: a file's events are
/// written once and read once by the composer, and at 24 bytes (saphyr's
/// event and a position take 80) they stay in the core's fastest cache.
#[derive(Debug, Clone, Copy)]
pub(super) struct Scanned {
    kind: Kind,
    /// The anchor of a node, the anchor an alias names; 0 for none.
    id: u32,
    /// A scalar's text is `text[start..end]`.
    start: u32,
    end: u32,
    line: u32,
    column: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    StreamStart,
    DocumentStart { explicit: bool },
    DocumentEnd,
    StreamEnd,
    Alias,
    Scalar(Style),
    SequenceStart,
    SequenceEnd,
    MappingStart,
    MappingEnd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    Plain,
    SingleQuoted,
    /// Single-quoted with `''` inside, which stands for one `'`.
    SingleQuotedDoubled,
    DoubleQuoted,
}

impl Scanned {
    /// The saphyr-parser event this stands for, and its position.
    #[inline]
    pub(super) fn event<'a>(&self, text: &'a str) -> (Event<'a>, Mark) {
        let id = self.id as usize;
        let event = match self.kind {
            Kind::StreamStart => Event::StreamStart,
            Kind::DocumentStart { explicit } => Event::DocumentStart(explicit),
            Kind::DocumentEnd => Event::DocumentEnd,
            Kind::StreamEnd => Event::StreamEnd,
            Kind::Alias => Event::Alias(id),
            Kind::Scalar(style) => {
                let raw = &text[self.start as usize..self.end as usize];
                let (value, style) = match style {
                    Style::Plain => (Cow::Borrowed(raw), ScalarStyle::Plain),
                    Style::SingleQuoted => (Cow::Borrowed(raw), ScalarStyle::SingleQuoted),
                    Style::SingleQuotedDoubled => (
                        Cow::Owned(raw.replace("''", "'")),
                        ScalarStyle::SingleQuoted,
                    ),
                    Style::DoubleQuoted => (Cow::Borrowed(raw), ScalarStyle::DoubleQuoted),
                };
                Event::Scalar(value, style, id, None)
            }
            Kind::SequenceStart => Event::SequenceStart(id, None),
            Kind::SequenceEnd => Event::SequenceEnd,
            Kind::MappingStart => Event::MappingStart(id, None),
            Kind::MappingEnd => Event::MappingEnd,
        };
        let mark = Mark {
            line: self.line as usize,
            column: self.column as usize,
        };
        (event, mark)
    }
}

/// Nesting deeper than this is left to saphyr-parser (and the composer's
/// `max_depth`), so the recursion here stays shallow on hostile input.
const MAX_DEPTH: usize = 64;

/// Files with more anchors are left to saphyr-parser (a soa-configs file
/// has a handful).
const MAX_ANCHORS: usize = 256;

/// YAML limits an implicit key to 1024 characters; longer keys are left to
/// saphyr-parser, which reports them.
const MAX_KEY_LEN: usize = 1000;

/// The events of `text` when it is in the subset and has at most
/// `max_nodes` nodes, `None` otherwise.
pub(super) fn events(text: &str, max_nodes: usize) -> Option<Vec<Scanned>> {
    // Offsets, lines and columns are kept in 32 bits.
    if u32::try_from(text.len()).is_err() {
        return None;
    }
    // Every content line of the subset but the `---` holds a node or is a
    // `-` (or `- &anchor`) whose item starts on the next line, so a file
    // with more lines than this has more than `max_nodes` nodes.
    let max_lines = max_nodes.saturating_mul(2).saturating_add(2);
    let lines = content_lines(text, max_lines)?;
    // A node makes at most two events (its start and end) and the stream
    // four more: the list is reserved for what the file can need, not more.
    let capacity = (text.len() / 8).min(max_nodes.saturating_mul(2).saturating_add(4));
    let mut scanner = Scanner {
        text,
        lines,
        at: 0,
        events: Vec::with_capacity(capacity),
        anchors: Vec::new(),
        depth: 0,
        nodes: 0,
        max_nodes,
    };
    scanner.stream()?;
    Some(scanner.events)
}

/// A line with content (not blank, not only a comment).
#[derive(Debug, Clone, Copy)]
struct Line {
    /// 1-based line number.
    number: usize,
    /// Byte offset of the line's first byte.
    begin: usize,
    /// Byte offset of the first non-space byte.
    start: usize,
    /// Byte offset of the line break (or the end of the text).
    end: usize,
}

impl Line {
    fn indent(&self) -> usize {
        self.start - self.begin
    }

    fn mark(&self, offset: usize) -> Mark {
        Mark {
            line: self.number,
            column: offset - self.begin + 1,
        }
    }
}

/// Splits `text` into its content lines; `None` when a byte outside the
/// subset appears (tabs, carriage returns, non-ASCII, control characters)
/// or there are more than `max_lines` of them.
fn content_lines(text: &str, max_lines: usize) -> Option<Vec<Line>> {
    if !every_byte(text, |b| (b == b'\n') | (b' '..=b'~').contains(&b)) {
        return None;
    }
    let bytes = text.as_bytes();
    let mut lines = Vec::with_capacity((bytes.len() / 24).min(max_lines));
    let mut begin = 0;
    let mut number = 1;
    while begin < bytes.len() {
        let end = bytes[begin..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(bytes.len(), |p| begin + p);
        let start = bytes[begin..end]
            .iter()
            .position(|&b| b != b' ')
            .map_or(end, |p| begin + p);
        if start < end && bytes[start] != b'#' {
            if lines.len() == max_lines {
                return None;
            }
            lines.push(Line {
                number,
                begin,
                start,
                end,
            });
        }
        begin = end + 1;
        number += 1;
    }
    Some(lines)
}

struct Scanner<'a> {
    text: &'a str,
    lines: Vec<Line>,
    /// Index of the current line in `lines`.
    at: usize,
    events: Vec<Scanned>,
    /// Anchor names and their ids, newest last (a name may be redefined).
    anchors: Vec<(&'a str, usize)>,
    depth: usize,
    /// Node events pushed so far, counted like the composer counts them.
    nodes: usize,
    max_nodes: usize,
}

/// The origin of a document-level event, whose position the composer ignores.
const NO_MARK: Mark = Mark { line: 0, column: 0 };

impl<'a> Scanner<'a> {
    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn stream(&mut self) -> Option<()> {
        let first = *self.lines.first()?;
        let explicit = first.indent() == 0 && self.bytes()[first.start..].starts_with(b"---");
        if explicit {
            self.rest_is_empty(first.start + 3, first.end)?;
            self.at = 1;
        }
        let root = *self.lines.get(self.at)?;
        if self.is_document_marker(&root) {
            return None;
        }
        self.push(Kind::StreamStart, 0, NO_MARK)?;
        self.push(Kind::DocumentStart { explicit }, 0, NO_MARK)?;
        self.block_collection(0, None)?;
        if self.at != self.lines.len() {
            return None;
        }
        self.push(Kind::DocumentEnd, 0, NO_MARK)?;
        self.push(Kind::StreamEnd, 0, NO_MARK)?;
        Some(())
    }

    /// `---`, `...` or a directive at the start of a line.
    fn is_document_marker(&self, line: &Line) -> bool {
        line.indent() == 0
            && (self.bytes()[line.start..line.end].starts_with(b"---")
                || self.bytes()[line.start..line.end].starts_with(b"...")
                || self.bytes()[line.start] == b'%')
    }

    /// Whether only spaces and a comment follow `from` on the line: `Some(true)`
    /// for nothing at all, `Some(false)` for spaces and/or a comment, `None`
    /// for anything else.
    fn rest_is_empty(&self, from: usize, end: usize) -> Option<bool> {
        if from == end {
            return Some(true);
        }
        let rest = &self.bytes()[from..end];
        if rest[0] != b' ' {
            return None;
        }
        match rest.iter().position(|&b| b != b' ') {
            None => Some(false),
            Some(p) if rest[p] == b'#' => Some(false),
            Some(_) => None,
        }
    }

    fn is_dash(&self, line: &Line) -> bool {
        self.bytes()[line.start] == b'-'
            && (line.start + 1 == line.end || self.bytes()[line.start + 1] == b' ')
            && !self.is_document_marker(line)
    }

    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        (self.depth <= MAX_DEPTH).then_some(())
    }

    /// The block collection starting on the current line.
    fn block_collection(&mut self, anchor: usize, anchor_mark: Option<Mark>) -> Option<()> {
        let line = self.lines[self.at];
        if self.is_document_marker(&line) {
            return None;
        }
        if self.is_dash(&line) {
            self.block_sequence(line.indent(), anchor, anchor_mark, false)
        } else {
            self.block_mapping(line.start, anchor, anchor_mark)
        }
    }

    /// A block mapping whose first key starts at `start` on the current line;
    /// its indentation is that key's column.
    fn block_mapping(
        &mut self,
        mut start: usize,
        anchor: usize,
        anchor_mark: Option<Mark>,
    ) -> Option<()> {
        self.enter()?;
        let first = self.lines[self.at];
        let indent = start - first.begin;
        let mark = anchor_mark.unwrap_or_else(|| first.mark(start));
        self.push(Kind::MappingStart, anchor, mark)?;
        loop {
            self.mapping_entry(start, indent)?;
            let Some(next) = self.lines.get(self.at).copied() else {
                break;
            };
            if next.indent() < indent {
                break;
            }
            if next.indent() > indent || self.is_dash(&next) || self.is_document_marker(&next) {
                return None;
            }
            start = next.start;
        }
        self.push(Kind::MappingEnd, 0, NO_MARK)?;
        self.depth -= 1;
        Some(())
    }

    /// One `key: value` of a mapping at `indent`, the key starting at `start`
    /// on the current line; leaves `at` on the line after the value.
    fn mapping_entry(&mut self, start: usize, indent: usize) -> Option<()> {
        let line = self.lines[self.at];
        let key = self.key(start, line.end)?;
        self.scalar(key.text, 0, line.mark(start))?;
        let value = self.skip_spaces(key.colon + 1, line.end);
        if value == line.end || self.bytes()[value] == b'#' {
            self.at += 1;
            return match self.lines.get(self.at).copied() {
                Some(next) if next.indent() > indent => self.block_collection(0, None),
                Some(next) if next.indent() == indent && self.is_dash(&next) => {
                    self.block_sequence(indent, 0, None, true)
                }
                _ => {
                    let mark = line.mark(key.colon);
                    self.scalar(EMPTY, 0, mark)?;
                    Some(())
                }
            };
        }
        self.inline_value(value, indent)
    }

    /// A block sequence whose dashes are at column `indent`. An indentless
    /// sequence (a mapping value at the mapping's own indentation) starts at
    /// its first item, an indented one at its first dash.
    fn block_sequence(
        &mut self,
        indent: usize,
        anchor: usize,
        anchor_mark: Option<Mark>,
        indentless: bool,
    ) -> Option<()> {
        self.enter()?;
        let first = self.lines[self.at];
        let mark = match anchor_mark {
            Some(mark) if !indentless => mark,
            Some(_) => return None,
            None if indentless => {
                let item = self.skip_spaces(first.start + 1, first.end);
                if item == first.end {
                    return None;
                }
                first.mark(item)
            }
            None => first.mark(first.start),
        };
        self.push(Kind::SequenceStart, anchor, mark)?;
        loop {
            self.sequence_item(indent)?;
            let Some(next) = self.lines.get(self.at).copied() else {
                break;
            };
            if next.indent() < indent {
                break;
            }
            if next.indent() > indent {
                return None;
            }
            if !self.is_dash(&next) {
                if indentless {
                    break;
                }
                return None;
            }
        }
        self.push(Kind::SequenceEnd, 0, NO_MARK)?;
        self.depth -= 1;
        Some(())
    }

    /// One `- item` of a sequence whose dashes are at `indent`.
    fn sequence_item(&mut self, indent: usize) -> Option<()> {
        let line = self.lines[self.at];
        let dash = line.start;
        if dash + 1 == line.end {
            self.at += 1;
            return match self.lines.get(self.at).copied() {
                Some(next) if next.indent() > indent => self.block_collection(0, None),
                _ => {
                    self.scalar(EMPTY, 0, line.mark(line.end))?;
                    Some(())
                }
            };
        }
        let item = self.skip_spaces(dash + 1, line.end);
        if item == line.end || self.bytes()[item] == b'#' {
            // Trailing spaces or a comment after an empty item move its
            // position in saphyr-parser; not worth copying.
            return None;
        }
        match self.bytes()[item] {
            b'-' if item + 1 == line.end || self.bytes()[item + 1] == b' ' => None,
            b'&' | b'*' | b'[' | b'{' => self.inline_value(item, indent),
            _ if self.key(item, line.end).is_some() => self.block_mapping(item, 0, None),
            _ => self.inline_value(item, indent),
        }
    }

    /// A value that starts at `start` on the current line, in a collection
    /// at `indent`; leaves `at` on the line after it.
    fn inline_value(&mut self, start: usize, indent: usize) -> Option<()> {
        let line = self.lines[self.at];
        let (anchor, anchor_mark, start) = if self.bytes()[start] == b'&' {
            let name_end = self.name_end(start + 1, line.end)?;
            let id = self.define_anchor(&self.text[start + 1..name_end])?;
            let mark = line.mark(start);
            if self.rest_is_empty(name_end, line.end).is_some() {
                // `&name` alone: the anchored node is the block below.
                self.at += 1;
                return match self.lines.get(self.at).copied() {
                    Some(next) if next.indent() > indent => self.block_collection(id, Some(mark)),
                    _ => None,
                };
            }
            (id, Some(mark), self.skip_spaces(name_end, line.end))
        } else {
            (0, None, start)
        };
        let mark = anchor_mark.unwrap_or_else(|| line.mark(start));
        let end = match self.bytes()[start] {
            b'*' if anchor == 0 => {
                let name_end = self.name_end(start + 1, line.end)?;
                let id = self.alias(&self.text[start + 1..name_end])?;
                self.push(Kind::Alias, id, mark)?;
                name_end
            }
            b'\'' | b'"' => {
                let (text, end) = self.quoted(start, line.end)?;
                self.scalar(text, anchor, mark)?;
                end
            }
            b'[' => self.flow_sequence(start, line, anchor, mark)?,
            b'{' if self.bytes()[start..line.end].starts_with(b"{}") => {
                self.push(Kind::MappingStart, anchor, mark)?;
                self.push(Kind::MappingEnd, 0, NO_MARK)?;
                start + 2
            }
            // `-1`, `-Xmx4g`: a dash followed by a non-space starts a plain scalar.
            b'-' if start + 1 < line.end && self.bytes()[start + 1] != b' ' => {
                self.plain_value(start, line.end, anchor, mark)?
            }
            b if is_indicator(b) => return None,
            _ => self.plain_value(start, line.end, anchor, mark)?,
        };
        self.rest_is_empty(end, line.end)?;
        self.at += 1;
        match self.lines.get(self.at) {
            Some(next) if next.indent() > indent => None,
            _ => Some(()),
        }
    }

    /// A plain scalar from `start` to the end of the line or a comment; its
    /// end offset.
    fn plain_value(
        &mut self,
        start: usize,
        end: usize,
        anchor: usize,
        mark: Mark,
    ) -> Option<usize> {
        let bytes = &self.bytes()[start..end];
        // A comment starts at the first ` #`.
        let mut stop = bytes.len();
        let mut from = 0;
        while let Some(found) = bytes[from..].iter().position(|&b| b == b'#') {
            let hash = from + found;
            if hash > 0 && bytes[hash - 1] == b' ' {
                stop = hash - 1;
                break;
            }
            from = hash + 1;
        }
        let mut text_end = stop;
        while text_end > 0 && bytes[text_end - 1] == b' ' {
            text_end -= 1;
        }
        let value = &self.text[start..start + text_end];
        // `: ` inside, or a trailing `:`, would make it a key: not a value.
        if value.ends_with(':') || value.contains(": ") {
            return None;
        }
        self.scalar((Style::Plain, start, start + text_end), anchor, mark)?;
        Some(start + stop)
    }

    /// `[a, *b, 'c']` on one line, of plain words, aliases and quoted scalars.
    fn flow_sequence(
        &mut self,
        open: usize,
        line: Line,
        anchor: usize,
        mark: Mark,
    ) -> Option<usize> {
        self.push(Kind::SequenceStart, anchor, mark)?;
        let mut at = self.skip_spaces(open + 1, line.end);
        if self.bytes().get(at) == Some(&b']') {
            self.push(Kind::SequenceEnd, 0, NO_MARK)?;
            return Some(at + 1);
        }
        loop {
            let item_end = match *self.bytes().get(at)? {
                b'*' => {
                    let end = self.name_end(at + 1, line.end)?;
                    let id = self.alias(&self.text[at + 1..end])?;
                    self.push(Kind::Alias, id, line.mark(at))?;
                    end
                }
                b'\'' | b'"' => {
                    let (text, end) = self.quoted(at, line.end)?;
                    self.scalar(text, 0, line.mark(at))?;
                    end
                }
                b if b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'/' => {
                    let len = self.bytes()[at..line.end]
                        .iter()
                        .position(|&b| !is_flow_word(b))
                        .unwrap_or(line.end - at);
                    self.scalar((Style::Plain, at, at + len), 0, line.mark(at))?;
                    at + len
                }
                _ => return None,
            };
            at = self.skip_spaces(item_end, line.end);
            match *self.bytes().get(at)? {
                b']' if at < line.end => {
                    self.push(Kind::SequenceEnd, 0, NO_MARK)?;
                    return Some(at + 1);
                }
                b',' if at < line.end => {
                    at = self.skip_spaces(at + 1, line.end);
                    if at == line.end || self.bytes()[at] == b']' {
                        return None;
                    }
                }
                _ => return None,
            }
        }
    }

    /// A one-line quoted scalar at `start`: its text and the offset after
    /// the closing quote.
    fn quoted(&self, start: usize, end: usize) -> Option<(Text, usize)> {
        let quote = self.bytes()[start];
        let body = start + 1;
        if quote == b'"' {
            let len = self.bytes()[body..end].iter().position(|&b| b == b'"')?;
            if self.bytes()[body..body + len].contains(&b'\\') {
                return None;
            }
            return Some(((Style::DoubleQuoted, body, body + len), body + len + 1));
        }
        let mut at = body;
        let mut doubled = false;
        loop {
            let len = self.bytes()[at..end].iter().position(|&b| b == b'\'')?;
            at += len;
            if self.bytes().get(at + 1) == Some(&b'\'') && at + 1 < end {
                doubled = true;
                at += 2;
                continue;
            }
            break;
        }
        let style = if doubled {
            Style::SingleQuotedDoubled
        } else {
            Style::SingleQuoted
        };
        Some(((style, body, at), at + 1))
    }

    /// The key at `start` (plain or quoted) and the offset of its `:`, when
    /// the line holds `key:` followed by a space or the end of the line.
    fn key(&self, start: usize, end: usize) -> Option<Key> {
        let colon_ends_key = |colon: usize| {
            self.bytes().get(colon) == Some(&b':')
                && colon < end
                && (colon + 1 == end || self.bytes()[colon + 1] == b' ')
        };
        match self.bytes()[start] {
            b'\'' | b'"' => {
                let (text, after) = self.quoted(start, end)?;
                if !colon_ends_key(after) || after - start > MAX_KEY_LEN {
                    return None;
                }
                Some(Key { text, colon: after })
            }
            b'-' | b':' | b'?' => None,
            b if is_indicator(b) => None,
            _ => {
                let bytes = &self.bytes()[start..end];
                let mut colon = None;
                for i in 0..bytes.len() {
                    match bytes[i] {
                        b':' if i + 1 == bytes.len() || bytes[i + 1] == b' ' => {
                            colon = Some(i);
                            break;
                        }
                        b'#' if i > 0 && bytes[i - 1] == b' ' => return None,
                        _ => {}
                    }
                }
                let colon = colon?;
                if colon > MAX_KEY_LEN {
                    return None;
                }
                let mut text_end = colon;
                while text_end > 0 && bytes[text_end - 1] == b' ' {
                    text_end -= 1;
                }
                Some(Key {
                    text: (Style::Plain, start, start + text_end),
                    colon: start + colon,
                })
            }
        }
    }

    #[must_use]
    fn push(&mut self, kind: Kind, id: usize, mark: Mark) -> Option<()> {
        self.push_text(kind, id, 0, 0, mark)
    }

    #[must_use]
    fn scalar(&mut self, (style, start, end): Text, anchor: usize, mark: Mark) -> Option<()> {
        self.push_text(Kind::Scalar(style), anchor, start, end, mark)
    }

    /// Adds an event; `None` (give up) when it is a node over `max_nodes`.
    // Every offset, line and column is below the text's length, which
    // `events` checked fits in 32 bits.
    #[allow(clippy::cast_possible_truncation)]
    #[must_use]
    fn push_text(
        &mut self,
        kind: Kind,
        id: usize,
        start: usize,
        end: usize,
        mark: Mark,
    ) -> Option<()> {
        if matches!(
            kind,
            Kind::Scalar(_) | Kind::Alias | Kind::SequenceStart | Kind::MappingStart
        ) {
            self.nodes += 1;
            if self.nodes > self.max_nodes {
                return None;
            }
        }
        self.events.push(Scanned {
            kind,
            id: id as u32,
            start: start as u32,
            end: end as u32,
            line: mark.line as u32,
            column: mark.column as u32,
        });
        Some(())
    }

    fn skip_spaces(&self, from: usize, end: usize) -> usize {
        self.bytes()[from..end]
            .iter()
            .position(|&b| b != b' ')
            .map_or(end, |p| from + p)
    }

    /// The end of an anchor or alias name starting at `from`: letters,
    /// digits, `_` and `-`, followed by a space, the end of the line, or a
    /// flow separator.
    fn name_end(&self, from: usize, end: usize) -> Option<usize> {
        let len = self.bytes()[from..end]
            .iter()
            .position(|&b| !(b.is_ascii_alphanumeric() || b == b'_' || b == b'-'))
            .unwrap_or(end - from);
        let after = from + len;
        let follows_ok = after == end || matches!(self.bytes()[after], b' ' | b',' | b']');
        (len > 0 && follows_ok).then_some(after)
    }

    /// A new anchor's id; `None` past [`MAX_ANCHORS`] (aliases are looked up
    /// by a scan, which must stay short).
    fn define_anchor(&mut self, name: &'a str) -> Option<usize> {
        if self.anchors.len() >= MAX_ANCHORS {
            return None;
        }
        let id = self.anchors.len() + 1;
        self.anchors.push((name, id));
        Some(id)
    }

    /// The id of the newest anchor called `name`; `None` (saphyr-parser
    /// reports the error) when there is none.
    fn alias(&self, name: &str) -> Option<usize> {
        self.anchors
            .iter()
            .rev()
            .find(|(anchor, _)| *anchor == name)
            .map(|(_, id)| *id)
    }
}

/// A scalar's style and its range in the text.
type Text = (Style, usize, usize);

/// The empty plain scalar (a missing value).
const EMPTY: Text = (Style::Plain, 0, 0);

struct Key {
    text: Text,
    colon: usize,
}

/// Characters that cannot start a plain scalar (`-`, `:` and `?` can when a
/// non-space follows; callers check those first).
fn is_indicator(b: u8) -> bool {
    matches!(
        b,
        b'-' | b'?'
            | b':'
            | b','
            | b'['
            | b']'
            | b'{'
            | b'}'
            | b'#'
            | b'&'
            | b'*'
            | b'!'
            | b'|'
            | b'>'
            | b'\''
            | b'"'
            | b'%'
            | b'@'
            | b'`'
    )
}

/// Characters of a plain word inside a one-line flow sequence.
fn is_flow_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'/' | b'-' | b'+')
}
