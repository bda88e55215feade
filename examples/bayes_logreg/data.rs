//! The breast-cancer table: reading its CSV (scikit-learn's layout), a
//! seeded train/test split, and standardisation with the training set's
//! statistics.

use std::path::Path;

use ndarray::{Array1, Array2, Axis};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

/// A table of examples: one row of features each, and its class.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    /// `rows × features`.
    pub features: Array2<f64>,
    /// Each row's class: `true` for class 1 (benign in the breast-cancer
    /// data), `false` for class 0.
    pub labels: Vec<bool>,
}

/// Reads a table in scikit-learn's CSV layout: a header
/// `rows,features,class0,class1`, then one line per row with its
/// `features` numbers and its class, 0 or 1. An error names the file, the
/// line and what was expected there.
pub fn read_csv(path: &Path) -> Result<Table, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read the file: {e}", path.display()))?;
    parse_csv(&text, &path.display().to_string())
}

/// [`read_csv`] on the text of a file named `name` (for messages).
pub fn parse_csv(text: &str, name: &str) -> Result<Table, String> {
    let mut lines = text.lines().enumerate().map(|(i, line)| (i + 1, line));
    let at = |line: usize, what: String| format!("{name}:{line}: {what}");
    let (_, header) = lines
        .next()
        .ok_or_else(|| format!("{name}: the file is empty; expected a header line"))?;
    let fields: Vec<&str> = header.split(',').map(str::trim).collect();
    let count = |field: Option<&&str>| field.and_then(|f| f.parse::<usize>().ok());
    let (rows, width) = match (fields.len(), count(fields.first()), count(fields.get(1))) {
        (4, Some(rows), Some(width)) if rows > 0 && width > 0 => (rows, width),
        _ => {
            return Err(at(
                1,
                format!(
                    "expected the header 'rows,features,class0,class1' \
                     (such as '569,30,malignant,benign'), found '{header}'"
                ),
            ));
        }
    };
    let mut values = Vec::with_capacity(rows * width);
    let mut labels = Vec::with_capacity(rows);
    for (number, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != width + 1 {
            return Err(at(
                number,
                format!(
                    "expected {} comma-separated fields ({width} features and the class), \
                     found {}",
                    width + 1,
                    fields.len()
                ),
            ));
        }
        for (column, field) in fields[..width].iter().enumerate() {
            match field.parse::<f64>() {
                Ok(x) if x.is_finite() => values.push(x),
                _ => {
                    return Err(at(
                        number,
                        format!(
                            "expected a finite number in column {}, found '{field}'",
                            column + 1
                        ),
                    ));
                }
            }
        }
        labels.push(match fields[width] {
            "0" => false,
            "1" => true,
            other => {
                return Err(at(
                    number,
                    format!(
                        "expected the class, 0 or 1, in column {}, found '{other}'",
                        width + 1
                    ),
                ));
            }
        });
    }
    if labels.len() != rows {
        return Err(format!(
            "{name}: the header announces {rows} rows, the file holds {}",
            labels.len()
        ));
    }
    let features =
        Array2::from_shape_vec((rows, width), values).map_err(|e| format!("{name}: {e}"))?;
    Ok(Table { features, labels })
}

/// The data a model sees: standardised features with a leading column of
/// ones (the intercept), and the classes.
#[derive(Clone, Debug)]
pub struct Split {
    /// Training inputs, `train × (1 + features)`.
    pub train_x: Array2<f64>,
    /// Training classes.
    pub train_y: Vec<bool>,
    /// Test inputs, `test × (1 + features)`.
    pub test_x: Array2<f64>,
    /// Test classes.
    pub test_y: Vec<bool>,
}

/// Shuffles the rows with `seed`, keeps `train` of them for training and
/// the rest for testing, and standardises every feature with the training
/// rows' mean and standard deviation (a constant feature is only
/// centred), then prepends the intercept's column of ones.
///
/// # Errors
/// When `train` leaves no row for either side.
pub fn split(table: &Table, train: usize, seed: u64) -> Result<Split, String> {
    let rows = table.labels.len();
    if train == 0 || train >= rows {
        return Err(format!(
            "cannot split {rows} rows into {train} for training and the rest for testing"
        ));
    }
    let mut order: Vec<usize> = (0..rows).collect();
    order.shuffle(&mut StdRng::seed_from_u64(seed));
    let (train_rows, test_rows) = order.split_at(train);
    let train_raw = table.features.select(Axis(0), train_rows);
    let mean = train_raw.mean_axis(Axis(0)).expect("at least one row");
    let std = train_raw
        .std_axis(Axis(0), 0.0)
        .mapv(|s| if s > 0.0 { s } else { 1.0 });
    let prepared = |rows: &[usize]| {
        let x = (table.features.select(Axis(0), rows) - &mean) / &std;
        let mut with_ones = Array2::ones((x.nrows(), x.ncols() + 1));
        with_ones.slice_mut(ndarray::s![.., 1..]).assign(&x);
        with_ones
    };
    let labels = |rows: &[usize]| rows.iter().map(|&i| table.labels[i]).collect();
    Ok(Split {
        train_x: prepared(train_rows),
        train_y: labels(train_rows),
        test_x: prepared(test_rows),
        test_y: labels(test_rows),
    })
}

/// The share of rows whose class the weights `w` predict (class 1 where
/// `x·w > 0`).
pub fn accuracy(x: &Array2<f64>, y: &[bool], w: &Array1<f64>) -> f64 {
    let scores = x.dot(w);
    let right = scores
        .iter()
        .zip(y)
        .filter(|&(&s, &label)| (s > 0.0) == label)
        .count();
    right as f64 / y.len().max(1) as f64
}
