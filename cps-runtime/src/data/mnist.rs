//! MNIST (LeCun, Bottou, Bengio and Haffner, 1998) in its original IDX
//! format: handwritten digits of 28×28 grey pixels, 60,000 to train on
//! and 10,000 to test, each with its label.
//!
//! An IDX file is a big-endian header (a magic number `0x0000_08DD`: two
//! zero bytes, the type code `0x08` of unsigned bytes, then the number of
//! dimensions `DD`), one 32-bit size per dimension, then the values in
//! row-major order. Images are three-dimensional (count, rows, columns),
//! labels one-dimensional. Files may be gzip'd (as distributed: `.gz`) or
//! not; which is told by their first bytes, not their names.
//!
//! The readers check everything they read: nothing in a damaged file makes
//! them panic, and each error names the file and what was wrong.

use std::error::Error;
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

/// The type code of unsigned bytes, the third byte of the magic number.
const UNSIGNED_BYTE: u8 = 0x08;

/// The magic number of an IDX file of unsigned bytes in `dims` dimensions.
const fn magic(dims: u8) -> u32 {
    ((UNSIGNED_BYTE as u32) << 8) | dims as u32
}

/// Greyscale images of one size, as read from an IDX file.
///
/// ```
/// use cps_runtime::data::IdxImages;
///
/// let images = IdxImages { rows: 2, cols: 3, pixels: (0..12).collect() };
/// assert_eq!(images.len(), 2);
/// assert_eq!(images.image(1), [6, 7, 8, 9, 10, 11]);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxImages {
    /// The height of an image.
    pub rows: usize,
    /// The width of an image.
    pub cols: usize,
    /// Every image's pixels (0 is the background, 255 full ink), image
    /// after image, each in row-major order: `len() × rows × cols` bytes.
    pub pixels: Vec<u8>,
}

impl IdxImages {
    /// The pixels of one image, `rows × cols`.
    pub fn pixels_per_image(&self) -> usize {
        self.rows * self.cols
    }

    /// The number of images.
    pub fn len(&self) -> usize {
        self.pixels
            .len()
            .checked_div(self.pixels_per_image())
            .unwrap_or(0)
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Image `i`'s pixels in row-major order.
    ///
    /// # Panics
    /// When `i` is not below [`len`](IdxImages::len).
    pub fn image(&self, i: usize) -> &[u8] {
        let size = self.pixels_per_image();
        &self.pixels[i * size..(i + 1) * size]
    }

    /// Keeps the first `n` images (all of them when there are fewer).
    pub fn truncate(&mut self, n: usize) {
        self.pixels
            .truncate(n.saturating_mul(self.pixels_per_image()));
    }
}

/// Images with their labels, checked to be as many.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelledImages {
    /// The images.
    pub images: IdxImages,
    /// Each image's digit, `0..=9`.
    pub labels: Vec<u8>,
}

impl LabelledImages {
    /// The number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Keeps the first `n` images and labels (all of them when there are
    /// fewer).
    pub fn truncate(&mut self, n: usize) {
        self.images.truncate(n);
        self.labels.truncate(n);
    }
}

/// MNIST's training and test sets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mnist {
    /// The training set (60,000 images in the full data set).
    pub train: LabelledImages,
    /// The test set (10,000 images in the full data set).
    pub test: LabelledImages,
}

impl Mnist {
    /// The file name of the training images, in the form distributed.
    pub const TRAIN_IMAGES: &str = "train-images-idx3-ubyte.gz";
    /// The file name of the training labels.
    pub const TRAIN_LABELS: &str = "train-labels-idx1-ubyte.gz";
    /// The file name of the test images.
    pub const TEST_IMAGES: &str = "t10k-images-idx3-ubyte.gz";
    /// The file name of the test labels.
    pub const TEST_LABELS: &str = "t10k-labels-idx1-ubyte.gz";
    /// The number of classes (the digits 0..=9).
    pub const CLASSES: usize = 10;
}

/// What an IDX file's sizes and contents should be, for the messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdxKind {
    /// Images: three dimensions (count, rows, columns).
    Images,
    /// Labels: one dimension (count).
    Labels,
}

impl IdxKind {
    /// The number of dimensions of this kind of file.
    pub fn dims(self) -> u8 {
        match self {
            IdxKind::Images => 3,
            IdxKind::Labels => 1,
        }
    }

    fn name(self) -> &'static str {
        match self {
            IdxKind::Images => "images",
            IdxKind::Labels => "labels",
        }
    }
}

/// Which part of an IDX file ended early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdxPart {
    /// The magic number and the sizes.
    Header,
    /// The values after the header.
    Payload,
}

/// Reading MNIST failed. Every variant names the file.
#[derive(Debug)]
#[non_exhaustive]
pub enum MnistError {
    /// The file does not exist.
    Missing {
        /// The file looked for.
        path: PathBuf,
        /// Other names looked for in its place (the uncompressed file).
        also_tried: Vec<PathBuf>,
    },
    /// The file could not be opened or read.
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is gzip, but its compressed data is damaged.
    Gzip {
        /// The file.
        path: PathBuf,
        /// What the decompressor reported.
        source: std::io::Error,
    },
    /// The first four bytes are not the magic number of an IDX file of
    /// unsigned bytes (`0x0000_08DD`).
    BadMagic {
        /// The file.
        path: PathBuf,
        /// The number found.
        found: u32,
        /// The number expected.
        expected: u32,
    },
    /// The file is IDX of unsigned bytes, but with a different number of
    /// dimensions than its kind has.
    Dimensions {
        /// The file.
        path: PathBuf,
        /// What the file should hold.
        kind: IdxKind,
        /// The number of dimensions found.
        found: u8,
    },
    /// The images have no pixels (a height or width of 0).
    EmptyImages {
        /// The file.
        path: PathBuf,
        /// The height in the header.
        rows: u32,
        /// The width in the header.
        cols: u32,
    },
    /// The header's sizes multiply to more bytes than can be addressed.
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The sizes in the header.
        sizes: Vec<u32>,
    },
    /// The file ends before the header or the values it announces.
    Truncated {
        /// The file.
        path: PathBuf,
        /// Where it ends.
        part: IdxPart,
        /// The bytes of that part the header announces.
        expected: u64,
        /// The bytes of that part found.
        found: u64,
    },
    /// The file has bytes after the values its header announces.
    TrailingBytes {
        /// The file.
        path: PathBuf,
        /// The bytes of values the header announces.
        expected: u64,
    },
    /// The image and label files hold different numbers of items.
    CountMismatch {
        /// The image file.
        images_path: PathBuf,
        /// Its number of images.
        images: usize,
        /// The label file.
        labels_path: PathBuf,
        /// Its number of labels.
        labels: usize,
    },
    /// A label is not a digit 0..=9.
    LabelOutOfRange {
        /// The label file.
        path: PathBuf,
        /// Which label, from 0.
        index: usize,
        /// The value found.
        label: u8,
    },
}

impl fmt::Display for MnistError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MnistError::Missing { path, also_tried } => {
                write!(f, "{}: no such file", path.display())?;
                for other in also_tried {
                    write!(f, " (nor {})", other.display())?;
                }
                Ok(())
            }
            MnistError::Io { path, source } => {
                write!(f, "cannot read {}: {source}", path.display())
            }
            MnistError::Gzip { path, source } => {
                write!(f, "{}: damaged gzip data: {source}", path.display())
            }
            MnistError::BadMagic {
                path,
                found,
                expected,
            } => write!(
                f,
                "{}: bad magic number 0x{found:08x}, expected 0x{expected:08x} (an IDX file of \
                 unsigned bytes)",
                path.display()
            ),
            MnistError::Dimensions { path, kind, found } => write!(
                f,
                "{}: {found} dimension{}, expected {} for {}",
                path.display(),
                if *found == 1 { "" } else { "s" },
                kind.dims(),
                kind.name()
            ),
            MnistError::EmptyImages { path, rows, cols } => write!(
                f,
                "{}: images of {rows} × {cols} pixels, expected at least one",
                path.display()
            ),
            MnistError::TooLarge { path, sizes } => write!(
                f,
                "{}: the sizes {sizes:?} in the header are too large",
                path.display()
            ),
            MnistError::Truncated {
                path,
                part,
                expected,
                found,
            } => {
                let part = match part {
                    IdxPart::Header => "header",
                    IdxPart::Payload => "values",
                };
                write!(
                    f,
                    "{}: truncated {part}: expected {expected} bytes, found {found}",
                    path.display()
                )
            }
            MnistError::TrailingBytes { path, expected } => write!(
                f,
                "{}: more bytes than the {expected} of values the header announces",
                path.display()
            ),
            MnistError::CountMismatch {
                images_path,
                images,
                labels_path,
                labels,
            } => write!(
                f,
                "{} holds {images} images but {} holds {labels} labels",
                images_path.display(),
                labels_path.display()
            ),
            MnistError::LabelOutOfRange { path, index, label } => write!(
                f,
                "{}: label {index} is {label}, expected a digit 0 to {}",
                path.display(),
                Mnist::CLASSES - 1
            ),
        }
    }
}

impl Error for MnistError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            MnistError::Io { source, .. } | MnistError::Gzip { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Reads MNIST from a folder holding its four files under their
/// distributed names ([`Mnist::TRAIN_IMAGES`] and the others), each
/// gzip'd or (without `.gz`) not.
///
/// ```no_run
/// use cps_runtime::data::read_mnist;
///
/// let mnist = read_mnist("../shared/data/mnist")?;
/// assert_eq!((mnist.train.len(), mnist.test.len()), (60_000, 10_000));
/// assert_eq!((mnist.train.images.rows, mnist.train.images.cols), (28, 28));
/// assert_eq!(mnist.train.labels[..3], [5, 0, 4]);
/// # Ok::<(), cps_runtime::data::MnistError>(())
/// ```
pub fn read_mnist(dir: impl AsRef<Path>) -> Result<Mnist, MnistError> {
    let dir = dir.as_ref();
    let find = |name: &str| -> Result<PathBuf, MnistError> {
        let compressed = dir.join(name);
        let plain = dir.join(name.trim_end_matches(".gz"));
        if compressed.exists() {
            Ok(compressed)
        } else if plain.exists() {
            Ok(plain)
        } else {
            Err(MnistError::Missing {
                path: compressed,
                also_tried: vec![plain],
            })
        }
    };
    let train = read_labelled_images(find(Mnist::TRAIN_IMAGES)?, find(Mnist::TRAIN_LABELS)?)?;
    let test = read_labelled_images(find(Mnist::TEST_IMAGES)?, find(Mnist::TEST_LABELS)?)?;
    Ok(Mnist { train, test })
}

/// Reads an image file and its label file, and checks that they hold as
/// many items.
pub fn read_labelled_images(
    images: impl AsRef<Path>,
    labels: impl AsRef<Path>,
) -> Result<LabelledImages, MnistError> {
    let (images_path, labels_path) = (images.as_ref(), labels.as_ref());
    let images = read_idx_images(images_path)?;
    let labels = read_idx_labels(labels_path)?;
    if images.len() != labels.len() {
        return Err(MnistError::CountMismatch {
            images_path: images_path.to_path_buf(),
            images: images.len(),
            labels_path: labels_path.to_path_buf(),
            labels: labels.len(),
        });
    }
    Ok(LabelledImages { images, labels })
}

/// Reads an IDX file of images (three dimensions of unsigned bytes),
/// gzip'd or not.
///
/// ```
/// use cps_runtime::data::read_idx_images;
///
/// let path = std::env::temp_dir().join(format!("cps-idx-doc-{}", std::process::id()));
/// let mut bytes = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2];
/// bytes.extend([10, 20, 30, 40]);
/// std::fs::write(&path, &bytes).unwrap();
/// let images = read_idx_images(&path).unwrap();
/// assert_eq!((images.len(), images.rows, images.cols), (2, 1, 2));
/// assert_eq!(images.image(1), [30, 40]);
///
/// std::fs::write(&path, &bytes[..18]).unwrap();
/// let error = read_idx_images(&path).unwrap_err().to_string();
/// assert!(error.ends_with("truncated values: expected 4 bytes, found 2"), "{error}");
/// # std::fs::remove_file(&path).unwrap();
/// ```
pub fn read_idx_images(path: impl AsRef<Path>) -> Result<IdxImages, MnistError> {
    let path = path.as_ref();
    let (sizes, pixels) = read_idx(path, IdxKind::Images)?;
    if sizes[1] == 0 || sizes[2] == 0 {
        return Err(MnistError::EmptyImages {
            path: path.to_path_buf(),
            rows: sizes[1],
            cols: sizes[2],
        });
    }
    Ok(IdxImages {
        rows: sizes[1] as usize,
        cols: sizes[2] as usize,
        pixels,
    })
}

/// Reads an IDX file of digit labels (one dimension of unsigned bytes,
/// each 0..=9), gzip'd or not.
pub fn read_idx_labels(path: impl AsRef<Path>) -> Result<Vec<u8>, MnistError> {
    let path = path.as_ref();
    let (_, labels) = read_idx(path, IdxKind::Labels)?;
    if let Some((index, &label)) = labels
        .iter()
        .enumerate()
        .find(|&(_, &label)| usize::from(label) >= Mnist::CLASSES)
    {
        return Err(MnistError::LabelOutOfRange {
            path: path.to_path_buf(),
            index,
            label,
        });
    }
    Ok(labels)
}

/// Reads an IDX file of `kind`: its sizes and its values.
fn read_idx(path: &Path, kind: IdxKind) -> Result<(Vec<u32>, Vec<u8>), MnistError> {
    let io_error = |source: std::io::Error| MnistError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => MnistError::Missing {
            path: path.to_path_buf(),
            also_tried: Vec::new(),
        },
        _ => io_error(source),
    })?;
    let mut file = BufReader::new(file);
    let gzip = file
        .fill_buf()
        .map_err(io_error)?
        .starts_with(&[0x1f, 0x8b]);
    if gzip {
        let mut decoder = MultiGzDecoder::new(file);
        read_idx_from(path, kind, &mut decoder).map_err(|e| match e {
            // Past the signature, a read error is almost always damaged data.
            MnistError::Io { path, source } => MnistError::Gzip { path, source },
            // Damaged data may also decompress into a wrong header or length
            // before the checksum at the end tells: read on to it, so that
            // the error says what is wrong with the file.
            other => match std::io::copy(&mut decoder, &mut std::io::sink()) {
                Err(source) => MnistError::Gzip {
                    path: path.to_path_buf(),
                    source,
                },
                Ok(_) => other,
            },
        })
    } else {
        read_idx_from(path, kind, file)
    }
}

/// Reads the header and values of an IDX file of `kind` from `reader`
/// (decompressed); `path` is for the messages.
fn read_idx_from(
    path: &Path,
    kind: IdxKind,
    mut reader: impl Read,
) -> Result<(Vec<u32>, Vec<u8>), MnistError> {
    let truncated = |part, expected: usize, found: usize| MnistError::Truncated {
        path: path.to_path_buf(),
        part,
        expected: expected as u64,
        found: found as u64,
    };
    let dims = usize::from(kind.dims());
    let header_len = 4 * (1 + dims);
    let mut header = Vec::with_capacity(header_len);
    read_up_to(path, &mut reader, header_len as u64, &mut header)?;
    let Some(first) = header.first_chunk::<4>() else {
        return Err(truncated(IdxPart::Header, header_len, header.len()));
    };
    let found = u32::from_be_bytes(*first);
    if found >> 8 != u32::from(UNSIGNED_BYTE) {
        return Err(MnistError::BadMagic {
            path: path.to_path_buf(),
            found,
            expected: magic(kind.dims()),
        });
    }
    if found & 0xff != u32::from(kind.dims()) {
        return Err(MnistError::Dimensions {
            path: path.to_path_buf(),
            kind,
            found: (found & 0xff) as u8,
        });
    }
    if header.len() < header_len {
        return Err(truncated(IdxPart::Header, header_len, header.len()));
    }
    let sizes: Vec<u32> = header[4..]
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let expected = sizes
        .iter()
        .try_fold(1usize, |total, &size| total.checked_mul(size as usize))
        .filter(|&total| u64::try_from(total).is_ok_and(|t| t < u64::MAX))
        .ok_or_else(|| MnistError::TooLarge {
            path: path.to_path_buf(),
            sizes: sizes.clone(),
        })?;
    // Read one byte more than announced, to tell trailing bytes; the
    // buffer grows with what is there, not with what the header claims.
    let mut values = Vec::new();
    read_up_to(path, &mut reader, expected as u64 + 1, &mut values)?;
    if values.len() < expected {
        return Err(truncated(IdxPart::Payload, expected, values.len()));
    }
    if values.len() > expected {
        return Err(MnistError::TrailingBytes {
            path: path.to_path_buf(),
            expected: expected as u64,
        });
    }
    Ok((sizes, values))
}

/// Appends at most `limit` bytes of `reader` to `out`: fewer only at its end.
fn read_up_to(
    path: &Path,
    reader: &mut impl Read,
    limit: u64,
    out: &mut Vec<u8>,
) -> Result<(), MnistError> {
    reader
        .take(limit)
        .read_to_end(out)
        .map(|_| ())
        .map_err(|source| MnistError::Io {
            path: path.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;

    /// An IDX file's bytes: the magic number for `dims` dimensions, the
    /// sizes, the values.
    fn idx(dims: u8, sizes: &[u32], values: &[u8]) -> Vec<u8> {
        let mut bytes = magic(dims).to_be_bytes().to_vec();
        for size in sizes {
            bytes.extend(size.to_be_bytes());
        }
        bytes.extend(values);
        bytes
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    /// A scratch folder with `files` written into it.
    fn folder(files: &[(&str, Vec<u8>)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, bytes) in files {
            std::fs::write(dir.path().join(name), bytes).unwrap();
        }
        dir
    }

    /// Two 2×2 images and their labels.
    fn small_set() -> (Vec<u8>, Vec<u8>) {
        (
            idx(3, &[2, 2, 2], &[0, 1, 2, 3, 4, 5, 6, 7]),
            idx(1, &[2], &[7, 3]),
        )
    }

    fn message(result: Result<impl fmt::Debug, MnistError>) -> String {
        result.unwrap_err().to_string()
    }

    #[test]
    fn reads_gzip_and_plain_files_alike() {
        let (images, labels) = small_set();
        let dir = folder(&[
            ("plain", images.clone()),
            ("packed.gz", gzip(&images)),
            ("labels.gz", gzip(&labels)),
        ]);
        let plain = read_idx_images(dir.path().join("plain")).unwrap();
        assert_eq!(
            plain,
            read_idx_images(dir.path().join("packed.gz")).unwrap()
        );
        assert_eq!((plain.len(), plain.rows, plain.cols), (2, 2, 2));
        assert_eq!(plain.image(1), [4, 5, 6, 7]);
        let set =
            read_labelled_images(dir.path().join("plain"), dir.path().join("labels.gz")).unwrap();
        assert_eq!(set.labels, [7, 3]);
    }

    #[test]
    fn reads_a_folder_of_the_four_names_gzip_or_not() {
        let (images, labels) = small_set();
        let dir = folder(&[
            (Mnist::TRAIN_IMAGES, gzip(&images)),
            (Mnist::TRAIN_LABELS, gzip(&labels)),
            ("t10k-images-idx3-ubyte", idx(3, &[1, 2, 2], &[9, 9, 9, 9])),
            ("t10k-labels-idx1-ubyte", idx(1, &[1], &[0])),
        ]);
        let mut mnist = read_mnist(dir.path()).unwrap();
        assert_eq!((mnist.train.len(), mnist.test.len()), (2, 1));
        assert_eq!(mnist.test.images.image(0), [9, 9, 9, 9]);
        mnist.train.truncate(1);
        assert_eq!((mnist.train.images.len(), mnist.train.labels), (1, vec![7]));
    }

    #[test]
    fn a_missing_file_is_named_with_the_names_tried() {
        let (images, _) = small_set();
        let dir = folder(&[(Mnist::TRAIN_IMAGES, gzip(&images))]);
        let error = message(read_mnist(dir.path()));
        let gz = dir.path().join(Mnist::TRAIN_LABELS);
        let plain = dir.path().join("train-labels-idx1-ubyte");
        assert_eq!(
            error,
            format!("{}: no such file (nor {})", gz.display(), plain.display())
        );
        let error = read_idx_labels(dir.path().join("absent")).unwrap_err();
        assert!(matches!(error, MnistError::Missing { .. }), "{error:?}");
    }

    #[test]
    fn a_bad_magic_number_says_what_it_found_and_expected() {
        let dir = folder(&[("text", b"P5 28 28 255\n".to_vec())]);
        let error = message(read_idx_images(dir.path().join("text")));
        assert!(
            error.ends_with(
                "text: bad magic number 0x50352032, expected 0x00000803 (an IDX file of unsigned bytes)"
            ),
            "{error}"
        );
        // Floats (type code 0x0d) are not unsigned bytes.
        let mut floats = idx(1, &[1], &[0, 0, 0, 0]);
        floats[2] = 0x0d;
        let dir = folder(&[("floats", floats)]);
        let error = message(read_idx_labels(dir.path().join("floats")));
        assert!(
            error.ends_with(
                "bad magic number 0x00000d01, expected 0x00000801 (an IDX file of unsigned bytes)"
            ),
            "{error}"
        );
    }

    #[test]
    fn labels_read_as_images_have_the_wrong_number_of_dimensions() {
        let (_, labels) = small_set();
        let dir = folder(&[("labels", labels)]);
        let error = message(read_idx_images(dir.path().join("labels")));
        assert!(
            error.ends_with("labels: 1 dimension, expected 3 for images"),
            "{error}"
        );
        let (images, _) = small_set();
        let dir = folder(&[("images", images)]);
        let error = message(read_idx_labels(dir.path().join("images")));
        assert!(
            error.ends_with("images: 3 dimensions, expected 1 for labels"),
            "{error}"
        );
    }

    #[test]
    fn a_truncated_file_says_how_many_bytes_it_expected_and_found() {
        let (images, labels) = small_set();
        let dir = folder(&[
            ("cut.gz", gzip(&images[..images.len() - 3])),
            ("header", images[..10].to_vec()),
            ("stub", images[..2].to_vec()),
            ("empty", Vec::new()),
            ("long", [labels.as_slice(), &[1]].concat()),
        ]);
        let error = |name: &str| message(read_idx_images(dir.path().join(name)));
        assert!(
            error("cut.gz").ends_with("cut.gz: truncated values: expected 8 bytes, found 5"),
            "{}",
            error("cut.gz")
        );
        assert!(
            error("header").ends_with("header: truncated header: expected 16 bytes, found 10"),
            "{}",
            error("header")
        );
        assert!(
            error("stub").ends_with("stub: truncated header: expected 16 bytes, found 2"),
            "{}",
            error("stub")
        );
        assert!(error("empty").ends_with("expected 16 bytes, found 0"));
        let long = message(read_idx_labels(dir.path().join("long")));
        assert!(
            long.ends_with("long: more bytes than the 2 of values the header announces"),
            "{long}"
        );
    }

    #[test]
    fn sizes_beyond_memory_are_an_error_not_an_allocation() {
        let dir = folder(&[
            ("huge", idx(3, &[u32::MAX, u32::MAX, u32::MAX], &[1, 2, 3])),
            ("big", idx(3, &[1 << 20, 1 << 10, 1 << 10], &[1, 2, 3])),
        ]);
        let error = read_idx_images(dir.path().join("huge")).unwrap_err();
        assert!(matches!(error, MnistError::TooLarge { .. }), "{error:?}");
        let error = message(read_idx_images(dir.path().join("big")));
        assert!(
            error.ends_with("truncated values: expected 1099511627776 bytes, found 3"),
            "{error}"
        );
    }

    #[test]
    fn damaged_gzip_data_is_reported_as_such() {
        let (images, _) = small_set();
        let mut packed = gzip(&images);
        let middle = packed.len() / 2;
        packed[middle..].iter_mut().for_each(|b| *b ^= 0x5a);
        let dir = folder(&[("damaged.gz", packed)]);
        let error = read_idx_images(dir.path().join("damaged.gz")).unwrap_err();
        assert!(matches!(error, MnistError::Gzip { .. }), "{error:?}");
        assert!(
            error
                .to_string()
                .contains("damaged.gz: damaged gzip data: ")
        );
        // A gzip stream cut short is damaged data too.
        let (images, _) = small_set();
        let packed = gzip(&images);
        let dir = folder(&[("cut.gz", packed[..packed.len() - 4].to_vec())]);
        let error = read_idx_images(dir.path().join("cut.gz")).unwrap_err();
        assert!(matches!(error, MnistError::Gzip { .. }), "{error:?}");
    }

    #[test]
    fn image_and_label_counts_must_agree_naming_both_files() {
        let (images, _) = small_set();
        let dir = folder(&[("images", images), ("labels", idx(1, &[3], &[1, 2, 3]))]);
        let (i, l) = (dir.path().join("images"), dir.path().join("labels"));
        assert_eq!(
            message(read_labelled_images(&i, &l)),
            format!(
                "{} holds 2 images but {} holds 3 labels",
                i.display(),
                l.display()
            )
        );
    }

    #[test]
    fn labels_must_be_digits() {
        let dir = folder(&[("labels", idx(1, &[3], &[1, 10, 2]))]);
        let error = message(read_idx_labels(dir.path().join("labels")));
        assert!(
            error.ends_with("labels: label 1 is 10, expected a digit 0 to 9"),
            "{error}"
        );
    }

    #[test]
    fn images_without_pixels_are_an_error() {
        let dir = folder(&[("flat", idx(3, &[5, 0, 28], &[]))]);
        let error = message(read_idx_images(dir.path().join("flat")));
        assert!(
            error.ends_with("flat: images of 0 × 28 pixels, expected at least one"),
            "{error}"
        );
        // Built by hand, they have no length rather than dividing by zero.
        let images = IdxImages {
            rows: 0,
            cols: 28,
            pixels: Vec::new(),
        };
        assert!(images.is_empty());
    }

    #[test]
    fn an_empty_set_is_read() {
        let dir = folder(&[("none", idx(3, &[0, 28, 28], &[]))]);
        assert!(read_idx_images(dir.path().join("none")).unwrap().is_empty());
    }
}
