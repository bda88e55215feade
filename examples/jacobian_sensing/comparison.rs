//! Jacobian estimates set beside the exact one, a table row each, with
//! the calls each made of the black box.

use cps::ops::blackbox::CallCounter;
use ndarray::{Array2, ArrayD};

use crate::table::Table;

/// An opaque function of a tensor.
pub type BlackBox<'a> = &'a dyn Fn(&ArrayD<f64>) -> ArrayD<f64>;

/// The rows so far of a comparison at the point `x`.
pub struct Comparison<'a> {
    x: &'a ArrayD<f64>,
    exact: &'a Array2<f64>,
    table: Table,
}

impl<'a> Comparison<'a> {
    /// A comparison with the exact Jacobian `exact` at `x`.
    pub fn new(x: &'a ArrayD<f64>, exact: &'a Array2<f64>) -> Self {
        Comparison {
            x,
            exact,
            table: Table::new(&["method", "knows", "calls", "max |error|", "relative error"]),
        }
    }

    /// Adds the row of `estimate`, handed `f` (its calls counted, the one
    /// at `x` included) and `f(x)`.
    pub fn add(
        &mut self,
        method: &str,
        knows: &str,
        f: BlackBox,
        estimate: impl FnOnce(BlackBox, &ArrayD<f64>) -> Array2<f64>,
    ) {
        let calls = CallCounter::new();
        let counted = calls.wrap(f);
        let y = counted(self.x);
        let error = estimate(&counted, &y) - self.exact;
        let largest = error.iter().fold(0.0f64, |m, e| m.max(e.abs()));
        let norm = |a: &Array2<f64>| a.iter().map(|v| v * v).sum::<f64>().sqrt();
        self.table.row(vec![
            method.to_string(),
            knows.to_string(),
            calls.calls().to_string(),
            format!("{largest:.1e}"),
            format!("{:.1e}", norm(&error) / norm(self.exact)),
        ]);
    }

    /// Prints the table.
    pub fn print(&self) {
        self.table.print();
    }
}
