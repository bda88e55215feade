//! Optimizers: one file per algorithm, plus gradient clipping.
