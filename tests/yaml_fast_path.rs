//! The loader's fast path (`config::yaml_subset`) against saphyr-parser.
//!
//! `yaml::load` scans the common block subset of YAML itself and leaves
//! everything else to saphyr-parser. Whatever the path, the loaded tree
//! (values and the line and column of every node) and every error must be
//! the same as saphyr-parser's: `load` is compared with `load_with_saphyr` on
//! the fixtures, the PyYAML corpus, a synthetic soa-configs tree, generated
//! documents and mutations of all of these, also under a `max_nodes` limit
//! at and just under their node count.

#[path = "../benches/support/synthetic.rs"]
#[allow(dead_code)]
mod synthetic;

use flink_gitops::config::yaml::{
    Limits, canonical_text, load, load_with_saphyr, takes_fast_path, takes_fast_path_with,
};
use proptest::prelude::*;
use std::path::{Path, PathBuf};

fn assert_same(text: &str, origin: &str) {
    assert_same_with(text, origin, &Limits::default());
}

fn assert_same_with(text: &str, origin: &str, limits: &Limits) {
    let fast = load(text, limits);
    let reference = load_with_saphyr(text, limits);
    let (fast, reference) = (canonical_text(&fast), canonical_text(&reference));
    if fast != reference {
        let at = fast
            .bytes()
            .zip(reference.bytes())
            .position(|(a, b)| a != b)
            .unwrap_or(fast.len().min(reference.len()));
        let around = |s: &str| s[at.saturating_sub(150)..(at + 150).min(s.len())].to_owned();
        panic!(
            "{origin}: the fast path differs from saphyr-parser (max_nodes {}) on\n{text}\n\
             fast:      …{}…\nsaphyr:    …{}…",
            limits.max_nodes,
            around(&fast),
            around(&reference)
        );
    }
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read fixtures") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
}

fn fixture_texts() -> Vec<(String, String)> {
    let mut paths = Vec::new();
    yaml_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures"),
        &mut paths,
    );
    paths.sort();
    paths
        .into_iter()
        .filter_map(|path| {
            let text = std::fs::read_to_string(&path).ok()?;
            Some((path.display().to_string(), text))
        })
        .collect()
}

fn corpus_texts() -> Vec<(String, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/yaml11/corpus.jsonl");
    let text = std::fs::read_to_string(path).expect("read the corpus");
    text.lines()
        .map(|line| {
            let case: serde_json::Value = serde_json::from_str(line).expect("a corpus line");
            (
                format!("corpus case {}", case["name"]),
                case["yaml"].as_str().expect("yaml").to_owned(),
            )
        })
        .collect()
}

#[test]
fn fixtures_load_the_same_on_both_paths() {
    let texts = fixture_texts();
    assert!(texts.len() > 40, "fixture files: {}", texts.len());
    for (origin, text) in &texts {
        assert_same(text, origin);
    }
}

fn with_max_nodes(max_nodes: usize) -> Limits {
    Limits {
        max_nodes,
        ..Limits::default()
    }
}

fn over_max_nodes(text: &str, max_nodes: usize) -> bool {
    load_with_saphyr(text, &with_max_nodes(max_nodes))
        .is_err_and(|e| e.message.ends_with("(limit max_nodes)"))
}

/// The nodes of `text` as `max_nodes` counts them (found by bisection:
/// the smallest limit it loads under), when it loads and has at least one
/// and at most `bound`.
fn node_count(text: &str, bound: usize) -> Option<usize> {
    if load_with_saphyr(text, &with_max_nodes(bound)).is_err() || !over_max_nodes(text, 0) {
        return None;
    }
    let (mut low, mut high) = (0, bound);
    while high - low > 1 {
        let mid = (low + high) / 2;
        if over_max_nodes(text, mid) {
            low = mid;
        } else {
            high = mid;
        }
    }
    Some(high)
}

/// Both paths agree on a file that loads when `max_nodes` is exactly its
/// node count and when it is one less, and a file the fast path takes is
/// still taken at its own node count.
fn assert_same_at_and_over_max_nodes(text: &str, origin: &str) -> Option<usize> {
    let count = node_count(text, 1 << 20)?;
    assert_same_with(text, origin, &with_max_nodes(count));
    assert!(!over_max_nodes(text, count), "{origin}");
    if count > 1 {
        assert_same_with(text, origin, &with_max_nodes(count - 1));
        assert!(over_max_nodes(text, count - 1), "{origin}");
        assert!(
            !takes_fast_path_with(text, &with_max_nodes(count - 1)),
            "{origin}: the fast path took a file over max_nodes"
        );
    }
    assert_eq!(
        takes_fast_path(text),
        takes_fast_path_with(text, &with_max_nodes(count)),
        "{origin}: at max_nodes, the fast path must take what it takes without the limit"
    );
    Some(count)
}

#[test]
fn fixtures_and_the_corpus_load_the_same_at_and_over_max_nodes() {
    let mut largest = 0;
    for (origin, text) in fixture_texts().iter().chain(&corpus_texts()) {
        if let Some(count) = assert_same_at_and_over_max_nodes(text, origin) {
            largest = largest.max(count);
        }
        assert_same_with(text, origin, &with_max_nodes(1));
    }
    // The fixtures include a live export of 1,316 nodes.
    assert!(largest > 1000, "largest node count: {largest}");
}

#[test]
fn a_flow_list_over_max_nodes_is_refused_the_same_on_both_paths() {
    let limit = Limits::default().max_nodes;
    let list = |items: usize| format!("a: [{}]\n", vec!["x"; items].join(", "));
    // A mapping, a key and the list make 3 nodes.
    let at = list(limit - 3);
    assert!(takes_fast_path(&at));
    assert_same(&at, "a flow list at max_nodes");
    assert!(load(&at, &Limits::default()).is_ok());
    for items in [limit - 2, limit + 1] {
        let over = list(items);
        assert!(!takes_fast_path(&over));
        assert_same(&over, "a flow list over max_nodes");
        let err = load(&over, &Limits::default()).expect_err("over max_nodes");
        assert_eq!(
            err.to_string(),
            format!(
                "1:{}: the file has {} nodes by here, over {limit} nodes (limit max_nodes)",
                5 + 3 * (limit - 3),
                limit + 1
            )
        );
    }
}

#[test]
fn most_soa_configs_fixtures_take_the_fast_path() {
    // The fixtures deliberately hold every YAML oddity PaaSTA users write,
    // so many files are outside the subset; the plain ones must not be.
    let soa: Vec<_> = fixture_texts()
        .into_iter()
        .filter(|(origin, _)| origin.contains("soa-configs"))
        .collect();
    let fast = soa.iter().filter(|(_, text)| takes_fast_path(text)).count();
    assert!(
        fast * 2 >= soa.len(),
        "{fast} of {} soa-configs fixture files take the fast path",
        soa.len()
    );
}

#[test]
fn the_pyyaml_corpus_loads_the_same_on_both_paths() {
    let texts = corpus_texts();
    assert!(texts.len() > 400);
    let fast = texts
        .iter()
        .filter(|(_, text)| takes_fast_path(text))
        .count();
    assert!(fast > 100, "corpus cases on the fast path: {fast}");
    for (origin, text) in &texts {
        assert_same(text, origin);
    }
}

#[test]
fn a_synthetic_tree_loads_the_same_and_all_of_it_takes_the_fast_path() {
    let tree = tempfile::tempdir().expect("tempdir");
    let options = synthetic::Options {
        services: 60,
        ..synthetic::Options::default()
    };
    synthetic::generate(tree.path(), &options).expect("generate");
    let mut paths = Vec::new();
    yaml_files(tree.path(), &mut paths);
    assert!(paths.len() > 100, "files: {}", paths.len());
    for path in paths {
        let text = std::fs::read_to_string(&path).expect("read");
        let origin = path.display().to_string();
        assert!(takes_fast_path(&text), "{origin} is outside the subset");
        assert_same(&text, &origin);
    }
}

#[test]
fn the_subset_positions_match_saphyr_parser() {
    let cases = [
        "a:\n  - x\n  -\n  - y: 1\n    z:   \n  - q\nb:\n- 1\n- p: q\nc: # c\nd:   \ng:\n  h:\n",
        "---\n_t: &t\n  a: 1\n  b: 'x'\nmain:\n  <<: *t\n  c:\n  d: \"q\"   # hi\n  l:\n  - x\n  - y: 1\n    z: 2\n  f: [a, b]\n",
        "- &s\n  a: 1\n- &t {}\n- <<: [*s, *t]\n  x: []\n  \"q k\":   y # z\n  'it''s': \"a#b\" # c\n  p: a#b c\n  t: [a.b, c-d ,e]\n  u: -1\n  w: x:y\n- [ ]\n",
        "a: &x 1\nb: *x\nc: &x 2\nd: *x\n",
        "k:\n  -\n    a: 1\n  - &l\n    - 1\n  - x\n",
        "key  : value\n'q': \"r\"\n",
    ];
    for text in cases {
        assert!(takes_fast_path(text), "outside the subset:\n{text}");
        assert_same(text, "case");
    }
}

#[test]
fn constructs_outside_the_subset_go_to_saphyr_parser() {
    let many_anchors: String = (0..300).map(|i| format!("k{i}: &a{i} {i}\n")).collect();
    let outside = [
        "a: |\n  text\n",
        "a: >\n  folded\n",
        "a: !!str 1\n",
        "a: plain\n  continued\n",
        "a: \"esc\\n\"\n",
        "a: 'multi\n  line'\n",
        "a:\tb\n",
        "a: b\r\n",
        "a: caf\u{e9}\n",
        "a: {b: 1}\n",
        "? complex\n: key\n",
        "a: 1\n---\nb: 2\n",
        "a: *unknown\n",
        "a: b: c\n",
        "- - nested\n",
        "plain root\n",
        "",
        "# only a comment\n",
        "%YAML 1.1\n---\na: 1\n",
        // Hundreds of anchors: aliases are looked up by a scan.
        many_anchors.as_str(),
    ];
    for text in outside {
        assert!(!takes_fast_path(text), "taken by the fast path:\n{text}");
        assert_same(text, "outside");
    }
}

/// Pieces of YAML that generated documents are built from.
fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9_.-]{0,8}",
        Just("yes".to_owned()),
        Just("~".to_owned()),
        Just("010".to_owned()),
        Just("1:30".to_owned()),
        Just("-1.5".to_owned()),
        Just("s3://b/p".to_owned()),
        Just("a#b".to_owned()),
        Just("x # comment".to_owned()),
        Just("'single'".to_owned()),
        Just("'it''s'".to_owned()),
        Just("\"double\"".to_owned()),
        Just("\"\"".to_owned()),
        Just("[a, b.c, *A]".to_owned()),
        Just("[]".to_owned()),
        Just("{}".to_owned()),
        Just("*A".to_owned()),
        Just("&A v".to_owned()),
        Just("*B".to_owned()),
        Just("5 min".to_owned()),
        Just("".to_owned()),
        Just("   ".to_owned()),
        Just("# only a comment".to_owned()),
    ]
}

#[derive(Debug, Clone)]
enum Doc {
    Scalar(String),
    Map(Vec<(String, Doc)>),
    Seq(Vec<Doc>),
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9_]{0,6}",
        Just("<<".to_owned()),
        Just("'quoted key'".to_owned()),
        Just("\"dq\"".to_owned()),
        Just("1".to_owned()),
        Just("key  ".to_owned()),
    ]
}

fn doc() -> impl Strategy<Value = Doc> {
    let leaf = scalar().prop_map(Doc::Scalar);
    leaf.prop_recursive(5, 40, 5, |inner| {
        prop_oneof![
            prop::collection::vec((key(), inner.clone()), 1..5).prop_map(Doc::Map),
            prop::collection::vec(inner, 1..4).prop_map(Doc::Seq),
        ]
    })
}

/// Writes `doc` in block style; `style` picks indentation widths, indentless
/// sequences, anchors, comments and blank lines.
fn write(doc: &Doc, indent: usize, style: &[u8], out: &mut String, n: &mut usize) {
    fn pick(style: &[u8], n: &mut usize) -> u8 {
        *n += 1;
        style[*n % style.len()]
    }
    match doc {
        Doc::Scalar(text) => {
            out.push_str(text);
            out.push('\n');
        }
        Doc::Map(entries) => {
            for (i, (key, value)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push_str(&" ".repeat(indent));
                }
                out.push_str(key);
                out.push(':');
                let choice = pick(style, n);
                match value {
                    Doc::Scalar(text) => {
                        if !text.is_empty() {
                            out.push(' ');
                        }
                        out.push_str(text);
                        out.push('\n');
                    }
                    nested => {
                        if choice.is_multiple_of(5) {
                            out.push_str(" &A");
                        }
                        if choice % 7 == 1 {
                            out.push_str(" # note");
                        }
                        out.push('\n');
                        if choice % 11 == 2 {
                            out.push('\n');
                        }
                        let step = if matches!(nested, Doc::Seq(_)) && choice.is_multiple_of(3) {
                            0
                        } else {
                            1 + usize::from(choice % 4)
                        };
                        out.push_str(&" ".repeat(indent + step));
                        write(nested, indent + step, style, out, n);
                    }
                }
            }
        }
        Doc::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(&" ".repeat(indent));
                }
                let choice = pick(style, n);
                match item {
                    Doc::Seq(_) if choice.is_multiple_of(2) => {
                        out.push_str("-\n");
                        out.push_str(&" ".repeat(indent + 2));
                        write(item, indent + 2, style, out, n);
                    }
                    Doc::Map(_) if choice % 5 == 3 => {
                        out.push_str("- &B\n");
                        out.push_str(&" ".repeat(indent + 2));
                        write(item, indent + 2, style, out, n);
                    }
                    _ => {
                        let gap = 1 + usize::from(choice % 3);
                        out.push('-');
                        out.push_str(&" ".repeat(gap));
                        write(item, indent + 1 + gap, style, out, n);
                    }
                }
            }
        }
    }
}

/// Characters that matter to a YAML scanner, for mutations.
const SIGNIFICANT: &[u8] = b" \n:-#'\"&*[],{}!|>?%\\\t";

proptest! {
    // PROPTEST_CASES=300000 for a longer search.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(2000),
        ..ProptestConfig::default()
    })]

    #[test]
    fn generated_documents_load_the_same(
        doc in doc(),
        style in prop::collection::vec(any::<u8>(), 1..8),
        explicit in any::<bool>(),
        at_max_nodes in any::<bool>(),
    ) {
        let mut text = String::new();
        if explicit {
            text.push_str("---\n");
        }
        if matches!(doc, Doc::Scalar(_)) {
            text.push_str("a: ");
        }
        write(&doc, 0, &style, &mut text, &mut 0);
        assert_same(&text, "generated");
        if at_max_nodes {
            assert_same_at_and_over_max_nodes(&text, "generated");
        }
    }

    #[test]
    fn mutated_documents_load_the_same(
        seed in 0usize..10_000,
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0usize..SIGNIFICANT.len(), 0u8..3), 1..4),
    ) {
        let sources = mutation_sources();
        let (origin, text) = &sources[seed % sources.len()];
        let mut bytes = text.as_bytes().to_vec();
        for (at, replacement, kind) in edits {
            if bytes.is_empty() {
                break;
            }
            let at = at.index(bytes.len());
            let b = SIGNIFICANT[replacement];
            match kind {
                0 => bytes.insert(at, b),
                1 => bytes[at] = b,
                _ => {
                    bytes.remove(at);
                }
            }
        }
        if let Ok(text) = String::from_utf8(bytes) {
            assert_same(&text, origin);
            if seed % 4 == 0 {
                assert_same_at_and_over_max_nodes(&text, origin);
            }
        }
    }
}

/// Small documents to mutate: the fixtures' soa-configs files that take the
/// fast path and the corpus cases that do.
fn mutation_sources() -> &'static [(String, String)] {
    static SOURCES: std::sync::OnceLock<Vec<(String, String)>> = std::sync::OnceLock::new();
    SOURCES.get_or_init(|| {
        fixture_texts()
            .into_iter()
            .chain(corpus_texts())
            .filter(|(_, text)| text.len() < 4096 && takes_fast_path(text))
            .collect()
    })
}

/// The generated and mutated documents above only test the fast path if
/// many of them take it.
#[test]
fn many_generated_and_mutated_documents_take_the_fast_path() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = (doc(), prop::collection::vec(any::<u8>(), 1..8));
    let sources = mutation_sources();
    let (mut generated, mut mutated) = (0, 0);
    for i in 0..1000 {
        let (doc, style) = strategy
            .new_tree(&mut runner)
            .expect("a document")
            .current();
        let mut text = String::new();
        if matches!(doc, Doc::Scalar(_)) {
            text.push_str("a: ");
        }
        write(&doc, 0, &style, &mut text, &mut 0);
        generated += usize::from(takes_fast_path(&text));
        let (_, source) = &sources[i % sources.len()];
        let mut bytes = source.as_bytes().to_vec();
        bytes.insert((i * 7919) % bytes.len(), SIGNIFICANT[i % SIGNIFICANT.len()]);
        mutated += usize::from(takes_fast_path(&String::from_utf8_lossy(&bytes)));
    }
    assert!(
        generated > 300,
        "generated documents on the fast path: {generated} of 1000"
    );
    assert!(
        mutated > 300,
        "mutated documents on the fast path: {mutated} of 1000"
    );
}
