//! Pretrained word vectors in GloVe's text form: one word per line, then
//! its values, all separated by single ASCII spaces (`word v1 v2 ... vN`).

use std::error::Error;
use std::fmt;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use ndarray::{ArrayBase, DataMut, Dimension, Ix2};

use super::vocab::Vocab;
use crate::element::Element;

/// How strictly to read a vector file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GloveOptions {
    /// Skip lines with the wrong number of values or a value that is not a
    /// number, instead of failing. The PyTorch baseline skips lines of the
    /// wrong length (GloVe 840B has a few words containing spaces). The
    /// first line is never skipped: when it has the wrong length, the
    /// file's vectors are not the table's width and every line would be
    /// skipped, so the read fails there.
    pub skip_malformed: bool,
}

/// What a load did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GloveReport {
    /// Non-empty lines read.
    pub lines: usize,
    /// Lines whose word is in the vocabulary, copied into the table (a word
    /// given twice counts twice; the later line wins).
    pub found: usize,
    /// Malformed lines skipped (only with [`GloveOptions::skip_malformed`]).
    pub skipped: usize,
}

/// What was wrong with one line of a vector file.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GloveLineError {
    /// The line does not hold exactly one value per table column.
    WrongCount {
        /// Values expected (the table's width).
        expected: usize,
        /// Values found.
        found: usize,
    },
    /// A value is not a number.
    BadFloat {
        /// Which value, from 1.
        position: usize,
        /// The text that did not parse.
        text: String,
    },
    /// The line is not valid UTF-8.
    InvalidUtf8,
}

impl fmt::Display for GloveLineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GloveLineError::WrongCount { expected, found } => {
                write!(f, "expected a word and {expected} values, found {found}")
            }
            GloveLineError::BadFloat { position, text } => {
                write!(f, "value {position} is not a number: `{text}`")
            }
            GloveLineError::InvalidUtf8 => f.write_str("invalid UTF-8"),
        }
    }
}

/// Loading word vectors failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum GloveError {
    /// The file could not be read.
    Io {
        /// The file, when reading one.
        path: Option<PathBuf>,
        /// Why.
        source: std::io::Error,
    },
    /// The table is not a matrix with one row per vocabulary word.
    TableShape {
        /// The table's shape.
        shape: Vec<usize>,
        /// The vocabulary's size.
        vocab_len: usize,
    },
    /// A line is malformed.
    Line {
        /// The file, when reading one.
        path: Option<PathBuf>,
        /// The line, from 1.
        line: usize,
        /// What was wrong.
        kind: GloveLineError,
    },
}

impl fmt::Display for GloveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GloveError::Io {
                path: Some(path),
                source,
            } => write!(f, "cannot read {}: {source}", path.display()),
            GloveError::Io { path: None, source } => {
                write!(f, "cannot read word vectors: {source}")
            }
            GloveError::TableShape { shape, vocab_len } => write!(
                f,
                "the embedding table must be a matrix with one row per vocabulary word ({vocab_len}), got shape {shape:?}"
            ),
            GloveError::Line {
                path: Some(path),
                line,
                kind,
            } => write!(f, "{}:{line}: {kind}", path.display()),
            GloveError::Line {
                path: None,
                line,
                kind,
            } => write!(f, "line {line}: {kind}"),
        }
    }
}

impl Error for GloveError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            GloveError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Copies the vectors of a GloVe-style text file into `table` (one row per
/// word of `vocab`, one column per value); rows of words absent from the
/// file keep their values. Values are read as `f64` and rounded, as the
/// baseline's Python does. Only the lines of vocabulary words are parsed
/// as numbers; every line's length is checked.
///
/// ```
/// use cps_runtime::data::{load_glove, read_glove, GloveOptions, Vocab};
/// use ndarray::Array2;
///
/// let mut vocab = Vocab::new();
/// vocab.insert("good");
/// let mut table = Array2::<f32>::zeros((vocab.len(), 2));
/// // `load_glove("glove.840B.300d.txt", ...)` reads a file the same way.
/// let file = "good 0.5 1.5\nzebra 9 9\n".as_bytes();
/// let report = read_glove(file, &vocab, &mut table, GloveOptions::default()).unwrap();
/// assert_eq!(report.found, 1);
/// assert_eq!(table.row(1).to_vec(), [0.5, 1.5]);
/// assert_eq!(table.row(0).to_vec(), [0.0, 0.0]); // <unk>: not in the file
///
/// let err = read_glove("good 0.5\n".as_bytes(), &vocab, &mut table, GloveOptions::default()).unwrap_err();
/// assert_eq!(err.to_string(), "line 1: expected a word and 2 values, found 1");
/// ```
pub fn load_glove<A, S, D>(
    path: impl AsRef<Path>,
    vocab: &Vocab,
    table: &mut ArrayBase<S, D>,
    options: GloveOptions,
) -> Result<GloveReport, GloveError>
where
    A: Element,
    S: DataMut<Elem = A>,
    D: Dimension,
{
    let path = path.as_ref();
    let file = std::fs::File::open(path).map_err(|source| GloveError::Io {
        path: Some(path.to_path_buf()),
        source,
    })?;
    let reader = std::io::BufReader::with_capacity(1 << 20, file);
    read_vectors(reader, Some(path), vocab, table, options)
}

/// [`load_glove`] from any reader (errors name no file).
pub fn read_glove<A, S, D>(
    reader: impl BufRead,
    vocab: &Vocab,
    table: &mut ArrayBase<S, D>,
    options: GloveOptions,
) -> Result<GloveReport, GloveError>
where
    A: Element,
    S: DataMut<Elem = A>,
    D: Dimension,
{
    read_vectors(reader, None, vocab, table, options)
}

fn read_vectors<A, S, D>(
    mut reader: impl BufRead,
    path: Option<&Path>,
    vocab: &Vocab,
    table: &mut ArrayBase<S, D>,
    options: GloveOptions,
) -> Result<GloveReport, GloveError>
where
    A: Element,
    S: DataMut<Elem = A>,
    D: Dimension,
{
    let shape = table.shape().to_vec();
    let mut table = match table.view_mut().into_dimensionality::<Ix2>() {
        Ok(table) if table.nrows() == vocab.len() => table,
        _ => {
            return Err(GloveError::TableShape {
                shape,
                vocab_len: vocab.len(),
            });
        }
    };
    let dim = table.ncols();
    let mut report = GloveReport::default();
    let mut bytes = Vec::new();
    let mut values: Vec<A> = Vec::with_capacity(dim);
    for line in 1.. {
        bytes.clear();
        let read = reader
            .read_until(b'\n', &mut bytes)
            .map_err(|source| GloveError::Io {
                path: path.map(Path::to_path_buf),
                source,
            })?;
        if read == 0 {
            break;
        }
        let text = bytes.trim_ascii_end();
        if text.is_empty() {
            continue;
        }
        report.lines += 1;
        let outcome = std::str::from_utf8(text)
            .map_err(|_| GloveLineError::InvalidUtf8)
            .and_then(|text| parse_line(text, vocab, dim, &mut values));
        match outcome {
            Ok(Some(row)) => {
                table
                    .row_mut(row)
                    .iter_mut()
                    .zip(&values)
                    .for_each(|(slot, &value)| *slot = value);
                report.found += 1;
            }
            Ok(None) => {}
            Err(_) if options.skip_malformed && report.lines > 1 => report.skipped += 1,
            Err(kind) => {
                return Err(GloveError::Line {
                    path: path.map(Path::to_path_buf),
                    line,
                    kind,
                });
            }
        }
    }
    Ok(report)
}

/// Checks one line; for a vocabulary word, parses its values into `values`
/// and returns the word's row.
fn parse_line<A: Element>(
    text: &str,
    vocab: &Vocab,
    dim: usize,
    values: &mut Vec<A>,
) -> Result<Option<usize>, GloveLineError> {
    let found = text.bytes().filter(|&b| b == b' ').count();
    if found != dim {
        return Err(GloveLineError::WrongCount {
            expected: dim,
            found,
        });
    }
    let mut fields = text.split(' ');
    let word = fields.next().unwrap_or_default();
    let Some(row) = vocab.get(word) else {
        return Ok(None);
    };
    values.clear();
    for (position, field) in fields.enumerate() {
        let value: f64 = field.parse().map_err(|_| GloveLineError::BadFloat {
            position: position + 1,
            text: field.chars().take(32).collect(),
        })?;
        values.push(A::from_f64_lossy(value));
    }
    Ok(Some(row))
}
