//! Parameter files in the safetensors format: an 8-byte little-endian
//! header length, a JSON header giving each tensor's name, dtype, shape and
//! byte range, then the raw little-endian, row-major data. PyTorch and the
//! `safetensors` Python package read and write the same files.
//!
//! [`save_checkpoint`] and [`load_checkpoint`] keep, beside the
//! parameters, an optimizer's state and the training loop's own, so that a
//! resumed run continues exactly where the saved one was.
//!
//! Saving is atomic: the file is written beside its final path, flushed to
//! disk, then renamed over it, so a crash or a failed save never leaves a
//! half-written file where a good one was.

use std::collections::{BTreeMap, HashSet};
use std::error::Error;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use ndarray::{ArrayD, IxDyn};
use safetensors::tensor::{Dtype, SafeTensors, View};

use crate::element::Element;
use crate::parameters::Parameters;

mod checkpoint;

pub use checkpoint::{TrainingState, load_checkpoint, save_checkpoint};

/// Reading or writing a parameter file failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ParamFileError {
    /// The file could not be read or written.
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a well-formed safetensors file (truncated, garbled).
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What the safetensors reader found wrong.
        detail: String,
    },
    /// The model has a parameter the file lacks.
    MissingTensor {
        /// The file.
        path: PathBuf,
        /// The parameter's name.
        name: String,
    },
    /// The file has a tensor the model lacks.
    UnexpectedTensor {
        /// The file.
        path: PathBuf,
        /// The tensor's name.
        name: String,
    },
    /// A tensor's shape differs from the parameter's.
    ShapeMismatch {
        /// The file.
        path: PathBuf,
        /// The tensor's name.
        name: String,
        /// The parameter's shape.
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
    },
    /// A tensor's element type differs from the one asked for.
    DtypeMismatch {
        /// The file.
        path: PathBuf,
        /// The tensor's name.
        name: String,
        /// The element type asked for (`F32` or `F64`).
        expected: String,
        /// The element type in the file.
        found: String,
    },
    /// Two parameters share a name, or a name is reserved by the format
    /// (`__metadata__`); nothing was written.
    InvalidName {
        /// The name.
        name: String,
        /// Why it cannot be used.
        reason: &'static str,
    },
    /// A checkpoint's contents do not fit the model or the optimizer
    /// they are loaded into (or the file is not a checkpoint).
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// What does not fit.
        detail: String,
    },
}

impl fmt::Display for ParamFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamFileError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            ParamFileError::Corrupt { path, detail } => {
                write!(
                    f,
                    "{}: not a valid safetensors file: {detail}",
                    path.display()
                )
            }
            ParamFileError::MissingTensor { path, name } => {
                write!(
                    f,
                    "{}: no tensor named `{name}`, which the model needs",
                    path.display()
                )
            }
            ParamFileError::UnexpectedTensor { path, name } => {
                write!(
                    f,
                    "{}: tensor `{name}` matches no parameter of the model",
                    path.display()
                )
            }
            ParamFileError::ShapeMismatch {
                path,
                name,
                expected,
                found,
            } => write!(
                f,
                "{}: tensor `{name}` has shape {found:?}, but the parameter has shape {expected:?}",
                path.display()
            ),
            ParamFileError::DtypeMismatch {
                path,
                name,
                expected,
                found,
            } => {
                write!(
                    f,
                    "{}: tensor `{name}` holds {found}, expected {expected}",
                    path.display()
                )
            }
            ParamFileError::InvalidName { name, reason } => {
                write!(f, "parameter name `{name}`: {reason}")
            }
            ParamFileError::Checkpoint { path, detail } => {
                write!(f, "{}: {detail}", path.display())
            }
        }
    }
}

impl Error for ParamFileError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            ParamFileError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Saves every parameter of `model` under its name from
/// [`Parameters::visit`], as `F32` or `F64` tensors. The file is replaced
/// atomically (see [`write_atomically`]).
///
/// ```
/// use cps_runtime::*;
/// use cps_runtime::io::{load_parameters, save_parameters};
/// use ndarray::array;
///
/// let dir = std::env::temp_dir().join(format!("cps-io-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("model.safetensors");
///
/// let model = vec![Param::new(array![[1.0f32, 2.0]]), Param::new(array![3.0f32])];
/// save_parameters(&model, &path).unwrap();
///
/// let mut copy = vec![Param::new(array![[0.0f32, 0.0]]), Param::new(array![0.0f32])];
/// load_parameters(&mut copy, &path).unwrap();
/// assert_eq!(copy[0].array(), model[0].array());
///
/// let mut wrong = vec![Param::new(array![0.0f32, 0.0]), Param::new(array![0.0f32])];
/// let err = load_parameters(&mut wrong, &path).unwrap_err();
/// assert!(err.to_string().contains("tensor `0` has shape [1, 2], but the parameter has shape [2]"));
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub fn save_parameters<A, M>(model: &M, path: impl AsRef<Path>) -> Result<(), ParamFileError>
where
    A: Element,
    M: Parameters<A> + ?Sized,
{
    let mut tensors: Vec<(String, Encoded)> = Vec::new();
    model.visit(&mut |name, param| tensors.push((name.to_string(), Encoded::new(param.array()))));
    write_encoded(tensors, path.as_ref())
}

/// Writes named arrays to a safetensors file, atomically; the counterpart
/// of [`read_tensors`].
pub fn write_tensors<'a, A: Element>(
    path: impl AsRef<Path>,
    tensors: impl IntoIterator<Item = (&'a str, &'a ArrayD<A>)>,
) -> Result<(), ParamFileError> {
    let tensors = tensors
        .into_iter()
        .map(|(name, array)| (name.to_string(), Encoded::new(array)))
        .collect();
    write_encoded(tensors, path.as_ref())
}

/// Sets every parameter of `model` from the tensor of the same name in the
/// file. The file must hold exactly the model's parameters, with the same
/// shapes and element type; otherwise nothing is changed and the error
/// names the first offending tensor.
pub fn load_parameters<A, M>(model: &mut M, path: impl AsRef<Path>) -> Result<(), ParamFileError>
where
    A: Element,
    M: Parameters<A> + ?Sized,
{
    let path = path.as_ref();
    set_parameters(model, read_tensors::<A>(path)?, path)
}

/// Sets every parameter of `model` from the tensor of its name in
/// `tensors` (read from `path`), which must hold exactly the model's
/// parameters; otherwise nothing changes.
fn set_parameters<A, M>(
    model: &mut M,
    mut tensors: BTreeMap<String, ArrayD<A>>,
    path: &Path,
) -> Result<(), ParamFileError>
where
    A: Element,
    M: Parameters<A> + ?Sized,
{
    let mut problem: Option<ParamFileError> = None;
    let mut seen: HashSet<String> = HashSet::new();
    model.visit(&mut |name, param| {
        if problem.is_some() {
            return;
        }
        if !seen.insert(name.to_string()) {
            problem = Some(ParamFileError::InvalidName {
                name: name.to_string(),
                reason: "two parameters of the model have this name",
            });
            return;
        }
        match tensors.get(name) {
            None => {
                problem = Some(ParamFileError::MissingTensor {
                    path: path.to_path_buf(),
                    name: name.to_string(),
                })
            }
            Some(tensor) if tensor.shape() != param.shape() => {
                problem = Some(ParamFileError::ShapeMismatch {
                    path: path.to_path_buf(),
                    name: name.to_string(),
                    expected: param.shape().to_vec(),
                    found: tensor.shape().to_vec(),
                })
            }
            Some(_) => {}
        }
    });
    if let Some(problem) = problem {
        return Err(problem);
    }
    if let Some(name) = tensors.keys().find(|name| !seen.contains(*name)) {
        return Err(ParamFileError::UnexpectedTensor {
            path: path.to_path_buf(),
            name: name.clone(),
        });
    }
    model.visit_mut(&mut |name, param| {
        if let Some(value) = tensors.remove(name) {
            *param.value_mut() = value;
        }
    });
    Ok(())
}

/// Reads every tensor of a safetensors file, by name. All tensors must
/// hold `A` (`F32` for `f32`, `F64` for `f64`).
///
/// The PyTorch baseline's `--save-init` file holds `F32` tensors `emb`
/// `[vocab, 300]`, `W_leaf` `[450, 300]`, `b_leaf` `[450]`, `U_int`
/// `[750, 300]`, `b_i` `b_f` `b_o` `b_u` `[150]`, `Why` `[5, 150]` and `by`
/// `[5]`: biases are 1-D.
///
/// ```no_run
/// use cps_runtime::io::read_tensors;
///
/// let init = read_tensors::<f32>("init.safetensors")?;
/// let w_leaf = &init["W_leaf"];
/// assert_eq!(w_leaf.shape(), &[450, 300]);
/// # Ok::<(), cps_runtime::io::ParamFileError>(())
/// ```
pub fn read_tensors<A: Element>(
    path: impl AsRef<Path>,
) -> Result<BTreeMap<String, ArrayD<A>>, ParamFileError> {
    read_file(path.as_ref()).map(|(tensors, _)| tensors)
}

/// The tensors of a safetensors file, by name, and its metadata.
fn read_file<A: Element>(path: &Path) -> Result<(Tensors<A>, Metadata), ParamFileError> {
    let bytes = std::fs::read(path).map_err(|source| ParamFileError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let corrupt = |detail: String| ParamFileError::Corrupt {
        path: path.to_path_buf(),
        detail,
    };
    let file = SafeTensors::deserialize(&bytes).map_err(|error| corrupt(error.to_string()))?;
    let (_, header) =
        SafeTensors::read_metadata(&bytes).map_err(|error| corrupt(error.to_string()))?;
    let metadata = header
        .metadata()
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let wanted = dtype_of::<A>();
    let mut tensors = BTreeMap::new();
    let mut views = file.tensors();
    views.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, view) in views {
        if view.dtype() != wanted {
            return Err(ParamFileError::DtypeMismatch {
                path: path.to_path_buf(),
                name,
                expected: format!("{wanted:?}"),
                found: format!("{:?}", view.dtype()),
            });
        }
        let values = decode::<A>(view.data());
        let array = ArrayD::from_shape_vec(IxDyn(view.shape()), values)
            .map_err(|error| corrupt(format!("tensor `{name}`: {error}")))?;
        tensors.insert(name, array);
    }
    Ok((tensors, metadata))
}

/// Tensors by name.
type Tensors<A> = BTreeMap<String, ArrayD<A>>;
/// A safetensors file's `__metadata__`: text by name.
type Metadata = BTreeMap<String, String>;

/// Replaces the file at `path` with what `write` writes, atomically: the
/// data goes to a new file in the same directory, is flushed to disk
/// (`fsync`), and only then renamed over `path`. If `write` or any step
/// fails, the new file is removed and `path` is left as it was.
///
/// ```
/// use std::io::Write;
/// use cps_runtime::io::write_atomically;
///
/// let path = std::env::temp_dir().join(format!("cps-atomic-doc-{}.txt", std::process::id()));
/// write_atomically(&path, |file| file.write_all(b"first")).unwrap();
/// let failed = write_atomically(&path, |file| {
///     file.write_all(b"half")?;
///     Err(std::io::Error::other("interrupted"))
/// });
/// assert!(failed.is_err());
/// assert_eq!(std::fs::read(&path).unwrap(), b"first");
/// # std::fs::remove_file(&path).unwrap();
/// ```
pub fn write_atomically(
    path: impl AsRef<Path>,
    write: impl FnOnce(&mut File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let path = path.as_ref();
    let Some(file_name) = path.file_name() else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a file path",
        ));
    };
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut temporary_name = std::ffi::OsString::from(".");
    temporary_name.push(file_name);
    temporary_name.push(format!(
        ".tmp-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let temporary = directory.join(temporary_name);

    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temporary)?;
    let result = write(&mut file)
        .and_then(|()| file.sync_all())
        .and_then(|()| {
            drop(file);
            std::fs::rename(&temporary, path)
        });
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
        return result;
    }
    // Make the rename itself durable. Not every file system can sync a
    // directory, and the data is already safe, so a failure is not an error.
    #[cfg(unix)]
    if let Ok(directory) = File::open(directory) {
        let _ = directory.sync_all();
    }
    Ok(())
}

fn write_encoded(tensors: Vec<(String, Encoded)>, path: &Path) -> Result<(), ParamFileError> {
    write_with_metadata(tensors, Metadata::new(), path)
}

fn write_with_metadata(
    tensors: Vec<(String, Encoded)>,
    metadata: Metadata,
    path: &Path,
) -> Result<(), ParamFileError> {
    let mut names = HashSet::new();
    for (name, _) in &tensors {
        if name == "__metadata__" {
            return Err(ParamFileError::InvalidName {
                name: name.clone(),
                reason: "the safetensors format reserves this name",
            });
        }
        if !names.insert(name.as_str()) {
            return Err(ParamFileError::InvalidName {
                name: name.clone(),
                reason: "two tensors have this name",
            });
        }
    }
    let bytes = safetensors::tensor::serialize(
        tensors,
        (!metadata.is_empty()).then(|| metadata.into_iter().collect()),
    )
    .map_err(|error| ParamFileError::Corrupt {
        path: path.to_path_buf(),
        detail: error.to_string(),
    })?;
    write_atomically(path, |file| std::io::Write::write_all(file, &bytes)).map_err(|source| {
        ParamFileError::Io {
            path: path.to_path_buf(),
            source,
        }
    })
}

fn dtype_of<A: Element>() -> Dtype {
    // `Element` is sealed to f32 and f64, so the size tells them apart.
    if size_of::<A>() == 4 {
        Dtype::F32
    } else {
        Dtype::F64
    }
}

/// One tensor in its on-disk form.
struct Encoded {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl Encoded {
    fn new<A: Element>(array: &ArrayD<A>) -> Encoded {
        let dtype = dtype_of::<A>();
        let mut data = Vec::with_capacity(array.len() * size_of::<A>());
        // `iter` walks in logical row-major order whatever the memory layout.
        if dtype == Dtype::F32 {
            array
                .iter()
                .for_each(|&x| data.extend_from_slice(&(x.to_f64_lossless() as f32).to_le_bytes()));
        } else {
            array
                .iter()
                .for_each(|&x| data.extend_from_slice(&x.to_f64_lossless().to_le_bytes()));
        }
        Encoded {
            dtype,
            shape: array.shape().to_vec(),
            data,
        }
    }
}

impl View for Encoded {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

/// Little-endian bytes of `A` values (the caller has checked the dtype).
fn decode<A: Element>(bytes: &[u8]) -> Vec<A> {
    if size_of::<A>() == 4 {
        bytes
            .chunks_exact(4)
            .map(|chunk| {
                let mut raw = [0u8; 4];
                raw.copy_from_slice(chunk);
                A::from_f64_lossy(f64::from(f32::from_le_bytes(raw)))
            })
            .collect()
    } else {
        bytes
            .chunks_exact(8)
            .map(|chunk| {
                let mut raw = [0u8; 8];
                raw.copy_from_slice(chunk);
                A::from_f64_lossy(f64::from_le_bytes(raw))
            })
            .collect()
    }
}
