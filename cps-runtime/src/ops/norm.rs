//! Normalisation layers (`layer_norm`, `batch_norm`).
