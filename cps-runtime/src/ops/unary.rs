//! Elementwise functions beyond the activations: trigonometry, powers, special functions (erf, the normal CDF), clamps and selection by a mask.
