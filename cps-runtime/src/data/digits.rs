//! scikit-learn's handwritten digits (`load_digits`): 1797 images of 8×8
//! pixels, each pixel a count 0..=16 of ink, labelled with the digit drawn
//! (the test set of UCI's "Optical Recognition of Handwritten Digits",
//! Alpaydin and Kaynak, 1998).
//!
//! The file is scikit-learn's `digits.csv.gz`: gzip'd CSV without a
//! header, one image per line, its 64 pixels in row-major order and then
//! its label.

use std::error::Error;
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use ndarray::{Array2, ArrayView2, Axis};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

/// Images of digits with their labels.
///
/// ```
/// use cps_runtime::data::{Digits, parse_digits};
///
/// let row = |label: usize| format!("{}{label}\n", "0,".repeat(64));
/// let digits = parse_digits(format!("{}{}", row(3), row(7)).as_bytes()).unwrap();
/// assert_eq!(digits.len(), 2);
/// assert_eq!(digits.images.dim(), (2, Digits::PIXELS));
/// assert_eq!(digits.labels, [3, 7]);
/// assert_eq!(digits.image(1).dim(), (Digits::SIDE, Digits::SIDE));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Digits {
    /// One image per row (`len() × 64`): the 8×8 pixels in row-major
    /// order, as read (whole numbers 0.0..=16.0, not scaled).
    pub images: Array2<f32>,
    /// Each image's digit, `0..=9`.
    pub labels: Vec<usize>,
}

impl Digits {
    /// The height and width of an image.
    pub const SIDE: usize = 8;
    /// The pixels of an image.
    pub const PIXELS: usize = Self::SIDE * Self::SIDE;
    /// The largest pixel value.
    pub const MAX_PIXEL: u8 = 16;
    /// The number of classes (the digits 0..=9).
    pub const CLASSES: usize = 10;

    /// The number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The images with their pixels divided by [`MAX_PIXEL`](Digits::MAX_PIXEL),
    /// in `0..=1`: the inputs a network takes.
    ///
    /// ```
    /// use cps_runtime::data::parse_digits;
    ///
    /// let digits = parse_digits(format!("{}16,3\n", "8,".repeat(63)).as_bytes()).unwrap();
    /// assert_eq!(digits.scaled_images().row(0)[0], 0.5);
    /// assert_eq!(digits.scaled_images().row(0)[63], 1.0);
    /// ```
    pub fn scaled_images(&self) -> Array2<f32> {
        &self.images / f32::from(Self::MAX_PIXEL)
    }

    /// Image `i` as an 8×8 grid.
    ///
    /// # Panics
    /// When `i` is not below [`len`](Digits::len).
    pub fn image(&self, i: usize) -> ArrayView2<'_, f32> {
        self.images
            .row(i)
            .into_shape_with_order((Self::SIDE, Self::SIDE))
            .expect("a row of an owned matrix is contiguous")
    }

    /// How many images there are of each digit.
    pub fn class_counts(&self) -> [usize; Self::CLASSES] {
        let mut counts = [0; Self::CLASSES];
        for &label in &self.labels {
            counts[label] += 1;
        }
        counts
    }

    /// The images at `indices`, in that order.
    ///
    /// # Panics
    /// When an index is not below [`len`](Digits::len).
    pub fn select(&self, indices: &[usize]) -> Digits {
        Digits {
            images: self.images.select(Axis(0), indices),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
        }
    }

    /// Splits the images into a training set and a test set, `(train,
    /// test)`: the test set is a fifth of the images, rounded up (as
    /// scikit-learn's `train_test_split(test_size=0.2)` does: 360 of the
    /// 1797, leaving 1437 to train on), drawn by shuffling the images with
    /// `StdRng::seed_from_u64(seed)`. Both sets keep the shuffled order.
    ///
    /// A seed always gives the same split with the same version of `rand`
    /// (whose `StdRng` algorithm may change between versions); the split
    /// is not scikit-learn's, whose generator differs.
    ///
    /// ```
    /// use cps_runtime::data::parse_digits;
    ///
    /// let csv: String = (0..10).map(|d| format!("{}{d}\n", "0,".repeat(64))).collect();
    /// let digits = parse_digits(csv.as_bytes()).unwrap();
    /// let (train, test) = digits.train_test_split(1);
    /// assert_eq!((train.len(), test.len()), (8, 2));
    /// assert_eq!(digits.train_test_split(1), (train, test));
    /// ```
    pub fn train_test_split(&self, seed: u64) -> (Digits, Digits) {
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.shuffle(&mut StdRng::seed_from_u64(seed));
        let (test, train) = order.split_at(self.len().div_ceil(5));
        (self.select(train), self.select(test))
    }
}

/// What was wrong with one line of a digits file.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum DigitsLineError {
    /// The line does not hold 65 values.
    ColumnCount {
        /// The values found.
        found: usize,
    },
    /// A value is not a number.
    NotANumber {
        /// Which value, from 1.
        column: usize,
        /// The text that did not parse (at most 32 characters of it).
        text: String,
    },
    /// A pixel is not a whole number 0..=16.
    PixelOutOfRange {
        /// Which value, from 1.
        column: usize,
        /// The value found.
        value: f64,
    },
    /// The label (the last value) is not a whole number 0..=9.
    LabelOutOfRange {
        /// The value found.
        value: f64,
    },
    /// The line is not valid UTF-8.
    InvalidUtf8,
}

impl fmt::Display for DigitsLineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let columns = Digits::PIXELS + 1;
        match self {
            DigitsLineError::ColumnCount { found } => write!(
                f,
                "expected {columns} comma-separated values (64 pixels, then the label), found {found}"
            ),
            DigitsLineError::NotANumber { column, text } => {
                write!(f, "value {column} is not a number: `{text}`")
            }
            DigitsLineError::PixelOutOfRange { column, value } => write!(
                f,
                "value {column} is a pixel, expected a whole number 0 to {}, found {value}",
                Digits::MAX_PIXEL
            ),
            DigitsLineError::LabelOutOfRange { value } => write!(
                f,
                "value {columns} is the label, expected a whole number 0 to {}, found {value}",
                Digits::CLASSES - 1
            ),
            DigitsLineError::InvalidUtf8 => f.write_str("invalid UTF-8"),
        }
    }
}

/// Reading digits failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum DigitsError {
    /// The file could not be opened or read.
    Io {
        /// The file, when reading one.
        path: Option<PathBuf>,
        /// Why.
        source: std::io::Error,
    },
    /// The file does not start with gzip's signature (the bytes 1f 8b).
    NotGzip {
        /// The file.
        path: PathBuf,
    },
    /// The file is gzip, but its compressed data is damaged or cut short.
    Gzip {
        /// The file.
        path: PathBuf,
        /// What the decompressor reported.
        source: std::io::Error,
    },
    /// A line is malformed.
    Line {
        /// The file, when reading one.
        path: Option<PathBuf>,
        /// The line, from 1.
        line: usize,
        /// What was wrong.
        kind: DigitsLineError,
    },
    /// There is not a single image.
    Empty {
        /// The file, when reading one.
        path: Option<PathBuf>,
    },
}

impl fmt::Display for DigitsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = |path: &Option<PathBuf>| match path {
            Some(path) => path.display().to_string(),
            None => "digits".to_string(),
        };
        match self {
            DigitsError::Io { path, source } => write!(f, "cannot read {}: {source}", name(path)),
            DigitsError::NotGzip { path } => write!(
                f,
                "{}: not a gzip file (expected it to start with the bytes 1f 8b)",
                path.display()
            ),
            DigitsError::Gzip { path, source } => {
                write!(f, "{}: damaged gzip data: {source}", path.display())
            }
            DigitsError::Line {
                path: Some(path),
                line,
                kind,
            } => write!(f, "{}:{line}: {kind}", path.display()),
            DigitsError::Line {
                path: None,
                line,
                kind,
            } => write!(f, "line {line}: {kind}"),
            DigitsError::Empty { path } => {
                write!(f, "{}: no images (expected lines of 65 values)", name(path))
            }
        }
    }
}

impl Error for DigitsError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            DigitsError::Io { source, .. } | DigitsError::Gzip { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Reads scikit-learn's `digits.csv.gz` (the file, or a folder holding
/// it): gzip'd CSV, one image per line (64 pixels 0..=16 in row-major
/// order, then the label 0..=9), no header; blank lines are skipped.
/// Errors name the file, and the line and what was expected there.
///
/// ```no_run
/// use cps_runtime::data::read_digits;
///
/// let digits = read_digits("data/digits/digits.csv.gz")?;
/// assert_eq!(digits.len(), 1797);
/// let (train, test) = digits.train_test_split(0);
/// assert_eq!((train.len(), test.len()), (1437, 360));
/// # Ok::<(), cps_runtime::data::DigitsError>(())
/// ```
pub fn read_digits(path: impl AsRef<Path>) -> Result<Digits, DigitsError> {
    let in_folder;
    let mut path = path.as_ref();
    if path.is_dir() {
        in_folder = path.join("digits.csv.gz");
        path = &in_folder;
    }
    let io_error = |source| DigitsError::Io {
        path: Some(path.to_path_buf()),
        source,
    };
    let mut file = BufReader::new(File::open(path).map_err(io_error)?);
    if !file
        .fill_buf()
        .map_err(io_error)?
        .starts_with(&[0x1f, 0x8b])
    {
        return Err(DigitsError::NotGzip {
            path: path.to_path_buf(),
        });
    }
    // Past the signature, a read error is almost always damaged data.
    read_lines(BufReader::new(MultiGzDecoder::new(file)), Some(path)).map_err(|e| match e {
        DigitsError::Io {
            path: Some(path),
            source,
        } => DigitsError::Gzip { path, source },
        other => other,
    })
}

/// Reads digits from uncompressed CSV in the form of [`read_digits`]
/// (errors name no file).
///
/// ```
/// use cps_runtime::data::parse_digits;
///
/// let csv = format!("{}17,3\n", "0,".repeat(63));
/// let err = parse_digits(csv.as_bytes()).unwrap_err();
/// assert_eq!(err.to_string(), "line 1: value 64 is a pixel, expected a whole number 0 to 16, found 17");
/// ```
pub fn parse_digits(reader: impl BufRead) -> Result<Digits, DigitsError> {
    read_lines(reader, None)
}

fn read_lines(mut reader: impl BufRead, path: Option<&Path>) -> Result<Digits, DigitsError> {
    let mut pixels: Vec<f32> = Vec::new();
    let mut labels = Vec::new();
    let mut bytes = Vec::new();
    for line in 1.. {
        bytes.clear();
        let read = reader
            .read_until(b'\n', &mut bytes)
            .map_err(|source| DigitsError::Io {
                path: path.map(Path::to_path_buf),
                source,
            })?;
        if read == 0 {
            break;
        }
        let text = bytes.trim_ascii();
        if text.is_empty() {
            continue;
        }
        let label = std::str::from_utf8(text)
            .map_err(|_| DigitsLineError::InvalidUtf8)
            .and_then(|text| parse_line(text, &mut pixels))
            .map_err(|kind| DigitsError::Line {
                path: path.map(Path::to_path_buf),
                line,
                kind,
            })?;
        labels.push(label);
    }
    if labels.is_empty() {
        return Err(DigitsError::Empty {
            path: path.map(Path::to_path_buf),
        });
    }
    let images = Array2::from_shape_vec((labels.len(), Digits::PIXELS), pixels)
        .expect("every line adds one image's pixels");
    Ok(Digits { images, labels })
}

/// Checks one line, appends its pixels to `pixels` and returns its label.
fn parse_line(text: &str, pixels: &mut Vec<f32>) -> Result<usize, DigitsLineError> {
    let found = text.split(',').count();
    let (pixel_text, label_text) = match text.rsplit_once(',') {
        Some(parts) if found == Digits::PIXELS + 1 => parts,
        _ => return Err(DigitsLineError::ColumnCount { found }),
    };
    let number = |column: usize, field: &str| {
        let field = field.trim_ascii();
        field
            .parse::<f64>()
            .map_err(|_| DigitsLineError::NotANumber {
                column,
                text: field.chars().take(32).collect(),
            })
    };
    // NaN and the infinities fail too: their fractional part is NaN.
    let whole_up_to =
        |value: f64, max: u8| value.fract() == 0.0 && (0.0..=f64::from(max)).contains(&value);
    for (index, field) in pixel_text.split(',').enumerate() {
        let column = index + 1;
        let value = number(column, field)?;
        if !whole_up_to(value, Digits::MAX_PIXEL) {
            return Err(DigitsLineError::PixelOutOfRange { column, value });
        }
        pixels.push(value as f32);
    }
    let value = number(Digits::PIXELS + 1, label_text)?;
    if !whole_up_to(value, Digits::CLASSES as u8 - 1) {
        return Err(DigitsLineError::LabelOutOfRange { value });
    }
    Ok(value as usize)
}
