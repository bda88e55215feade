//! Binary sentiment trees in the bracketed Penn Treebank form of the
//! Stanford Sentiment Treebank: `(3 (2 It) (4 (2 's) (4 good)))`.
//!
//! A tree is stored flat, in post-order (children before their parent, the
//! root last), the order a Tree-LSTM computes in. Nothing here recurses, so
//! neither parsing, printing, comparing nor dropping a tree can overflow
//! the stack however deep it is.

use std::error::Error;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The largest label: sentiment classes are `0..=MAX_LABEL` (very negative
/// to very positive).
pub const MAX_LABEL: u8 = 4;

/// One node of a [`Tree`], as stored in post-order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Node {
    /// A word. `leaf` is its position among the tree's leaves, counted from
    /// the left: [`Tree::word`] gives the word itself.
    Leaf {
        /// Position among the leaves, from 0 at the left.
        leaf: usize,
        /// Sentiment class, `0..=4`.
        label: u8,
    },
    /// A phrase of two sub-phrases, given as node indices (always smaller
    /// than this node's own index).
    Internal {
        /// Node index of the left child.
        left: usize,
        /// Node index of the right child.
        right: usize,
        /// Sentiment class, `0..=4`.
        label: u8,
    },
}

impl Node {
    /// The node's sentiment class.
    pub fn label(&self) -> u8 {
        match *self {
            Node::Leaf { label, .. } | Node::Internal { label, .. } => label,
        }
    }

    /// Whether the node is a word.
    pub fn is_leaf(&self) -> bool {
        matches!(self, Node::Leaf { .. })
    }
}

/// A binary tree with a sentiment label on every node and a word on every
/// leaf.
///
/// Nodes are numbered in post-order: children come before their parent and
/// the root is last, so a loop over [`nodes`](Tree::nodes) visits every
/// node after its children. Leaves are numbered separately from the left.
///
/// ```
/// use cps_runtime::data::{Node, Tree};
///
/// let tree: Tree = "(3 (2 It) (4 (2 's) (4 good)))".parse().unwrap();
/// assert_eq!(tree.node_count(), 5);
/// assert_eq!(tree.words().collect::<Vec<_>>(), ["It", "'s", "good"]);
/// assert_eq!(tree.labels().collect::<Vec<_>>(), [2, 2, 4, 4, 3]);
/// assert_eq!(tree.root_label(), 3);
/// assert_eq!(tree.node(tree.root()), Node::Internal { left: 0, right: 3, label: 3 });
/// assert_eq!(tree.to_string(), "(3 (2 It) (4 (2 's) (4 good)))");
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Tree {
    nodes: Vec<Node>,
    /// Every leaf's word, concatenated: one allocation per tree, not per word.
    text: String,
    /// End of each leaf's word in `text`.
    word_ends: Vec<usize>,
}

impl Tree {
    /// A tree of one word.
    ///
    /// # Panics
    /// When `label` is above 4, or `word` is empty or contains an ASCII
    /// space or a parenthesis (it could not be read back).
    pub fn leaf(word: &str, label: u8) -> Tree {
        check_label("Tree::leaf", label);
        assert!(
            !word.is_empty() && !word.bytes().any(|b| matches!(b, b' ' | b'(' | b')')),
            "Tree::leaf: a word must be non-empty, without ASCII spaces or parentheses, got {word:?}"
        );
        Tree {
            nodes: vec![Node::Leaf { leaf: 0, label }],
            text: word.to_string(),
            word_ends: vec![word.len()],
        }
    }

    /// The tree whose root has `left` and `right` as children.
    ///
    /// ```
    /// use cps_runtime::data::Tree;
    ///
    /// let tree = Tree::join(Tree::leaf("not", 2), Tree::leaf("good", 3), 1);
    /// assert_eq!(tree.to_string(), "(1 (2 not) (3 good))");
    /// ```
    ///
    /// # Panics
    /// When `label` is above 4.
    pub fn join(left: Tree, right: Tree, label: u8) -> Tree {
        check_label("Tree::join", label);
        let Tree {
            mut nodes,
            mut text,
            mut word_ends,
        } = left;
        let node_offset = nodes.len();
        let leaf_offset = word_ends.len();
        let text_offset = text.len();
        nodes.reserve(right.nodes.len() + 1);
        nodes.extend(right.nodes.iter().map(|node| match *node {
            Node::Leaf { leaf, label } => Node::Leaf {
                leaf: leaf + leaf_offset,
                label,
            },
            Node::Internal { left, right, label } => Node::Internal {
                left: left + node_offset,
                right: right + node_offset,
                label,
            },
        }));
        nodes.push(Node::Internal {
            left: node_offset - 1,
            right: nodes.len() - 1,
            label,
        });
        text.push_str(&right.text);
        word_ends.extend(right.word_ends.iter().map(|end| end + text_offset));
        Tree {
            nodes,
            text,
            word_ends,
        }
    }

    /// Parses one tree in bracketed form. Tokens are separated by ASCII
    /// spaces only (a no-break space belongs to the word it is in); ASCII
    /// whitespace around the tree is ignored. Never panics: any malformed
    /// input is an error naming the column (line 1) and what was expected.
    ///
    /// ```
    /// use cps_runtime::data::Tree;
    ///
    /// let err = Tree::parse("(3 (2 a) (5 b))").unwrap_err();
    /// assert_eq!(err.column(), 11);
    /// assert_eq!(err.to_string(), "line 1, column 11: expected a label 0-4, found `5`");
    /// ```
    pub fn parse(line: &str) -> Result<Tree, ParseError> {
        parse_line(line).map_err(|(column, kind)| ParseError {
            file: None,
            line: 1,
            column,
            kind,
        })
    }

    /// The number of nodes, leaves included.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The number of leaves (words).
    pub fn leaf_count(&self) -> usize {
        self.word_ends.len()
    }

    /// The nodes in post-order: every node after its children, the root last.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The node with post-order index `index`.
    ///
    /// # Panics
    /// When `index` is not below [`node_count`](Tree::node_count).
    pub fn node(&self, index: usize) -> Node {
        self.nodes[index]
    }

    /// The index of the root (the last node).
    pub fn root(&self) -> usize {
        self.nodes.len() - 1
    }

    /// The root's label: the sentiment of the whole sentence.
    pub fn root_label(&self) -> u8 {
        self.nodes[self.root()].label()
    }

    /// Every node's label, in post-order (the order of [`nodes`](Tree::nodes)).
    pub fn labels(&self) -> impl ExactSizeIterator<Item = u8> + '_ {
        self.nodes.iter().map(Node::label)
    }

    /// The word of leaf number `leaf` (counted from the left).
    ///
    /// # Panics
    /// When `leaf` is not below [`leaf_count`](Tree::leaf_count).
    pub fn word(&self, leaf: usize) -> &str {
        let start = if leaf == 0 {
            0
        } else {
            self.word_ends[leaf - 1]
        };
        &self.text[start..self.word_ends[leaf]]
    }

    /// The words, left to right.
    pub fn words(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        (0..self.leaf_count()).map(|leaf| self.word(leaf))
    }

    /// Each node's height (0 for a leaf, one more than its taller child
    /// otherwise), in post-order. Nodes of equal height do not depend on
    /// each other, so they can be computed together.
    pub fn heights(&self) -> Vec<usize> {
        let mut heights: Vec<usize> = Vec::with_capacity(self.nodes.len());
        for node in &self.nodes {
            let height = match *node {
                Node::Leaf { .. } => 0,
                Node::Internal { left, right, .. } => 1 + heights[left].max(heights[right]),
            };
            heights.push(height);
        }
        heights
    }
}

impl FromStr for Tree {
    type Err = ParseError;
    fn from_str(line: &str) -> Result<Tree, ParseError> {
        Tree::parse(line)
    }
}

/// Prints the tree in the bracketed form [`Tree::parse`] reads, on one line.
impl fmt::Display for Tree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        enum Step {
            Open(usize),
            Space,
            Close,
        }
        let mut steps = vec![Step::Open(self.root())];
        while let Some(step) = steps.pop() {
            match step {
                Step::Open(index) => match self.nodes[index] {
                    Node::Leaf { leaf, label } => write!(f, "({label} {})", self.word(leaf))?,
                    Node::Internal { left, right, label } => {
                        write!(f, "({label} ")?;
                        steps.extend([
                            Step::Close,
                            Step::Open(right),
                            Step::Space,
                            Step::Open(left),
                        ]);
                    }
                },
                Step::Space => f.write_str(" ")?,
                Step::Close => f.write_str(")")?,
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Tree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tree({self})")
    }
}

fn check_label(operation: &str, label: u8) {
    assert!(
        label <= MAX_LABEL,
        "{operation}: label {label} is outside 0..={MAX_LABEL}"
    );
}

/// What was wrong in a line that should hold a tree.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// A tree must start with `(`.
    ExpectedOpen {
        /// What stood there instead.
        found: String,
    },
    /// Every `(` must be followed by a label `0`..`4`.
    ExpectedLabel {
        /// What stood there instead.
        found: String,
    },
    /// A `)` right after the label: the node has neither a word nor children.
    EmptyNode,
    /// A leaf holds one word: a second word or stray text followed it.
    ExtraWord {
        /// The token after the leaf's word.
        found: String,
    },
    /// A node must have exactly two children; it had `found` (1, or 3 meaning "more than two").
    ChildCount {
        /// How many children the node had (3 stands for "more than two").
        found: usize,
    },
    /// A node mixed a word and subtrees.
    WordAndSubtree,
    /// The line ended inside the tree.
    UnexpectedEnd {
        /// What the tree still needed.
        expected: &'static str,
    },
    /// Something followed the tree's closing `)`.
    TrailingCharacters {
        /// The first token after the tree.
        found: String,
    },
    /// The line is not valid UTF-8.
    InvalidUtf8,
}

impl fmt::Display for ParseErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseErrorKind::ExpectedOpen { found } => write!(f, "expected '(' to start a tree, found {found}"),
            ParseErrorKind::ExpectedLabel { found } => write!(f, "expected a label 0-4, found {found}"),
            ParseErrorKind::EmptyNode => {
                f.write_str("a node must have one word or exactly two children, found ')' right after the label")
            }
            ParseErrorKind::ExtraWord { found } => {
                write!(f, "a leaf must hold exactly one word: expected ')', found {found}")
            }
            ParseErrorKind::ChildCount { found: 1 } => {
                f.write_str("a node must have exactly two children, found 1")
            }
            ParseErrorKind::ChildCount { found } if *found > 2 => {
                f.write_str("a node must have exactly two children, found more than 2")
            }
            ParseErrorKind::ChildCount { found } => {
                write!(f, "a node must have exactly two children, found {found}")
            }
            ParseErrorKind::WordAndSubtree => {
                f.write_str("a node must have either one word or two children, not both")
            }
            ParseErrorKind::UnexpectedEnd { expected } => {
                write!(f, "unexpected end of line: expected {expected}")
            }
            ParseErrorKind::TrailingCharacters { found } => {
                write!(f, "trailing characters after the tree: found {found}")
            }
            ParseErrorKind::InvalidUtf8 => f.write_str("invalid UTF-8"),
        }
    }
}

/// A malformed tree: where it is (file, line, column) and what was expected.
///
/// Lines and columns count from 1; a column counts characters, not bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    file: Option<PathBuf>,
    line: usize,
    column: usize,
    kind: ParseErrorKind,
}

impl ParseError {
    /// The file the tree came from, when it was read from one.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// The line, from 1.
    pub fn line(&self) -> usize {
        self.line
    }

    /// The column, from 1, in characters.
    pub fn column(&self) -> usize {
        self.column
    }

    /// What was wrong.
    pub fn kind(&self) -> &ParseErrorKind {
        &self.kind
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(file) => write!(
                f,
                "{}:{}:{}: {}",
                file.display(),
                self.line,
                self.column,
                self.kind
            ),
            None => write!(
                f,
                "line {}, column {}: {}",
                self.line, self.column, self.kind
            ),
        }
    }
}

impl Error for ParseError {}

/// Reading a treebank file failed: the file could not be read, or a line
/// in it is not a tree.
#[derive(Debug)]
pub enum TreebankError {
    /// The file could not be read.
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line is not a well-formed tree.
    Parse(ParseError),
}

impl fmt::Display for TreebankError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TreebankError::Io { path, source } => {
                write!(f, "cannot read {}: {source}", path.display())
            }
            TreebankError::Parse(error) => error.fmt(f),
        }
    }
}

impl Error for TreebankError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            TreebankError::Io { source, .. } => Some(source),
            TreebankError::Parse(error) => Some(error),
        }
    }
}

impl From<ParseError> for TreebankError {
    fn from(error: ParseError) -> Self {
        TreebankError::Parse(error)
    }
}

/// Parses a treebank: one tree per line, blank lines skipped (as the
/// PyTorch baseline does). Lines end in `\n`; a `\r` before it is ignored.
///
/// ```
/// use cps_runtime::data::parse_treebank;
///
/// let trees = parse_treebank(b"(4 (3 fine) (4 work))\n\n(1 awful)\n").unwrap();
/// assert_eq!(trees.len(), 2);
/// let err = parse_treebank(b"(2 ok)\n(2 (2 a))\n").unwrap_err();
/// assert_eq!((err.line(), err.column()), (2, 9));
/// ```
pub fn parse_treebank(bytes: &[u8]) -> Result<Vec<Tree>, ParseError> {
    let mut trees = Vec::new();
    for (number, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = number + 1;
        let text = match std::str::from_utf8(raw) {
            Ok(text) => text,
            Err(error) => {
                let valid = std::str::from_utf8(&raw[..error.valid_up_to()]).unwrap_or_default();
                let column = valid.chars().count() + 1;
                return Err(ParseError {
                    file: None,
                    line,
                    column,
                    kind: ParseErrorKind::InvalidUtf8,
                });
            }
        };
        if text.trim_ascii().is_empty() {
            continue;
        }
        let tree = parse_line(text).map_err(|(column, kind)| ParseError {
            file: None,
            line,
            column,
            kind,
        })?;
        trees.push(tree);
    }
    Ok(trees)
}

/// Reads a treebank file (one tree per line, blank lines skipped), such as
/// the SST's `train.txt`. Errors name the file, line and column.
///
/// ```no_run
/// use cps_runtime::data::read_treebank;
///
/// let train = read_treebank("sst/train.txt")?;
/// println!("{} trees", train.len());
/// # Ok::<(), cps_runtime::data::TreebankError>(())
/// ```
pub fn read_treebank(path: impl AsRef<Path>) -> Result<Vec<Tree>, TreebankError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| TreebankError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_treebank(&bytes).map_err(|error| {
        TreebankError::Parse(ParseError {
            file: Some(path.to_path_buf()),
            ..error
        })
    })
}

#[derive(Clone, Copy)]
enum Token<'a> {
    Open,
    Close,
    Word(&'a str),
    End,
}

/// Splits a line into `(`, `)` and words; only ASCII spaces separate.
struct Lexer<'a> {
    line: &'a str,
    position: usize,
    end: usize,
}

impl<'a> Lexer<'a> {
    /// The next token and its byte offset in the line.
    fn next(&mut self) -> (usize, Token<'a>) {
        let bytes = self.line.as_bytes();
        while self.position < self.end && bytes[self.position] == b' ' {
            self.position += 1;
        }
        let start = self.position;
        if start >= self.end {
            return (self.end, Token::End);
        }
        let token = match bytes[start] {
            b'(' => {
                self.position += 1;
                Token::Open
            }
            b')' => {
                self.position += 1;
                Token::Close
            }
            _ => {
                while self.position < self.end
                    && !matches!(bytes[self.position], b' ' | b'(' | b')')
                {
                    self.position += 1;
                }
                // The bytes that end a word are ASCII, so both ends are
                // character boundaries.
                Token::Word(&self.line[start..self.position])
            }
        };
        (start, token)
    }
}

fn describe(token: Token<'_>) -> String {
    match token {
        Token::Open => "'('".to_string(),
        Token::Close => "')'".to_string(),
        Token::End => "the end of the line".to_string(),
        Token::Word(word) => {
            const SHOWN: usize = 24;
            if word.chars().count() > SHOWN {
                format!("`{}...`", word.chars().take(SHOWN).collect::<String>())
            } else {
                format!("`{word}`")
            }
        }
    }
}

/// An internal node whose children are not all parsed yet.
struct Open {
    label: u8,
    left: Option<usize>,
}

/// Parses one line; on error returns the column (from 1, in characters) and
/// what was wrong.
fn parse_line(line: &str) -> Result<Tree, (usize, ParseErrorKind)> {
    let leading = line.len() - line.trim_ascii_start().len();
    let end = leading + line[leading..].trim_ascii_end().len();
    let mut lexer = Lexer {
        line,
        position: leading,
        end,
    };
    let column = |offset: usize| line[..offset].chars().count() + 1;
    let fail = |offset: usize, kind: ParseErrorKind| Err((column(offset), kind));

    // Every node opens with '(', so this sizes the buffers exactly for a
    // well-formed line: no reallocation while parsing.
    let opens = line.as_bytes()[leading..end]
        .iter()
        .filter(|&&b| b == b'(')
        .count();
    let mut tree = Tree {
        nodes: Vec::with_capacity(opens),
        text: String::with_capacity(end - leading),
        word_ends: Vec::with_capacity(opens.div_ceil(2)),
    };
    let mut stack: Vec<Open> = Vec::new();

    match lexer.next() {
        (_, Token::Open) => {}
        (_, Token::End) => {
            return fail(
                end,
                ParseErrorKind::UnexpectedEnd {
                    expected: "'(' to start a tree",
                },
            );
        }
        (offset, token) => {
            return fail(
                offset,
                ParseErrorKind::ExpectedOpen {
                    found: describe(token),
                },
            );
        }
    }
    // Each turn of this loop starts right after a '(' and reads one node:
    // a leaf completes at once; an internal node is pushed and its first
    // child read on the next turn.
    loop {
        let label = match lexer.next() {
            (_, Token::Word(word))
                if word.len() == 1 && (b'0'..=b'0' + MAX_LABEL).contains(&word.as_bytes()[0]) =>
            {
                word.as_bytes()[0] - b'0'
            }
            (_, Token::End) => {
                return fail(
                    end,
                    ParseErrorKind::UnexpectedEnd {
                        expected: "a label 0-4",
                    },
                );
            }
            (offset, token) => {
                return fail(
                    offset,
                    ParseErrorKind::ExpectedLabel {
                        found: describe(token),
                    },
                );
            }
        };
        let mut completed = match lexer.next() {
            (_, Token::Word(word)) => {
                match lexer.next() {
                    (_, Token::Close) => {}
                    (offset, Token::Open) => return fail(offset, ParseErrorKind::WordAndSubtree),
                    (_, Token::End) => {
                        return fail(
                            end,
                            ParseErrorKind::UnexpectedEnd {
                                expected: "')' to close the leaf",
                            },
                        );
                    }
                    (offset, token) => {
                        return fail(
                            offset,
                            ParseErrorKind::ExtraWord {
                                found: describe(token),
                            },
                        );
                    }
                }
                let leaf = tree.word_ends.len();
                tree.text.push_str(word);
                tree.word_ends.push(tree.text.len());
                tree.nodes.push(Node::Leaf { leaf, label });
                tree.nodes.len() - 1
            }
            (_, Token::Open) => {
                stack.push(Open { label, left: None });
                continue;
            }
            (offset, Token::Close) => return fail(offset, ParseErrorKind::EmptyNode),
            (_, Token::End) => {
                return fail(
                    end,
                    ParseErrorKind::UnexpectedEnd {
                        expected: "a word or '(' after the label",
                    },
                );
            }
        };
        // Hand the completed node to its parent, closing every parent it completes.
        loop {
            let Some(parent) = stack.last_mut() else {
                return match lexer.next() {
                    (_, Token::End) => Ok(tree),
                    (offset, token) => fail(
                        offset,
                        ParseErrorKind::TrailingCharacters {
                            found: describe(token),
                        },
                    ),
                };
            };
            match (parent.left, lexer.next()) {
                (None, (_, Token::Open)) => {
                    parent.left = Some(completed);
                    break;
                }
                (Some(left), (_, Token::Close)) => {
                    let label = parent.label;
                    stack.pop();
                    tree.nodes.push(Node::Internal {
                        left,
                        right: completed,
                        label,
                    });
                    completed = tree.nodes.len() - 1;
                }
                (None, (offset, Token::Close)) => {
                    return fail(offset, ParseErrorKind::ChildCount { found: 1 });
                }
                (Some(_), (offset, Token::Open)) => {
                    return fail(offset, ParseErrorKind::ChildCount { found: 3 });
                }
                (_, (offset, Token::Word(_))) => {
                    return fail(offset, ParseErrorKind::WordAndSubtree);
                }
                (None, (_, Token::End)) => {
                    return fail(
                        end,
                        ParseErrorKind::UnexpectedEnd {
                            expected: "'(' to start the second child",
                        },
                    );
                }
                (Some(_), (_, Token::End)) => {
                    return fail(
                        end,
                        ParseErrorKind::UnexpectedEnd {
                            expected: "')' to close the node",
                        },
                    );
                }
            }
        }
    }
}
