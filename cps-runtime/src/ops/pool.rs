//! Pooling (`max_pool2d`, `avg_pool2d`).
