//! What the training experiment classifies: scikit-learn's digits (with
//! `--data`), or a generated set of the same shape that needs no files.

use std::path::Path;

use cps::data::{Digits, read_digits};
use ndarray::{Array1, Array2, Axis};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;

/// Examples (one per row, features of the order of 1) and their labels.
pub struct Examples {
    pub features: Array2<f64>,
    pub labels: Vec<usize>,
}

impl Examples {
    /// The examples at `indices`.
    pub fn select(&self, indices: &[usize]) -> (Array2<f64>, Vec<usize>) {
        let features = self.features.select(Axis(0), indices);
        (features, indices.iter().map(|&i| self.labels[i]).collect())
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }
}

/// A training set and a test set.
pub struct DataSet {
    pub name: String,
    pub classes: usize,
    pub train: Examples,
    pub test: Examples,
}

/// The digits from `path` (a folder holding `digits.csv.gz`, or the file):
/// pixels scaled to 0..=1, split 1437/360 by `train_test_split(0)`.
pub fn digits(path: &Path) -> Result<DataSet, String> {
    let digits = read_digits(path).map_err(|e| e.to_string())?;
    let (train, test) = digits.train_test_split(0);
    let scaled = |d: Digits| Examples {
        features: d.scaled_images().mapv(f64::from),
        labels: d.labels,
    };
    Ok(DataSet {
        name: format!("digits ({})", path.display()),
        classes: Digits::CLASSES,
        train: scaled(train),
        test: scaled(test),
    })
}

/// The number of features of the generated set (as the digits' 8×8).
const FEATURES: usize = 64;

/// A generated set of `classes` classes in 64 features: each class is two
/// random prototypes in [0, 1]⁶⁴ (so that one straight boundary does not
/// separate it from the rest), an example one of them plus Gaussian noise
/// of standard deviation 0.45.
pub fn generated(train: usize, test: usize, seed: u64) -> DataSet {
    let classes = 10;
    let mut rng = StdRng::seed_from_u64(seed);
    let prototypes: Vec<Array1<f64>> = (0..2 * classes)
        .map(|_| Array1::from_shape_simple_fn(FEATURES, || rng.random::<f64>()))
        .collect();
    let mut draw = |count: usize| {
        let labels: Vec<usize> = (0..count).map(|_| rng.random_range(0..classes)).collect();
        let mut features = Array2::zeros((count, FEATURES));
        for (mut row, &label) in features.rows_mut().into_iter().zip(&labels) {
            let prototype = &prototypes[2 * label + rng.random_range(0..2)];
            for (x, &p) in row.iter_mut().zip(prototype) {
                *x = p + 0.45 * rng.sample::<f64, _>(StandardNormal);
            }
        }
        Examples { features, labels }
    };
    let train = draw(train);
    let test = draw(test);
    DataSet {
        name: format!("generated (10 classes, 2 prototypes each, noise 0.45; seed {seed})"),
        classes,
        train,
        test,
    }
}
