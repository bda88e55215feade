//! Dense linear algebra beyond the product: Cholesky factorisation, symmetric positive-definite solves, small inverses.
