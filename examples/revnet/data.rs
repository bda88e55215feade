//! The images to train and test on: MNIST from a folder, the bundled
//! subset, or (when neither is there) generated images of ten classes.

use std::path::Path;

use cps::Var;
use cps::data::{LabelledImages, read_mnist};
use ndarray::{Array4, Axis};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// MNIST's mean and deviation of a pixel scaled to 0..=1.
const MEAN: f32 = 0.1307;
const DEVIATION: f32 = 0.3081;

/// Standardised images (N, 1, 28, 28) and their labels.
pub struct Examples {
    /// (N, 1, 28, 28), standardised with MNIST's mean and deviation.
    pub images: Array4<f32>,
    /// Each image's class.
    pub labels: Vec<usize>,
}

impl Examples {
    fn from_idx(set: &LabelledImages) -> Self {
        let pixels = set
            .images
            .pixels
            .iter()
            .map(|&p| (f32::from(p) / 255.0 - MEAN) / DEVIATION)
            .collect();
        Examples {
            images: Array4::from_shape_vec(
                (set.len(), 1, set.images.rows, set.images.cols),
                pixels,
            )
            .expect("the reader checked the sizes"),
            labels: set.labels.iter().map(|&l| usize::from(l)).collect(),
        }
    }

    /// The number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// The examples at `indices` as a constant batch and their labels.
    pub fn batch(&self, indices: &[usize]) -> (Var, Vec<usize>) {
        let images = self.images.select(Axis(0), indices);
        let labels = indices.iter().map(|&i| self.labels[i]).collect();
        (Var::constant(images), labels)
    }
}

/// A training set, a test set and where they came from.
pub struct DataSet {
    /// Where the images came from, for the log.
    pub name: String,
    /// The images trained on.
    pub train: Examples,
    /// The images tested on.
    pub test: Examples,
}

/// MNIST from `dir`, its training set cut to `limit` images when given.
pub fn mnist(dir: &Path, limit: Option<usize>) -> Result<DataSet, String> {
    let mut mnist = read_mnist(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if let Some(limit) = limit {
        mnist.train.truncate(limit);
    }
    Ok(DataSet {
        name: dir.display().to_string(),
        train: Examples::from_idx(&mnist.train),
        test: Examples::from_idx(&mnist.test),
    })
}

/// The subset of MNIST bundled with the `cnn_mnist` example, when it is
/// there; else generated images.
pub fn default(limit: Option<usize>) -> Result<DataSet, String> {
    let bundled = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/cnn_mnist/data");
    if bundled.join("train-images-idx3-ubyte.gz").is_file() {
        let mut set = mnist(&bundled, limit)?;
        set.name = "the bundled MNIST subset".to_string();
        return Ok(set);
    }
    let train = limit.unwrap_or(3000);
    Ok(DataSet {
        name: "generated images".to_string(),
        train: generated(train, 1),
        test: generated(500, 2),
    })
}

/// `count` 28×28 images of ten classes: class `k` is a bright 6×6 square
/// at the `k`-th place of a 4×3 grid, jittered by a pixel or two, on noise.
pub fn generated(count: usize, seed: u64) -> Examples {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut images = Array4::zeros((count, 1, 28, 28));
    let mut labels = Vec::with_capacity(count);
    for n in 0..count {
        let class = rng.random_range(0..10usize);
        let (top, left) = (2 + 8 * (class / 4), 2 + 6 * (class % 4));
        let (dy, dx) = (rng.random_range(0..2usize), rng.random_range(0..2usize));
        for i in 0..28 {
            for j in 0..28 {
                let inside = (top + dy..top + dy + 6).contains(&i)
                    && (left + dx..left + dx + 6).contains(&j);
                let noise: f32 = rng.random_range(-0.3..0.3);
                images[[n, 0, i, j]] = if inside { 2.0 } else { 0.0 } + noise;
            }
        }
        labels.push(class);
    }
    Examples { images, labels }
}
