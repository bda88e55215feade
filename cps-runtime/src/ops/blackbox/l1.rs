//! L1 decoding: the linear program `min_z Σᵢ |aᵢ z − bᵢ|`, solved
//! exactly by the simplex method specialised to it (Barrodale and
//! Roberts, 1973).
//!
//! The minimum is attained at a vertex: a `z` at which `n` linearly
//! independent measurements (the basis) are fitted exactly. From a
//! vertex, the objective along the edge that frees basic measurement `j`
//! is a convex piecewise-linear function of the step; if it decreases at
//! first, the method walks the edge to the breakpoint where it stops
//! decreasing (where another measurement's residual reaches zero), and
//! that measurement takes `j`'s place in the basis. When no edge
//! decreases, the vertex is optimal: the linear program's dual
//! certificate, multipliers in `[-1, 1]`, is at hand.
//!
//! Measurements of a black box carry the error of finite differences, so
//! residuals within that error of zero are taken as zero: leaving such a
//! measurement costs as much as leaving a fitted one. Without this the
//! method would go on trading one right measurement's rounding for
//! another's, dozens of steps that move the fit by less than its error.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis};

use super::decoders::{Decoder, LeastSquares, check_lengths, undetermined};
use super::dense::least_squares;

/// L1 decoding: the `z` minimising `Σᵢ |aᵢ z − bᵢ|`, the linear program
/// of robust regression, solved exactly by the simplex method (see the
/// module's source for the steps).
///
/// With measurements along random directions, more of them than unknowns
/// (twice as many, say) and a minority grossly wrong, the L1 fit passes
/// through the right ones and ignores the wrong ones: it recovers the
/// unknown exactly, to within the error of the good measurements (Candès
/// and Tao, "Decoding by linear programming", 2005; Choromanski and
/// Sindhwani apply it to Jacobians). How large a minority depends on the
/// ratio of measurements to unknowns: for Gaussian directions and twice
/// as many measurements as unknowns, L1 decoding succeeds with high
/// probability up to about a fifth of them wrong (Donoho and Tanner's
/// phase transition at an undersampling ratio of one half). Least squares
/// spreads each wrong measurement over the whole estimate instead.
///
/// With no more measurements than unknowns, every measurement can be
/// fitted exactly, none can be told to be wrong, and the decoder returns
/// the least-squares (least-norm) solution. So it does when that fit
/// leaves every residual within the tolerance: then no measurement stands
/// out, and the L1 fit differs from it by the order of the tolerance.
///
/// ```
/// use cps_runtime::ops::blackbox::{Decoder, L1, LeastSquares};
/// use ndarray::{array, Array1, Array2};
///
/// // Nine measurements of the two unknowns (3, -2); one of them garbage.
/// let a: Array2<f64> = Array2::from_shape_fn((9, 2), |(i, j)| ((i * 7 + j * 3) % 5) as f64 - 2.0);
/// let truth = array![3.0, -2.0];
/// let mut b: Array1<f64> = a.dot(&truth);
/// b[4] = 1e6;
/// let robust = L1::default().decode(a.view(), b.view());
/// assert!((&robust - &truth).iter().all(|e| e.abs() < 1e-9));
/// let swayed = LeastSquares.decode(a.view(), b.view());
/// assert!((&swayed - &truth).iter().any(|e| e.abs() > 1.0));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct L1 {
    /// Residuals within this fraction of the median measurement's
    /// magnitude count as zero: the measurements' relative error. The
    /// default `1e-7` suits forward differences in `f64` (whose relative
    /// error is about `1e-8`); `1e-3` suits `f32`.
    pub tolerance: f64,
}

impl Default for L1 {
    /// A tolerance of `1e-7`.
    fn default() -> Self {
        L1 { tolerance: 1e-7 }
    }
}

/// The least-squares fit of the half of the measurements (and at least
/// one more than the unknowns) that the full fit left the smallest
/// residuals: with a minority of grossly wrong measurements, most of them
/// right, so that the simplex method starts near its end.
fn trimmed(a: ArrayView2<f64>, b: ArrayView1<f64>, residuals: &Array1<f64>) -> Option<Array1<f64>> {
    let (m, n) = a.dim();
    let keep = m.div_ceil(2).max(n + 1).min(m);
    let mut order: Vec<usize> = (0..m).collect();
    order.select_nth_unstable_by(keep - 1, |&i, &j| {
        residuals[i].abs().total_cmp(&residuals[j].abs())
    });
    let rows = &order[..keep];
    let fit = least_squares(
        a.select(Axis(0), rows).view(),
        b.select(Axis(0), rows).insert_axis(Axis(1)).view(),
    )
    .ok()?;
    Some(fit.remove_axis(Axis(1)))
}

/// An edge is taken for descending only when the objective's slope along
/// it is below `-SLOPE_TOLERANCE`: smaller slopes are rounding.
const SLOPE_TOLERANCE: f64 = 1e-11;

fn median_magnitude(v: ArrayView1<f64>) -> f64 {
    let mut magnitudes: Vec<f64> = v.iter().map(|x| x.abs()).collect();
    if magnitudes.is_empty() {
        return 0.0;
    }
    let middle = magnitudes.len() / 2;
    *magnitudes
        .select_nth_unstable_by(middle, |x, y| x.total_cmp(y))
        .1
}

impl Decoder for L1 {
    #[track_caller]
    fn decode(&self, a: ArrayView2<f64>, b: ArrayView1<f64>) -> Array1<f64> {
        let (m, n) = (check_lengths(a, b.len()), a.ncols());
        let fit = LeastSquares.decode(a, b);
        if m <= n || n == 0 {
            return fit;
        }
        let residuals = &b - &a.dot(&fit);
        let zero = self.tolerance * median_magnitude(b);
        if residuals.iter().all(|r| r.abs() <= zero) {
            return fit;
        }
        let start = trimmed(a, b, &residuals).unwrap_or(fit);
        let Some(mut vertex) = Vertex::near(a, b, &start, zero) else {
            undetermined(a)
        };
        // Each step lowers the objective, or (rarely, on ties) keeps it;
        // the cap only guards against cycling through such ties.
        for _ in 0..10 * (m + n) {
            if !vertex.descend() {
                break;
            }
        }
        vertex.solution().unwrap_or_else(|| undetermined(a))
    }
}

/// A vertex of the L1 problem: `n` measurements fitted exactly.
struct Vertex<'a> {
    a: ArrayView2<'a, f64>,
    b: ArrayView1<'a, f64>,
    /// The measurement at each position of the basis.
    basis: Vec<usize>,
    in_basis: Vec<bool>,
    /// The inverse of the basis's rows of `a`: column `j` is the step
    /// in `z` that moves measurement `basis[j]`'s fit by one and keeps the
    /// other basic ones.
    inverse: Array2<f64>,
    z: Array1<f64>,
    /// `b − a z`, zero on the basis.
    residuals: Array1<f64>,
    /// Updates of `inverse` since it was last computed afresh.
    updates: usize,
    /// Residuals within this of zero count as zero.
    zero: f64,
}

impl<'a> Vertex<'a> {
    /// The vertex whose basis is made of the measurements fitted best by
    /// `z`, skipping those dependent on the ones taken, or none when the
    /// measurements do not span the unknowns.
    fn near(
        a: ArrayView2<'a, f64>,
        b: ArrayView1<'a, f64>,
        z: &Array1<f64>,
        zero: f64,
    ) -> Option<Self> {
        let (m, n) = a.dim();
        let residuals = &b - &a.dot(z);
        let mut order: Vec<usize> = (0..m).collect();
        order.sort_by(|&i, &j| residuals[i].abs().total_cmp(&residuals[j].abs()));
        let mut vertex = Vertex {
            a,
            b,
            basis: order[..n].to_vec(),
            in_basis: vec![false; m],
            inverse: Array2::zeros((n, n)),
            z: Array1::zeros(n),
            residuals: Array1::zeros(m),
            updates: 0,
            zero,
        };
        // Random directions make any n measurements independent; others
        // may not, and then the basis is picked one by one.
        if vertex.refresh().is_none() {
            vertex.basis = independent(a, &order)?;
            vertex.refresh()?;
        }
        Some(vertex)
    }

    /// Computes the inverse and the fit afresh from the basis, shedding
    /// the rounding the updates accumulate.
    fn refresh(&mut self) -> Option<()> {
        let n = self.basis.len();
        let rows = self.a.select(Axis(0), &self.basis);
        self.inverse = least_squares(rows.view(), Array2::eye(n).view()).ok()?;
        let fitted: Array1<f64> = self.basis.iter().map(|&i| self.b[i]).collect();
        self.z = self.inverse.dot(&fitted);
        self.residuals = &self.b - &self.a.dot(&self.z);
        self.in_basis.fill(false);
        for &i in &self.basis {
            self.in_basis[i] = true;
            self.residuals[i] = 0.0;
        }
        self.updates = 0;
        Some(())
    }

    /// Takes the steepest descending edge to its best breakpoint; false
    /// when no edge descends (the vertex is optimal).
    fn descend(&mut self) -> bool {
        let a = self.a;
        // u = Σ sign(rᵢ) aᵢ over the measurements off the basis and off
        // zero; the slope of the objective along edge j, stepping z by
        // ±inverse[:, j], is 1 ∓ (inverse[:, j] · u), plus |aᵢ · inverse[:,
        // j]| for each measurement at zero, which the step pulls away.
        let mut u = Array1::zeros(a.ncols());
        for (i, &r) in self.residuals.iter().enumerate() {
            if !self.in_basis[i] && r.abs() > self.zero {
                u.scaled_add(r.signum(), &a.row(i));
            }
        }
        let w = self.inverse.t().dot(&u);
        let mut edges: Vec<usize> = (0..w.len()).filter(|&j| w[j].abs() > 1.0).collect();
        edges.sort_by(|&i, &j| w[j].abs().total_cmp(&w[i].abs()));
        for j in edges {
            let direction = self.inverse.column(j).to_owned();
            let along = a.dot(&direction);
            let at_zero: f64 = (0..a.nrows())
                .filter(|&i| !self.in_basis[i] && self.residuals[i].abs() <= self.zero)
                .map(|i| along[i].abs())
                .sum();
            let slope = 1.0 - w[j].abs() + at_zero;
            if slope < -SLOPE_TOLERANCE {
                return self.walk(j, w[j].signum(), slope, direction, along);
            }
        }
        false
    }

    /// Walks edge `j` in direction `sign` (where the objective's slope is
    /// `slope`, negative) to the breakpoint where the slope turns
    /// non-negative, and swaps the measurement reaching zero there into
    /// the basis; false when there is none (rounding).
    fn walk(
        &mut self,
        j: usize,
        sign: f64,
        mut slope: f64,
        direction: Array1<f64>,
        along: Array1<f64>,
    ) -> bool {
        let a = self.a;
        // The breakpoints ahead: where a residual off the basis and off
        // zero reaches zero; crossing one raises the slope by twice its
        // rate (from falling to rising).
        let mut breakpoints: Vec<(f64, f64, usize)> = (0..a.nrows())
            .filter(|&i| !self.in_basis[i] && self.residuals[i].abs() > self.zero)
            .filter_map(|i| {
                let rate = sign * along[i];
                let t = self.residuals[i] / rate;
                (rate != 0.0 && t > 0.0).then_some((t, 2.0 * rate.abs(), i))
            })
            .collect();
        breakpoints.sort_by(|x, y| x.0.total_cmp(&y.0));
        let Some(&(t, _, entering)) = breakpoints.iter().find(|&&(_, rise, _)| {
            slope += rise;
            slope >= 0.0
        }) else {
            return false;
        };
        self.z.scaled_add(sign * t, &direction);
        self.residuals.scaled_add(-sign * t, &along);
        // Measurement `entering` replaces basis[j]: a rank-one update of
        // the inverse (Sherman and Morrison), whose pivot is along[entering].
        let leaving = self.basis[j];
        let pivot = along[entering];
        let mut row = a.row(entering).dot(&self.inverse);
        row[j] -= 1.0;
        for (mut column, &r) in self.inverse.axis_iter_mut(Axis(1)).zip(&row) {
            column.scaled_add(-r / pivot, &direction);
        }
        self.basis[j] = entering;
        self.in_basis[leaving] = false;
        self.in_basis[entering] = true;
        self.residuals[leaving] = -sign * t;
        for &i in &self.basis {
            self.residuals[i] = 0.0;
        }
        self.updates += 1;
        if self.updates >= a.ncols() && self.refresh().is_none() {
            return false;
        }
        true
    }

    /// The fit of the basis, solved afresh.
    fn solution(mut self) -> Option<Array1<f64>> {
        self.refresh()?;
        Some(self.z)
    }
}

/// `n` linearly independent measurements (rows of `a`), taken in
/// `order` and skipping those dependent on the ones before, by
/// Gram-Schmidt; none when there are not `n`.
fn independent(a: ArrayView2<f64>, order: &[usize]) -> Option<Vec<usize>> {
    let n = a.ncols();
    let mut orthonormal: Vec<Array1<f64>> = Vec::with_capacity(n);
    let mut basis = Vec::with_capacity(n);
    for &i in order {
        let row = a.row(i);
        let length = row.dot(&row).sqrt();
        let mut v = row.to_owned();
        // Twice, so that rounding leaves v orthogonal to the rest.
        for _ in 0..2 {
            for q in &orthonormal {
                let projection = q.dot(&v);
                v.scaled_add(-projection, q);
            }
        }
        let left = v.dot(&v).sqrt();
        if left > 1e-8 * length {
            orthonormal.push(v / left);
            basis.push(i);
            if basis.len() == n {
                return Some(basis);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn the_l1_fit_of_a_line_passes_through_the_majority() {
        // Five points on y = 1 + 2t and one far above: the L1 line is the
        // majority's, least squares is pulled up.
        let t = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0];
        let a = Array2::from_shape_fn((6, 2), |(i, j)| if j == 0 { 1.0 } else { t[i] });
        let mut b: Array1<f64> = t.iter().map(|t| 1.0 + 2.0 * t).collect();
        b[2] += 100.0;
        let z = L1::default().decode(a.view(), b.view());
        assert!(
            (z[0] - 1.0).abs() < 1e-12 && (z[1] - 2.0).abs() < 1e-12,
            "{z}"
        );
    }

    #[test]
    fn the_objective_is_the_smallest_among_nearby_points() {
        // Inconsistent measurements with no majority: the decoded z is a
        // minimum of Σ|a z − b| (no nearby point does better).
        let a = array![[1.0, 0.5], [0.3, -1.0], [2.0, 1.0], [-1.0, 0.7], [0.4, 0.4]];
        let b = array![1.0, -2.0, 0.5, 3.0, 1.5];
        let objective = |z: &Array1<f64>| (&b - &a.dot(z)).mapv(f64::abs).sum();
        let z = L1::default().decode(a.view(), b.view());
        let best = objective(&z);
        for dx in [-1e-4, 0.0, 1e-4] {
            for dy in [-1e-4, 0.0, 1e-4] {
                let nearby = &z + &array![dx, dy];
                assert!(objective(&nearby) >= best - 1e-12, "{nearby} beats {z}");
            }
        }
    }
}
