//! Label and field selectors for list requests.
//!
//! Follows https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors
//! (equality-based `k=v`, `k==v`, `k!=v`; set-based `k in (a,b)`,
//! `k notin (a,b)`, `k`, `!k`; a comma is a logical AND) and
//! https://kubernetes.io/docs/concepts/overview/working-with-objects/field-selectors/
//! (`metadata.name` and `metadata.namespace`, which every resource supports).

use serde_json::Value as Json;

#[derive(Clone, Debug, PartialEq)]
enum Requirement {
    Exists(String),
    NotExists(String),
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    GreaterThan(String, i64),
    LessThan(String, i64),
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LabelSelector(Vec<Requirement>);

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Word(String),
    Comma,
    Open,
    Close,
    Not,
    Eq,
    NotEq,
    Gt,
    Lt,
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/')
}

fn lex(text: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            ' ' | '\t' | '\n' => {
                chars.next();
            }
            ',' | '(' | ')' | '>' | '<' => {
                chars.next();
                out.push(match c {
                    ',' => Token::Comma,
                    '(' => Token::Open,
                    ')' => Token::Close,
                    '>' => Token::Gt,
                    _ => Token::Lt,
                });
            }
            '!' => {
                chars.next();
                if chars.peek() == Some(&'=') {
                    chars.next();
                    out.push(Token::NotEq);
                } else {
                    out.push(Token::Not);
                }
            }
            '=' => {
                chars.next();
                if chars.peek() == Some(&'=') {
                    chars.next();
                }
                out.push(Token::Eq);
            }
            c if is_word_char(c) => {
                let mut word = String::new();
                while let Some(&c) = chars.peek().filter(|c| is_word_char(**c)) {
                    word.push(c);
                    chars.next();
                }
                out.push(Token::Word(word));
            }
            other => return Err(format!("unexpected character {other:?}")),
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        token
    }

    fn word(&mut self, what: &str) -> Result<String, String> {
        match self.next() {
            Some(Token::Word(w)) => Ok(w),
            other => Err(format!("expected {what}, found {other:?}")),
        }
    }

    /// A value after `=`/`!=`; may be empty (`k=` selects an empty value).
    fn value(&mut self) -> Result<String, String> {
        match self.peek() {
            None | Some(Token::Comma) => Ok(String::new()),
            _ => self.word("value"),
        }
    }

    fn set(&mut self) -> Result<Vec<String>, String> {
        if self.next() != Some(Token::Open) {
            return Err("expected '(' after in/notin".to_owned());
        }
        let mut values = Vec::new();
        loop {
            match self.next() {
                Some(Token::Word(w)) => values.push(w),
                Some(Token::Close) if values.is_empty() => break,
                other => return Err(format!("expected a value in set, found {other:?}")),
            }
            match self.next() {
                Some(Token::Comma) => {}
                Some(Token::Close) => break,
                other => return Err(format!("expected ',' or ')', found {other:?}")),
            }
        }
        Ok(values)
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        if self.peek() == Some(&Token::Not) {
            self.next();
            return Ok(Requirement::NotExists(self.word("key")?));
        }
        let key = self.word("key")?;
        match self.peek() {
            None | Some(Token::Comma) => Ok(Requirement::Exists(key)),
            Some(Token::Eq) => {
                self.next();
                Ok(Requirement::Equals(key, self.value()?))
            }
            Some(Token::NotEq) => {
                self.next();
                Ok(Requirement::NotEquals(key, self.value()?))
            }
            Some(Token::Gt | Token::Lt) => {
                let greater = self.next() == Some(Token::Gt);
                let bound: i64 = self
                    .word("integer")?
                    .parse()
                    .map_err(|_| "expected an integer".to_owned())?;
                Ok(if greater {
                    Requirement::GreaterThan(key, bound)
                } else {
                    Requirement::LessThan(key, bound)
                })
            }
            Some(Token::Word(op)) if op == "in" => {
                self.next();
                Ok(Requirement::In(key, self.set()?))
            }
            Some(Token::Word(op)) if op == "notin" => {
                self.next();
                Ok(Requirement::NotIn(key, self.set()?))
            }
            Some(other) => Err(format!("unexpected {other:?} after key {key:?}")),
        }
    }
}

impl LabelSelector {
    /// Parses the `labelSelector` query parameter (already URL-decoded).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parser = Parser {
            tokens: lex(text).map_err(|e| format!("unable to parse requirement: {e}"))?,
            pos: 0,
        };
        let mut requirements = Vec::new();
        if parser.tokens.is_empty() {
            return Ok(Self(requirements));
        }
        loop {
            requirements.push(
                parser
                    .requirement()
                    .map_err(|e| format!("unable to parse requirement: {e}"))?,
            );
            match parser.next() {
                None => break,
                Some(Token::Comma) => {}
                Some(other) => {
                    return Err(format!(
                        "unable to parse requirement: expected ',' found {other:?}"
                    ));
                }
            }
        }
        Ok(Self(requirements))
    }

    /// Whether an object's `metadata.labels` satisfy every requirement.
    /// `!=` and `notin` also match objects without the label.
    pub fn matches(&self, object: &Json) -> bool {
        let label = |key: &str| {
            object
                .pointer("/metadata/labels")
                .and_then(|labels| labels.get(key))
                .and_then(Json::as_str)
        };
        self.0.iter().all(|req| match req {
            Requirement::Exists(k) => label(k).is_some(),
            Requirement::NotExists(k) => label(k).is_none(),
            Requirement::Equals(k, v) => label(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => label(k) != Some(v.as_str()),
            Requirement::In(k, vs) => label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            Requirement::NotIn(k, vs) => !label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            Requirement::GreaterThan(k, b) => label(k)
                .and_then(|l| l.parse::<i64>().ok())
                .is_some_and(|l| l > *b),
            Requirement::LessThan(k, b) => label(k)
                .and_then(|l| l.parse::<i64>().ok())
                .is_some_and(|l| l < *b),
        })
    }
}

/// A parsed `fieldSelector` over `metadata.name` / `metadata.namespace`,
/// and the `involvedObject.*` fields core/v1 Events also support
/// (https://kubernetes.io/docs/concepts/overview/working-with-objects/field-selectors/;
/// the fake accepts them on every resource).
const SUPPORTED_FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "involvedObject.apiVersion",
    "involvedObject.kind",
    "involvedObject.name",
    "involvedObject.namespace",
    "involvedObject.uid",
];

#[derive(Clone, Debug, Default)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    /// Parses `metadata.name=x,metadata.namespace!=y` (`=`, `==`, `!=`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut terms = Vec::new();
        for term in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (field, equal, value) = if let Some((f, v)) = term.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = term.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = term.split_once('=') {
                (f, true, v)
            } else {
                return Err(format!(
                    "invalid selector: '{text}'; can't understand '{term}'"
                ));
            };
            let field = field.trim();
            if !SUPPORTED_FIELDS.contains(&field) {
                return Err(format!("field label not supported: {field}"));
            }
            terms.push((field.to_owned(), equal, value.trim().to_owned()));
        }
        Ok(Self(terms))
    }

    pub fn matches(&self, object: &Json) -> bool {
        self.0.iter().all(|(field, equal, value)| {
            let pointer = format!("/{}", field.replace('.', "/"));
            let actual = object
                .pointer(&pointer)
                .and_then(Json::as_str)
                .unwrap_or("");
            (actual == value) == *equal
        })
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
