//! # cps: differentiable programming in continuation-passing style
//!
//! Write ordinary Rust, put `#[differentiable]` on it, and every operation
//! in it receives the rest of the computation as its callback (its
//! *continuation*). An operation computes its result, calls the
//! continuation with it, and when the continuation returns, the result's
//! gradient is complete, so the operation adds it into its inputs'
//! gradients. The forward pass is a sequence of nested calls and the
//! backward pass is the same sequence of returns: **the call stack is the
//! tape**. There is no graph, so any control flow Rust has (`if`, `match`,
//! loops, recursion over a tree) is differentiable because it simply runs
//! (Wang et al., "Backpropagation with Callbacks", NeurIPS 2018).
//!
//! ```
//! use cps::prelude::*;
//! use ndarray::array;
//!
//! #[derive(Parameters)]
//! struct Neuron {
//!     w: Param<f64>,
//!     b: Param<f64>,
//! }
//!
//! #[differentiable]
//! fn loss(m: &Neuron, x: &Var<f64>, steps: usize) -> Var<f64> {
//!     let mut h = x.clone();
//!     for _ in 0..steps {
//!         h = (h.matmul(&m.w) + &m.b).tanh();   // an RNN: state carried across iterations
//!     }
//!     if h.value().sum() > 0.0 { h.square().sum() } else { h.sum() }
//! }
//!
//! let model = Neuron { w: Param::new(array![[0.5, -0.2], [0.1, 0.3]]), b: Param::new(array![0.1, 0.0]) };
//! let x = Var::constant(array![1.0, 2.0]);
//! let value = loss(&model, &x, 3).backward();      // forward, then backward
//! assert!(value.is_finite());
//! assert!(model.w.grad().iter().any(|g| *g != 0.0)); // gradients sit on the Params
//! ```
//!
//! ## What the attribute does
//!
//! `#[differentiable]` goes on a function, a method, or an inherent `impl`
//! block. Calling the function returns a lazy [`Computation`]:
//! [`backward`](Computation::backward) runs it and back-propagates from its
//! (one-element) result, [`eval`](Computation::eval) runs it forward only,
//! and inside another differentiable function it is used like any value,
//! recursion included.
//!
//! The body is rewritten so that every call, method call and arithmetic
//! operator is a *bind point*: its value is handed to a closure holding
//! the rest of the function. The macro sees no types; the type of each
//! bound value decides at compile time what happens. A [`Computation`] (an
//! operation on [`Var`]s, or a differentiable function's result) runs the
//! closure and back-propagates when it returns; any other value (a
//! `usize`, a `Vec`, a reference) is passed straight on, and the optimiser
//! erases the closure. For example
//!
//! ```text
//! fn neuron(w: &Param, b: &Param, x: &Var) -> Var {
//!     let z = x.matmul(w) + b;
//!     z.tanh().sum()
//! }
//! ```
//!
//! becomes (abridged; the full expansion is in the macro crate's
//! `tests/snapshots/neuron.rs.txt`)
//!
//! ```text
//! fn neuron<'__cps>(w: &'__cps Param, b: &'__cps Param, x: &'__cps Var)
//!     -> impl ::cps::Computation<Output = Var> + '__cps
//! {
//!     let run = move |k: &mut dyn FnMut(Var)| {
//!         let k = Once::new(k);
//!         // The statement `let z = x.matmul(w) + b;`, staged:
//!         let s1 = Stage::new(x.matmul(w)).__cps_stage()
//!             .__cps_then(|t1| Stage::new(t1 + b).__cps_stage());
//!         Staged::__cps_run(s1, |z| {
//!             let s2 = Stage::new(z.tanh()).__cps_stage()
//!                 .__cps_then(|t2| Stage::new(t2.sum()).__cps_stage());
//!             Staged::__cps_run(s2, |v| k.call(v));
//!         });
//!     };
//!     ::cps::__private::lazy(run)
//! }
//! ```
//!
//! A statement is first evaluated as far as its values are plain: each of
//! its bind points hands its value to the rest of the *statement*, and a
//! plain value does so at once, so the statement's temporaries (a
//! `RefCell` guard in `log.borrow_mut().push(v)`, the entry in
//! `*counts.entry(w).or_insert(0) += 1`) end with it, as in plain Rust.
//! From its first computation on, the rest of the statement runs when that
//! computation hands on its output, and the rest of the function after
//! that. The first operations of a statement that use no earlier result
//! of it are evaluated first, in order; a differentiable function's body
//! runs when its result is bound, so a plain call later in the same
//! statement that reads what that body changes (a counter it bumps) sees
//! the value from before. (A statement whose later operations hold on to
//! a variable the rest of the function may still want, a `mut` one or one
//! they borrow, such as `outputs.push(h.matmul(w))`, is lowered with the
//! rest of the function inside each continuation instead, so that the
//! variable stays usable there.)
//!
//! An `if`, `match` or block whose branches contain bind points becomes a
//! small computation of its own, bound the same way; a loop becomes a call
//! to a loop driver whose body runs one iteration and continues with the
//! next one from inside its continuation. `mut` variables and `&mut`
//! references used inside are passed in and out explicitly, by move (no
//! `Clone` needed, nothing copied). Between differentiable functions, the
//! continuation is a `&mut dyn FnMut`, so recursion compiles to ordinary
//! recursion.
//!
//! ## What the body may contain
//!
//! Nested expressions, operators (`+ - * /`, unary `-`), method calls and
//! calls (in Rust's evaluation order), calls to other differentiable
//! functions (recursion and mutual recursion), `let` with patterns,
//! tuples, `if`/`else`, `if let`, `match` (bindings, guards), `for`,
//! `while`, `while let` and `loop` (with `break value`, `continue`, and
//! state carried in `mut` variables of any type, `Clone` or not), early
//! `return` (also from inside a loop), iterator chains whose closures
//! compute (`xs.iter().map(|x| f(x)).collect::<Vec<Var>>()` or with a typed
//! `let`, `.map(..).sum()` over `Var`s of one shape, `.fold(init, |acc, x|
//! ..)`, with `zip`, `enumerate` or any adapter before the `map`: each is
//! written out as the `for` loop it means; other shapes, such as a
//! computing closure passed on to `filter_map` or `max_by`, are ordinary
//! code and need that loop written by hand), `?` in a function returning
//! `Result` (errors converted with `From`) or `Option` (an early return:
//! the caller gets the error, and `.try_backward()` runs such a function,
//! seeding no gradient when it fails), `&mut` arguments used inside loops
//! (a random generator for dropout) and `&mut self` methods updating their
//! receiver there, assignment and compound assignment to
//! places computed by calls (`*counts.entry(w).or_insert(0) += 1`), and
//! ordinary code mixed in (indexing, `len()`, integer arithmetic,
//! `println!`, building `Vec`s, `RefCell`s and their guards).
//!
//! What `&x` lends a call, and how long: a call is still running while the
//! rest of the caller runs (its backward step comes last), so it holds
//! what it was lent until then. `&x` lends `x` itself, except a cheap
//! shared handle (`Var`, `Rc`, `Arc`) or a `Copy` value, which is lent as a
//! copy of the handle: nothing can tell the two apart, and `x` stays free
//! to be moved afterwards. A `RefCell`, a `Vec` or a struct of yours is
//! lent itself, so what the call writes into it is there afterwards, and
//! it stays borrowed until the call's backward step: pushing into a `Vec`
//! after lending it is a borrow error at the `push` (keep the blocks in an
//! `Rc`, or lend a clone, as the Tree-LSTM's level mode does).
//!
//! Where locals end: a block's locals are dropped where control leaves
//! the block (its end, `return`, `break`, `continue`) when every later
//! mention leaves them in place and keeps no borrow past its statement (an
//! assigned place, a comparison, a formatting macro, and for a `let mut`
//! local a method call that is a statement of its own, `g.push(v);`); so
//! a guard taken in a loop body (`let mut g = log.borrow_mut();`) is
//! released before the next iteration. Any other local lives until the
//! backward pass reaches its block, like everything a running call may
//! still hold.
//!
//! Forward only (`.eval()`), nothing is kept for a backward pass: a
//! differentiable function's call ends, its frames and values gone, before
//! the caller goes on, and a loop's iterations run one after another, as
//! in plain Rust. A recurrent model run over a long sequence then holds one
//! step's values (`tests/forward_only_memory.rs`; `bench/gru_forward.sh`
//! measures a GRU over 100,000 tokens).
//!
//! ## Traits
//!
//! `#[differentiable]` on a trait makes each of its methods (but those
//! marked `#[plain]`) return a lazy computation, default bodies rewritten;
//! on an impl of that trait, it rewrites the impl's methods to match. A
//! call through a generic parameter (`fn f<L: Layer>(l: &L, ..)`) is
//! monomorphised and boxes nothing. When the trait can be a trait object
//! (its methods take `&self` or `&mut self`, have no type parameters and
//! do not mention `Self` otherwise, and it has no other items),
//! `Box<dyn Layer>` and `&dyn Layer` implement it too: each call goes
//! through the vtable and returns a [`BoxedComputation`] (one allocation),
//! so a `Vec<Box<dyn Layer>>` runs in a differentiable loop and a tree of
//! `Box<dyn Node>` recurses. A boxed layer keeps its type's overrides of
//! default methods, and has the trait's supertraits where the box has
//! them (`Parameters` does). A method of a `&dyn Layer` is called through
//! a generic function or as `Layer::forward(&layer, x)`: Rust resolves
//! `layer.forward(x)` on the trait object itself, whose lazy methods need
//! a sized type. The `tests/programs/traits.rs` file shows each case. An impl of a
//! trait that is not `#[differentiable]` cannot be rewritten (its
//! signatures would no longer match: rustc reports E0053).
//!
//! What is rejected at compile time, at the offending construct, with what
//! to write instead: `async`, `unsafe`, labelled loops, closures
//! stored in variables whose bodies compute, shadowing a `mut` variable
//! inside a loop or branch that carries it, `impl Trait` arguments,
//! returning references. The `tests/ui` folder lists each case
//! with its message, and the borrow errors the rewrite can provoke (they
//! point at the lending `&x` and at the later use).
//!
//! Limits worth knowing:
//! - closure bodies, match guards and macro arguments are ordinary code:
//!   operations written there are not differentiated (call a
//!   differentiable function from the body instead), and a `Pending`
//!   result left there is a type error, never a silent wrong gradient;
//! - a call whose result type is inferred from later use needs a hint,
//!   either on its `let` (`let v: Vec<_> = it.collect();` works) or as a
//!   turbofish (`it.collect::<Vec<_>>()`) when it is used directly;
//! - among macros, only `vec![...]` has its elements rewritten;
//! - a variable that is not `mut` (say a `Vec` read by reference) used
//!   inside an `if`/`match`/loop with bind points, and then moved after
//!   it, must be cloned first, or declared `mut` so that the construct
//!   carries it;
//! - a reference kept in a `let` (`let v = h.value();`) keeps its variable
//!   borrowed until the block ends, so a loop that carries that variable
//!   cannot move it on before then: read what you need in the same
//!   statement (`let total = h.value().sum();`);
//! - a `mut` local consumed by a method call that is a statement of its
//!   own (`it.for_each(..);`, `it` a `let mut` iterator) is taken for a
//!   local used in place, and its drop where the block ends is a "use of
//!   moved value" error there: drop the `mut`, or chain the call onto the
//!   expression that made the value.

//! ## The stack is the tape
//!
//! Every operation's frame stays live until the backward pass reaches it.
//! Calls between differentiable functions (on the way in and on the way
//! back), loop iterations, and one operation in every seventeen along each
//! way through a body grow the stack on demand (on stack segments switched
//! to with the `corosensei` crate and kept per thread for reuse; `stacker`
//! elsewhere), so a million operations, a 10,000-step RNN or a tree 10,000
//! deep run in an ordinary 2 MiB thread: nothing to configure. (Checking
//! at every operation would be as safe, but the way to another segment
//! takes room in the frame of every operation that has it.) Finished results are
//! pooled per thread, so a training loop reuses them instead of
//! allocating.
//!
//! ## Speed
//!
//! Matrix-vector products run on kernels that read the matrix once (AVX2
//! and FMA for `f32` when the processor has them, chosen at run time);
//! a small batch through a weight matrix ([`Var::linear`] or
//! [`Var::matmul`] with up to 8 rows) reads the matrix once for the whole
//! batch; weight gradients of parameters are gathered into one matrix
//! product per computation, and Adagrad applies its update to such a
//! weight as that product is computed; `sigmoid` and `tanh` are
//! vectorised for `f32`. Where the processor has AVX-512, the
//! weight-gradient product, the fused Adagrad step and the vectorised
//! loops run sixteen lanes wide, with the same bits as eight. The
//! environment variable `CPS_SIMD` caps that choice at run time
//! (`portable`: the baseline everywhere; `avx2`: no AVX-512), for tests
//! and comparisons. A [`SecondCore`] guard lets the large products and the Adagrad
//! update share their rows with a partner thread, with the same results as
//! one core. [`join()`] runs two independent computations (say, the two
//! subtrees of a node) side by side, and batches their products of a
//! large matrix by a vector. `BENCHMARKS.md` in the repository has the
//! measurements.
//!
//! ## Writing continuation-passing style by hand
//!
//! The macro generates calls to [`Computation::bind`]; the same API is
//! public, so an operation or a whole computation can be written by hand
//! with [`lazy`] and [`Pending`] (see their documentation).

pub use cps_macros::{Parameters, differentiable};
pub use cps_runtime::*;

/// Everything a user of `cps` needs: `use cps::prelude::*;`.
pub mod prelude {
    pub use cps_macros::{Parameters, differentiable};
    pub use cps_runtime::optim::{
        Adagrad, Adam, AdamW, Optimizer, RmsProp, Sgd, clip_grad_norm, clip_grad_value,
    };
    pub use cps_runtime::{
        AxisIndex, BackwardStep, BatchNormStats, BoxedComputation, Computation, Conv1dOptions,
        Conv2dOptions, Detach, Dual, Element, GradcheckReport, IntoOperand, Lazy, NormOrder,
        Operand, Param, Parameters, Pending, Pool2dOptions, Split, Tap, Value, Var, checkpoint,
        checkpoint_with_rng, concat, gradcheck, hvp, join, jvp, lazy, live_result_bytes,
        reversible, rows_of, stack, vjp,
    };
}
