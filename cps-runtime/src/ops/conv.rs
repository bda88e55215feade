//! Convolutions (`conv1d`, `conv2d`) on the matrix product.
