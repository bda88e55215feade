//! Treebank reading, vocabularies and the synthetic treebank.

use std::path::PathBuf;

use cps_runtime::data::synthetic::{self, Generator, SyntheticConfig, generate, rule_labels};
use cps_runtime::data::{
    Node, ParseErrorKind, Tree, TreebankError, Vocab, parse_treebank, read_treebank,
};
use proptest::prelude::*;

fn tree(line: &str) -> Tree {
    Tree::parse(line).unwrap_or_else(|e| panic!("{line}: {e}"))
}

fn error(line: &str) -> (usize, ParseErrorKind, String) {
    let err = Tree::parse(line).expect_err(line);
    assert_eq!(err.line(), 1);
    (err.column(), err.kind().clone(), err.to_string())
}

#[test]
fn parses_the_example_sentence() {
    let t = tree("(3 (2 It) (4 (2 's) (4 good)))");
    assert_eq!(t.node_count(), 5);
    assert_eq!(t.leaf_count(), 3);
    assert_eq!(t.words().collect::<Vec<_>>(), ["It", "'s", "good"]);
    assert_eq!(
        t.nodes(),
        [
            Node::Leaf { leaf: 0, label: 2 },
            Node::Leaf { leaf: 1, label: 2 },
            Node::Leaf { leaf: 2, label: 4 },
            Node::Internal {
                left: 1,
                right: 2,
                label: 4
            },
            Node::Internal {
                left: 0,
                right: 3,
                label: 3
            },
        ]
    );
    assert_eq!(t.root(), 4);
    assert_eq!(t.root_label(), 3);
    assert_eq!(t.heights(), [0, 0, 0, 1, 2]);
    assert_eq!(t.to_string(), "(3 (2 It) (4 (2 's) (4 good)))");
    assert_eq!(format!("{t:?}"), "Tree((3 (2 It) (4 (2 's) (4 good))))");
}

#[test]
fn spaces_are_flexible_and_only_ascii_space_separates() {
    let t = tree("  (3(2 It )  (4 (2 's)(4 good)) )\r");
    assert_eq!(t.to_string(), "(3 (2 It) (4 (2 's) (4 good)))");
    // A no-break space is part of the word, as in the SST's `8 1\/2`.
    let t = tree("(2 (2 8\u{a0}1\\/2) (2 stars))");
    assert_eq!(t.word(0), "8\u{a0}1\\/2");
    assert_eq!(t.leaf_count(), 2);
    // So is a tab inside the line.
    assert_eq!(tree("(2 a\tb)").word(0), "a\tb");
}

#[test]
fn single_leaf_tree() {
    let t = tree("(0 awful)");
    assert_eq!(t.node_count(), 1);
    assert_eq!(t.nodes(), [Node::Leaf { leaf: 0, label: 0 }]);
}

#[test]
fn errors_say_where_and_what() {
    let cases: &[(&str, usize, ParseErrorKind, &str)] = &[
        (
            "",
            1,
            ParseErrorKind::UnexpectedEnd {
                expected: "'(' to start a tree",
            },
            "unexpected end of line",
        ),
        (
            "3 (2 a))",
            1,
            ParseErrorKind::ExpectedOpen {
                found: "`3`".into(),
            },
            "expected '('",
        ),
        (
            ")",
            1,
            ParseErrorKind::ExpectedOpen {
                found: "')'".into(),
            },
            "expected '(' to start a tree, found ')'",
        ),
        (
            "(7 a)",
            2,
            ParseErrorKind::ExpectedLabel {
                found: "`7`".into(),
            },
            "expected a label 0-4, found `7`",
        ),
        (
            "(12 a)",
            2,
            ParseErrorKind::ExpectedLabel {
                found: "`12`".into(),
            },
            "expected a label 0-4",
        ),
        (
            "(good)",
            2,
            ParseErrorKind::ExpectedLabel {
                found: "`good`".into(),
            },
            "expected a label 0-4",
        ),
        (
            "((2 a) (2 b))",
            2,
            ParseErrorKind::ExpectedLabel {
                found: "'('".into(),
            },
            "found '('",
        ),
        (
            "(2)",
            3,
            ParseErrorKind::EmptyNode,
            "one word or exactly two children",
        ),
        (
            "(2 a b)",
            6,
            ParseErrorKind::ExtraWord {
                found: "`b`".into(),
            },
            "a leaf must hold exactly one word",
        ),
        (
            "(3 (2 a))",
            9,
            ParseErrorKind::ChildCount { found: 1 },
            "exactly two children, found 1",
        ),
        (
            "(3 (2 a) (2 b) (2 c))",
            16,
            ParseErrorKind::ChildCount { found: 3 },
            "found more than 2",
        ),
        (
            "(3 (2 a) b)",
            10,
            ParseErrorKind::WordAndSubtree,
            "not both",
        ),
        ("(3 a (2 b))", 6, ParseErrorKind::WordAndSubtree, "not both"),
        (
            "(3 (2 a) (2 b)",
            15,
            ParseErrorKind::UnexpectedEnd {
                expected: "')' to close the node",
            },
            "end of line",
        ),
        (
            "(3 (2 a)",
            9,
            ParseErrorKind::UnexpectedEnd {
                expected: "'(' to start the second child",
            },
            "second",
        ),
        (
            "(3 (2 a",
            8,
            ParseErrorKind::UnexpectedEnd {
                expected: "')' to close the leaf",
            },
            "close the leaf",
        ),
        (
            "(3 ",
            3,
            ParseErrorKind::UnexpectedEnd {
                expected: "a word or '(' after the label",
            },
            "after the label",
        ),
        (
            "(",
            2,
            ParseErrorKind::UnexpectedEnd {
                expected: "a label 0-4",
            },
            "a label 0-4",
        ),
        (
            "(2 a) x",
            7,
            ParseErrorKind::TrailingCharacters {
                found: "`x`".into(),
            },
            "trailing characters",
        ),
        (
            "(2 a))",
            6,
            ParseErrorKind::TrailingCharacters {
                found: "')'".into(),
            },
            "trailing",
        ),
        (
            "(2 a) (2 b)",
            7,
            ParseErrorKind::TrailingCharacters {
                found: "'('".into(),
            },
            "trailing",
        ),
    ];
    for (line, column, kind, message) in cases {
        let (got_column, got_kind, got_message) = error(line);
        assert_eq!(
            (got_column, &got_kind),
            (*column, kind),
            "{line:?}: {got_message}"
        );
        assert!(got_message.contains(message), "{line:?}: {got_message}");
        assert!(
            got_message.starts_with(&format!("line 1, column {column}: ")),
            "{got_message}"
        );
    }
}

#[test]
fn columns_count_characters_not_bytes() {
    // `é` and the no-break space take two bytes each.
    let (column, kind, _) = error("(2 (2 é\u{a0}é) (9 b))");
    assert_eq!(
        kind,
        ParseErrorKind::ExpectedLabel {
            found: "`9`".into()
        }
    );
    assert_eq!(column, 13);
}

#[test]
fn long_words_are_shortened_in_messages() {
    let word = "x".repeat(100);
    let (_, kind, _) = error(&format!("(2 a) {word}"));
    assert_eq!(
        kind,
        ParseErrorKind::TrailingCharacters {
            found: format!("`{}...`", "x".repeat(24))
        }
    );
}

#[test]
fn treebank_lines_blank_lines_and_crlf() {
    let trees = parse_treebank(b"(3 (2 a) (3 b))\r\n\r\n   \n(1 c)\n").unwrap();
    assert_eq!(trees.len(), 2);
    assert_eq!(trees[0].to_string(), "(3 (2 a) (3 b))");
    assert_eq!(trees[1].to_string(), "(1 c)");
    assert!(parse_treebank(b"").unwrap().is_empty());

    let err = parse_treebank(b"(1 c)\n\n(2 (2 a) (2 b) x)\n").unwrap_err();
    assert_eq!((err.line(), err.column()), (3, 16));
    assert_eq!(err.file(), None);
    assert_eq!(
        err.to_string(),
        "line 3, column 16: a node must have either one word or two children, not both"
    );

    let err = parse_treebank(b"(1 c)\n(2 ab\xff)\n").unwrap_err();
    assert_eq!(
        (err.line(), err.column(), err.kind()),
        (2, 6, &ParseErrorKind::InvalidUtf8)
    );
}

#[test]
fn file_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bank.txt");
    std::fs::write(&path, "(2 (2 a) (2 b))\n(2 (2 a) (2 b)\n").unwrap();
    let err = read_treebank(&path).unwrap_err();
    let TreebankError::Parse(parse) = &err else {
        panic!("expected a parse error, got {err}")
    };
    assert_eq!(parse.file(), Some(path.as_path()));
    assert_eq!((parse.line(), parse.column()), (2, 15));
    assert_eq!(
        err.to_string(),
        format!(
            "{}:2:15: unexpected end of line: expected ')' to close the node",
            path.display()
        )
    );
    assert!(std::error::Error::source(&err).is_some());

    let missing = dir.path().join("missing.txt");
    let err = read_treebank(&missing).unwrap_err();
    assert!(
        matches!(&err, TreebankError::Io { path, .. } if *path == missing),
        "{err}"
    );
    assert!(err.to_string().contains("missing.txt"), "{err}");

    std::fs::write(&path, "(4 (4 fine) (2 here))\n").unwrap();
    assert_eq!(
        read_treebank(&path).unwrap(),
        [tree("(4 (4 fine) (2 here))")]
    );
}

/// A right-branching tree `depth` levels deep, as text.
fn deep_line(depth: usize) -> String {
    let mut line = String::with_capacity(depth * 12);
    for _ in 0..depth {
        line.push_str("(1 (2 w) ");
    }
    line.push_str("(3 end)");
    line.push_str(&")".repeat(depth));
    line
}

#[test]
fn deep_trees_do_not_overflow_the_stack() {
    // Run in a thread with a small stack, so recursion anywhere would fail.
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(|| {
            let depth = 200_000;
            let line = deep_line(depth);
            let t = tree(&line);
            assert_eq!(t.node_count(), 2 * depth + 1);
            assert_eq!(t.heights()[t.root()], depth);
            assert_eq!(t.to_string(), line);
            let copy = t.clone();
            assert_eq!(copy, t);
            drop(copy);
            // Unclosed: the error comes at the end, without recursion either.
            let err = Tree::parse(&line[..line.len() - 1]).unwrap_err();
            assert_eq!(
                *err.kind(),
                ParseErrorKind::UnexpectedEnd {
                    expected: "')' to close the node"
                }
            );
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn join_and_leaf_build_trees() {
    let t = Tree::join(
        Tree::join(Tree::leaf("a", 2), Tree::leaf("b", 3), 3),
        Tree::leaf("c", 1),
        2,
    );
    assert_eq!(t, tree("(2 (3 (2 a) (3 b)) (1 c))"));
    let t = Tree::join(Tree::leaf("x", 0), t, 4);
    assert_eq!(t, tree("(4 (0 x) (2 (3 (2 a) (3 b)) (1 c)))"));
}

#[test]
#[should_panic(expected = "Tree::join: label 5 is outside 0..=4")]
fn join_rejects_bad_labels() {
    Tree::join(Tree::leaf("a", 2), Tree::leaf("b", 2), 5);
}

#[test]
#[should_panic(
    expected = "Tree::leaf: a word must be non-empty, without ASCII spaces or parentheses"
)]
fn leaf_rejects_unprintable_words() {
    Tree::leaf("two words", 2);
}

fn arb_word() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9'.,\\\\/\u{a0}é-]{1,6}"
}

fn arb_tree() -> impl Strategy<Value = Tree> {
    let leaf = (arb_word(), 0u8..=4).prop_map(|(word, label)| Tree::leaf(&word, label));
    leaf.prop_recursive(8, 64, 2, |inner| {
        (inner.clone(), inner, 0u8..=4)
            .prop_map(|(left, right, label)| Tree::join(left, right, label))
    })
}

/// Lines close to valid ones: one character deleted, inserted or replaced.
fn arb_mutated_line() -> impl Strategy<Value = String> {
    let alphabet = prop::sample::select(vec![
        '(', ')', ' ', '0', '2', '4', '5', 'a', '\u{a0}', '\n', '\t',
    ]);
    (
        arb_tree(),
        any::<prop::sample::Index>(),
        alphabet,
        0..3usize,
    )
        .prop_map(|(t, at, c, op)| {
            let mut chars: Vec<char> = t.to_string().chars().collect();
            let i = at.index(chars.len());
            match op {
                0 => {
                    chars.remove(i);
                }
                1 => chars.insert(i, c),
                _ => chars[i] = c,
            }
            chars.into_iter().collect()
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn printing_then_parsing_gives_the_same_tree(t in arb_tree()) {
        let line = t.to_string();
        let back = Tree::parse(&line).unwrap();
        prop_assert_eq!(&back, &t);
        prop_assert_eq!(back.node_count(), 2 * back.leaf_count() - 1);
        // Every internal node's children come before it.
        for (index, node) in back.nodes().iter().enumerate() {
            if let Node::Internal { left, right, .. } = *node {
                prop_assert!(left < right && right < index);
            }
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = parse_treebank(&bytes);
    }

    #[test]
    fn random_bracket_soup_never_panics(line in "[() 0-6ab\u{a0}é\t\r]{0,60}") {
        if let Ok(t) = Tree::parse(&line) {
            prop_assert_eq!(Tree::parse(&t.to_string()).unwrap(), t);
        }
    }

    #[test]
    fn mutated_lines_parse_or_fail_cleanly(line in arb_mutated_line()) {
        match parse_treebank(line.as_bytes()) {
            Ok(trees) => {
                for t in trees {
                    prop_assert_eq!(Tree::parse(&t.to_string()).unwrap(), t);
                }
            }
            Err(err) => {
                prop_assert!(err.column() >= 1);
                prop_assert!(err.line() >= 1);
            }
        }
    }
}

#[test]
fn vocab_follows_first_appearance() {
    let train = parse_treebank(b"(3 (2 b) (3 (2 a) (3 b)))\n(1 (2 c) (1 a))\n").unwrap();
    let vocab = Vocab::from_trees(&train);
    assert_eq!(vocab.words(), ["<unk>", "b", "a", "c"]);
    assert_eq!(vocab.len(), 4);
    assert!(!vocab.is_empty());
    assert_eq!(vocab.index("<unk>"), 0);
    assert_eq!(vocab.index("a"), 2);
    assert_eq!(vocab.index("A"), 0);
    assert_eq!(vocab.get("A"), None);
    assert_eq!(vocab.get("c"), Some(3));
    assert_eq!(vocab.word(3), Some("c"));
    assert_eq!(vocab.word(4), None);
    assert_eq!(vocab.indices(&train[0]), [1, 2, 1]);
    assert_eq!(vocab.indices(&tree("(2 (2 c) (2 zzz))")), [3, 0]);

    let mut vocab = Vocab::default();
    assert_eq!(vocab.insert("x"), 1);
    assert_eq!(vocab.insert("x"), 1);
    assert_eq!(vocab.insert(Vocab::UNK), Vocab::UNK_INDEX);
    assert_eq!(vocab.len(), 2);
}

/// Where the shared SST data is: `SST_DIR`, or `shared/data/sst` beside the
/// workspace root.
fn sst_dir() -> PathBuf {
    match std::env::var_os("SST_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/data/sst"
        )),
    }
}

#[test]
fn reads_the_real_sst() {
    let dir = sst_dir();
    if !dir.join("train.txt").exists() {
        println!(
            "SKIPPED reads_the_real_sst: no SST data at {} (set SST_DIR to point at it)",
            dir.display()
        );
        return;
    }
    let started = std::time::Instant::now();
    let train = read_treebank(dir.join("train.txt")).unwrap();
    let elapsed = started.elapsed();
    println!("read {} in {elapsed:?}", dir.join("train.txt").display());
    let dev = read_treebank(dir.join("dev.txt")).unwrap();
    let test = read_treebank(dir.join("test.txt")).unwrap();
    assert_eq!((train.len(), dev.len(), test.len()), (8544, 1101, 2210));
    // Reading 2 MB must take milliseconds, even in a test build.
    assert!(
        elapsed.as_secs_f64() < 2.0,
        "reading train.txt took {elapsed:?}"
    );

    // Counts from the data's description and from the PyTorch baseline's reader.
    let mut roots = [0usize; 5];
    train
        .iter()
        .for_each(|t| roots[t.root_label() as usize] += 1);
    assert_eq!(roots, [1092, 2218, 1624, 2322, 1288]);
    let count = |trees: &[Tree]| -> (usize, usize) {
        (
            trees.iter().map(Tree::node_count).sum(),
            trees.iter().map(Tree::leaf_count).sum(),
        )
    };
    assert_eq!(count(&train), (318_582, 163_563));
    assert_eq!(count(&dev), (41_447, 21_274));
    assert_eq!(count(&test), (82_600, 42_405));
    assert_eq!(train.iter().map(|t| t.heights()[t.root()]).max(), Some(29));

    let vocab = Vocab::from_trees(&train);
    assert_eq!(vocab.len(), 18_281);
    assert_eq!(
        &vocab.words()[..6],
        ["<unk>", "The", "Rock", "is", "destined", "to"]
    );
    assert_eq!(vocab.words()[vocab.len() - 1], "dissing");
    assert_eq!(vocab.get("8\u{a0}1\\/2"), Some(12_333));

    // Printing gives back the file's lines exactly.
    let text = std::fs::read_to_string(dir.join("dev.txt")).unwrap();
    for (line, t) in text.lines().zip(&dev) {
        assert_eq!(t.to_string(), line);
    }
}

// --- the synthetic treebank ---

fn labels(line: &str) -> Vec<u8> {
    rule_labels(&tree(line))
}

#[test]
fn rules_hold_on_hand_built_examples() {
    // Post-order: children first, the root last.
    assert_eq!(labels("(2 great)"), [4]);
    assert_eq!(labels("(2 movie)"), [2]);
    assert_eq!(labels("(2 unknownword)"), [2]);
    // Rule 6: sums, clamped.
    assert_eq!(labels("(2 (2 the) (2 good))"), [2, 3, 3]);
    assert_eq!(labels("(2 (2 good) (2 great))"), [3, 4, 4]);
    assert_eq!(labels("(2 (2 good) (2 bad))"), [3, 1, 2]);
    assert_eq!(labels("(2 (2 awful) (2 dull))"), [0, 1, 0]);
    // Rule 2: negation flips.
    assert_eq!(labels("(2 (2 not) (2 good))"), [2, 3, 1]);
    assert_eq!(labels("(2 (2 never) (2 awful))"), [2, 0, 4]);
    assert_eq!(labels("(2 (2 not) (2 plot))"), [2, 2, 2]);
    // Only as the left child: `good not` is a plain sum.
    assert_eq!(labels("(2 (2 good) (2 not))"), [3, 2, 3]);
    // Rule 3: intensifiers strengthen, never past the ends, never from 0.
    assert_eq!(labels("(2 (2 very) (2 good))"), [2, 3, 4]);
    assert_eq!(labels("(2 (2 very) (2 bad))"), [2, 1, 0]);
    assert_eq!(labels("(2 (2 truly) (2 superb))"), [2, 4, 4]);
    assert_eq!(labels("(2 (2 extremely) (2 film))"), [2, 2, 2]);
    // Nested: not (very good) = -2; very (not good) = -2.
    assert_eq!(labels("(2 (2 not) (2 (2 very) (2 good)))"), [2, 2, 3, 4, 0]);
    assert_eq!(labels("(2 (2 very) (2 (2 not) (2 good)))"), [2, 2, 3, 1, 0]);
    // Rules 4 and 5: what follows "but" decides.
    assert_eq!(
        labels("(2 (2 great) (2 (2 but) (2 dull)))"),
        [4, 2, 1, 1, 1]
    );
    assert_eq!(
        labels("(2 (2 awful) (2 (2 yet) (2 (2 the) (2 music))))"),
        [0, 2, 2, 2, 2, 2, 2]
    );
    // A contrast phrase on the left is summed like any phrase.
    assert_eq!(labels("(2 (2 (2 but) (2 good)) (2 good))"), [2, 3, 3, 3, 4]);
    // The override reaches only the contrast phrase's parent.
    assert_eq!(
        labels("(2 (2 great) (2 (2 great) (2 (2 but) (2 bad))))"),
        [4, 4, 2, 1, 1, 1, 3]
    );
    assert_eq!(synthetic::word_score("terrible"), -2);
}

#[test]
fn generated_trees_follow_the_rules() {
    let bank = generate(&SyntheticConfig {
        seed: 3,
        train: 400,
        dev: 50,
        test: 50,
        max_depth: 6,
    });
    for t in bank.train.iter().chain(&bank.dev).chain(&bank.test) {
        assert_eq!(rule_labels(t), t.labels().collect::<Vec<_>>(), "{t}");
        assert!(t.labels().all(|label| label <= 4));
        assert!(t.heights()[t.root()] <= 6, "{t}");
        assert!(t.leaf_count() >= 2, "{t}");
        assert_eq!(Tree::parse(&t.to_string()).unwrap(), *t);
    }
}

#[test]
fn generation_is_deterministic_by_seed() {
    let config = SyntheticConfig {
        seed: 11,
        train: 100,
        dev: 20,
        test: 20,
        max_depth: 5,
    };
    let a = generate(&config);
    assert_eq!(a, generate(&config));
    let other = generate(&SyntheticConfig {
        seed: 12,
        ..config.clone()
    });
    assert_ne!(a.train, other.train);
    assert_ne!(
        a.train[..20],
        a.dev[..],
        "splits must use different streams"
    );
    // A split does not depend on the other splits' sizes.
    let bigger = generate(&SyntheticConfig {
        train: 150,
        dev: 5,
        ..config.clone()
    });
    assert_eq!(bigger.train[..100], a.train[..]);
    assert_eq!(bigger.dev[..], a.dev[..5]);
    assert_eq!(bigger.test, a.test);
    // Pinned: the generator carries its own random numbers, so the first
    // tree of a seed never changes.
    let mut generator = Generator::new(0, 0, 3);
    let first = generator.tree().to_string();
    assert_eq!(first, Generator::new(0, 0, 3).tree().to_string());
    assert_eq!(first, PINNED_FIRST_TREE, "the synthetic data changed");
}

const PINNED_FIRST_TREE: &str =
    "(0 (0 (2 (2 never) (2 this)) (0 dreadful)) (0 (2 never) (4 wonderful)))";

#[test]
fn labels_are_spread_over_all_classes() {
    let bank = generate(&SyntheticConfig {
        seed: 5,
        train: 1000,
        dev: 0,
        test: 0,
        max_depth: 6,
    });
    let mut roots = [0usize; 5];
    let mut nodes = [0usize; 5];
    for t in &bank.train {
        roots[t.root_label() as usize] += 1;
        t.labels().for_each(|label| nodes[label as usize] += 1);
    }
    let total_nodes: usize = nodes.iter().sum();
    for class in 0..5 {
        assert!(roots[class] >= 50, "root labels {roots:?}");
        assert!(roots[class] <= 450, "root labels {roots:?}");
        assert!(nodes[class] * 20 >= total_nodes, "node labels {nodes:?}");
    }
}

#[test]
fn depth_zero_gives_single_words() {
    let bank = generate(&SyntheticConfig {
        seed: 1,
        train: 20,
        dev: 0,
        test: 0,
        max_depth: 0,
    });
    assert!(bank.train.iter().all(|t| t.node_count() == 1));
}
