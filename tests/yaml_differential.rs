//! Differential test of our YAML loader against PyYAML 6.0.3's `CSafeLoader`.
//!
//! fixtures/yaml11/corpus.jsonl (written by scripts/pyyaml_corpus.py) holds
//! small YAML documents with what PyYAML made of them:
//!
//! * `json`: `json.dumps(yaml.load(text), sort_keys=True)`; our
//!   load → `to_value` → `dumps` must produce the same bytes;
//! * `load_error`: PyYAML's load raised; we must fail in load or in `to_value`;
//! * `dump_error`: PyYAML loaded it but `json.dumps` raised (dates, mixed key
//!   types, bytes, sets, cycles); we must fail too. Failing already in load is
//!   accepted: PaaSTA cannot hash the file either way.
//!
//! The only accepted differences are listed in [`INTENDED_REJECTIONS`] (values
//! the Kubernetes API cannot store) and [`KNOWN_PARSER_DIFFERENCES`] (where
//! saphyr-parser's YAML 1.2 scanner and libyaml disagree; all far from what
//! soa-configs contain, and documented in the README).
//! Every mismatch is collected and reported at once.

use flink_gitops::config::convert::to_value;
use flink_gitops::config::yaml::{Limits, load};
use flink_gitops::value::python_json::dumps;
use std::collections::BTreeSet;
use std::path::Path;

/// Why we reject a document that PyYAML and `json.dumps` accept.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Reason {
    /// `.inf`, `.nan` (or a float literal that overflows): Python writes
    /// `Infinity`/`NaN`, which is not JSON; the Kubernetes API cannot store it.
    NonFinite,
    /// An integer outside the 64-bit range: the Kubernetes API (and any
    /// int64-based consumer) cannot store it.
    BeyondI64,
}

/// Cases PyYAML accepts that we deliberately reject, with the reason.
const INTENDED_REJECTIONS: &[(&str, Reason)] = &[
    ("float_overflow_to_inf", Reason::NonFinite),
    ("float_inf_spellings", Reason::NonFinite),
    ("float_negative_inf_spellings", Reason::NonFinite),
    ("float_positive_inf_spellings", Reason::NonFinite),
    ("float_nan_spellings", Reason::NonFinite),
    ("tag_float_inf_nan", Reason::NonFinite),
    ("tag_float_python_inf_word", Reason::NonFinite),
    ("root_scalar_inf", Reason::NonFinite),
    ("int_above_u64", Reason::BeyondI64),
    ("int_below_i64", Reason::BeyondI64),
    ("int_beyond_128_bits", Reason::BeyondI64),
    ("int_hex_beyond_64_bits", Reason::BeyondI64),
];

/// Cases where the event parser (saphyr-parser) and libyaml disagree, with
/// why we live with it. Each must still differ: a fix makes the test fail
/// until the entry is removed.
const KNOWN_PARSER_DIFFERENCES: &[(&str, &str)] = &[
    (
        "string_lone_dash_value",
        "saphyr refuses a plain `-` before `]`/`,`; libyaml reads a string",
    ),
    (
        "unicode_nel_in_plain",
        "YAML 1.1 treats U+0085 as a line break, YAML 1.2 as content",
    ),
    (
        "unicode_line_separator_in_plain",
        "YAML 1.1 treats U+2028 as a line break, YAML 1.2 as content",
    ),
    (
        "unicode_nel_in_double_quotes",
        "YAML 1.1 folds U+0085 in quotes, YAML 1.2 keeps it",
    ),
    (
        "unicode_line_separator_in_plain_continuation",
        "YAML 1.1 treats U+2028 as a line break",
    ),
    (
        "anchor_redefined",
        "saphyr reports anchor ids, not names, so a redefinition cannot be seen",
    ),
    (
        "anchor_name_with_dot",
        "YAML 1.2 allows `.` in anchor names, libyaml does not",
    ),
    (
        "anchor_name_non_ascii",
        "YAML 1.2 allows non-ASCII anchor names, libyaml does not",
    ),
    (
        "only_document_end",
        "saphyr accepts a stream holding only `...`",
    ),
    (
        "yaml_directive_2_0",
        "saphyr accepts `%YAML 2.0`; libyaml refuses major version 2",
    ),
    (
        "error_question_in_flow_value",
        "saphyr reads `?` in a flow value as a string",
    ),
];

struct Case {
    name: String,
    yaml: String,
    expected: Expected,
}

enum Expected {
    Json(String),
    LoadError(String),
    DumpError(String),
}

/// What our pipeline made of a document.
enum Outcome {
    Json(String),
    LoadError(String),
    ConvertError(String),
}

impl Outcome {
    fn describe(&self) -> String {
        match self {
            Outcome::Json(json) => format!("json {json}"),
            Outcome::LoadError(e) => format!("load error: {e}"),
            Outcome::ConvertError(e) => format!("to_value error: {e}"),
        }
    }
}

fn run(yaml: &str) -> Outcome {
    match load(yaml, &Limits::default()) {
        Err(e) => Outcome::LoadError(e.to_string()),
        // An empty stream is Python's None.
        Ok(None) => Outcome::Json("null".to_owned()),
        Ok(Some(node)) => match to_value(&node, "") {
            Ok(value) => Outcome::Json(dumps(&value)),
            Err(e) => Outcome::ConvertError(e.to_string()),
        },
    }
}

fn corpus() -> Vec<Case> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/yaml11/corpus.jsonl");
    let text = std::fs::read_to_string(&path).expect("fixtures/yaml11/corpus.jsonl");
    text.lines()
        .filter(|line| !line.is_empty())
        .map(|line| {
            let json: serde_json::Value = serde_json::from_str(line).expect("corpus line is JSON");
            let field = |key: &str| json[key].as_str().map(str::to_owned);
            let name = field("name").expect("case has a name");
            let yaml = field("yaml").expect("case has yaml");
            let expected = if let Some(out) = field("json") {
                Expected::Json(out)
            } else if let Some(kind) = field("load_error") {
                Expected::LoadError(kind)
            } else if let Some(kind) = field("dump_error") {
                Expected::DumpError(kind)
            } else {
                panic!("case {name} has no json, load_error or dump_error");
            };
            Case {
                name,
                yaml,
                expected,
            }
        })
        .collect()
}

/// The tokens of Python's JSON output outside string literals.
fn bare_tokens(json: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    let mut in_string = false;
    let mut escaped = false;
    for c in json.chars() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        if c == '"' {
            in_string = true;
        } else if c.is_ascii_alphanumeric() || matches!(c, '-' | '+' | '.') {
            current.push(c);
            continue;
        }
        if !current.is_empty() {
            tokens.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    tokens
}

/// Whether PyYAML's output really holds a value of the kind `reason` names,
/// so that the list above cannot hide an unrelated difference.
fn reason_holds(reason: Reason, json: &str) -> bool {
    bare_tokens(json).iter().any(|token| match reason {
        Reason::NonFinite => matches!(token.as_str(), "Infinity" | "-Infinity" | "NaN"),
        Reason::BeyondI64 => {
            let digits = token.trim_start_matches('-');
            !digits.is_empty()
                && digits.chars().all(|c| c.is_ascii_digit())
                && token.parse::<i64>().is_err()
        }
    })
}

#[test]
fn loader_matches_pyyaml_csafeloader() {
    let cases = corpus();
    let names: BTreeSet<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names.len(), cases.len(), "case names must be unique");
    let mut mismatches = Vec::new();
    for (name, _) in INTENDED_REJECTIONS {
        if !names.contains(name) {
            mismatches.push(format!(
                "{name}: listed in INTENDED_REJECTIONS but not in the corpus"
            ));
        }
    }

    for (name, _) in KNOWN_PARSER_DIFFERENCES {
        if !names.contains(name) {
            mismatches.push(format!(
                "{name}: listed in KNOWN_PARSER_DIFFERENCES but not in the corpus"
            ));
        }
    }

    for case in &cases {
        let outcome = run(&case.yaml);
        if KNOWN_PARSER_DIFFERENCES
            .iter()
            .any(|(name, _)| *name == case.name)
        {
            let agrees = match (&case.expected, &outcome) {
                (Expected::Json(python), Outcome::Json(ours)) => python == ours,
                (Expected::Json(_), _) | (_, Outcome::Json(_)) => false,
                _ => true,
            };
            if agrees {
                mismatches.push(format!(
                    "{}: listed in KNOWN_PARSER_DIFFERENCES but now agrees with PyYAML; remove it from the list",
                    case.name
                ));
            }
            continue;
        }
        let intended = INTENDED_REJECTIONS
            .iter()
            .find(|(name, _)| *name == case.name)
            .map(|(_, reason)| *reason);
        let problem = match (&case.expected, intended) {
            (Expected::Json(python), Some(reason)) => {
                if !reason_holds(reason, python) {
                    Some(format!(
                        "listed as an intended rejection ({reason:?}) but PyYAML's output has no such value: {python}"
                    ))
                } else if let Outcome::Json(ours) = &outcome {
                    Some(format!(
                        "expected an error ({reason:?}, intended difference), got json {ours}"
                    ))
                } else {
                    None
                }
            }
            (expected, Some(reason)) => Some(format!(
                "listed as an intended rejection ({reason:?}) but PyYAML did not produce JSON ({})",
                match expected {
                    Expected::LoadError(kind) => format!("load_error {kind}"),
                    Expected::DumpError(kind) => format!("dump_error {kind}"),
                    Expected::Json(_) => unreachable!("handled above"),
                }
            )),
            (Expected::Json(python), None) => match &outcome {
                Outcome::Json(ours) if ours == python => None,
                other => Some(format!(
                    "PyYAML json {python}\n      ours        {}",
                    other.describe()
                )),
            },
            (Expected::LoadError(kind), None) => match &outcome {
                Outcome::Json(ours) => Some(format!(
                    "PyYAML load_error {kind}\n      ours        json {ours}"
                )),
                Outcome::LoadError(_) | Outcome::ConvertError(_) => None,
            },
            (Expected::DumpError(kind), None) => match &outcome {
                Outcome::Json(ours) => Some(format!(
                    "PyYAML dump_error {kind}\n      ours        json {ours}"
                )),
                Outcome::LoadError(_) | Outcome::ConvertError(_) => None,
            },
        };
        if let Some(problem) = problem {
            mismatches.push(format!(
                "{}\n      yaml        {:?}\n      {problem}",
                case.name, case.yaml
            ));
        }
    }

    assert!(
        mismatches.is_empty(),
        "{} of {} cases differ from PyYAML 6.0.3 CSafeLoader:\n\n{}\n",
        mismatches.len(),
        cases.len(),
        mismatches.join("\n\n")
    );
}
