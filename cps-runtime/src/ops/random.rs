//! Random tensors from a generator the caller owns, and sampling whose log-probability is differentiable.
