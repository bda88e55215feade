//! Every differentiable operation of the runtime checked against central
//! finite differences in f64 on random inputs and shapes, with negative
//! controls: one test binary, a module per family of operations.

mod support;

mod activations_losses_grad;
mod compare_grad;
mod conv_pool_grad;
mod custom_backward;
mod elementwise_grad;
mod f32_products;
mod gradcheck_negative;
mod hvp_ops;
mod linalg_grad;
mod max_pool_2x2;
mod norm_losses_grad;
mod random;
mod reductions_grad;
mod shape_grad;
mod tensor_ops_grad;
mod unary_grad;
