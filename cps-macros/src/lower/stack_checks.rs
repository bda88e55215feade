//! Where the generated code checks the stack.
//!
//! Every bind point's frame stays live until the backward pass reaches it
//! (the stack is the tape), so the stack must be checked often enough that
//! the frames nested between two checks fit in the room a check leaves
//! (the runtime's red zone). Checking at every bind point is safe but
//! costly: the way to another stack segment takes room in the frame of
//! every bind point that has it. The runtime checks at every call of a
//! differentiable function, on its way back, and at every loop iteration;
//! what remains unbounded-looking is a long run of operations in one body,
//! so the lowering counts bind points along each way through the generated
//! code and makes every [`UNCHECKED_RUN`]-plus-first one check.

use proc_macro2::TokenStream;
use quote::quote;
use syn::Result;

use super::{Cont, Lowerer};

/// The most bind points along one way through a body between two stack
/// checks. Unoptimised builds (`opt-level = 0`) take about 1.3 KB of stack
/// per bind point (measured on the scalar chain example; optimised, about
/// 190 bytes), so a run of seventeen takes about 22 KB: far inside the
/// runtime's red zone of 512 KiB.
pub const UNCHECKED_RUN: usize = 16;

/// The count of bind points since the last stack check.
#[derive(Default)]
pub struct StackChecks {
    /// Bind points since the last check on the way being generated.
    unchecked: usize,
    /// The largest `unchecked` reached within the region being measured
    /// (see [`Lowerer::measured_from`]).
    deepest: usize,
}

impl Lowerer {
    /// Counts a bind point whose value `t` names and generates what follows
    /// it with `k`: that code, and whether this bind point checks the stack.
    pub(super) fn after_bind_point(
        &mut self,
        t: &syn::Ident,
        k: Cont,
    ) -> Result<(TokenStream, bool)> {
        let checks = &mut self.stack_checks;
        let before = checks.unchecked;
        let checked = before >= UNCHECKED_RUN;
        checks.unchecked = if checked { 0 } else { before + 1 };
        checks.deepest = checks.deepest.max(checks.unchecked);
        let rest = k(self, quote!(#t));
        self.stack_checks.unchecked = before;
        Ok((rest?, checked))
    }

    /// Generates `f` starting from a count of `start`, and returns with it
    /// the largest count any way through it reached: an upper bound for
    /// the code that any of its ways continue to (the rest after a branch,
    /// the rest after a loop that may be left from anywhere in its body).
    pub(super) fn measured_from<T>(
        &mut self,
        start: usize,
        f: impl FnOnce(&mut Self) -> T,
    ) -> (T, usize) {
        let outer = self.stack_checks.unchecked;
        let outer_deepest = std::mem::replace(&mut self.stack_checks.deepest, start);
        self.stack_checks.unchecked = start;
        let result = f(self);
        let deepest = self.stack_checks.deepest;
        self.stack_checks.deepest = outer_deepest.max(deepest);
        self.stack_checks.unchecked = outer;
        (result, deepest)
    }

    /// Generates `f` starting from a count of `start`.
    pub(super) fn counted_from<T>(&mut self, start: usize, f: impl FnOnce(&mut Self) -> T) -> T {
        let outer = std::mem::replace(&mut self.stack_checks.unchecked, start);
        let result = f(self);
        self.stack_checks.unchecked = outer;
        result
    }

    /// The count on the way being generated.
    pub(super) fn unchecked_count(&self) -> usize {
        self.stack_checks.unchecked
    }
}

#[cfg(test)]
mod tests {
    /// How many bind points of `body` (a function body) check the stack.
    fn checked_bind_points(body: &str) -> usize {
        let source = format!("fn f(w: &Param, x: Var, c: bool, n: usize) -> Var {{ {body} }}");
        let item: proc_macro2::TokenStream = source.parse().expect("valid Rust");
        let expanded = crate::emit::differentiable(proc_macro2::TokenStream::new(), item)
            .expect("expands")
            .to_string();
        expanded.matches("__cps_run_checked").count()
            + expanded.matches("__cps_then_checked").count()
    }

    fn operations(count: usize) -> String {
        "let x = x * w;".repeat(count)
    }

    #[test]
    fn a_run_of_operations_checks_every_seventeenth() {
        assert_eq!(checked_bind_points(&(operations(16) + "x")), 0);
        assert_eq!(checked_bind_points(&(operations(17) + "x")), 1);
        assert_eq!(checked_bind_points(&(operations(34) + "x")), 2);
        // An annotated `let` is a bind point of its own kind, counted alike.
        let annotated = operations(16) + "let y: Var = x * w; y";
        assert_eq!(checked_bind_points(&annotated), 1);
    }

    /// `count` assignments `x = x * w;` to a `mut x` declared before.
    fn updates(count: usize) -> String {
        "x = x * w;".repeat(count)
    }

    #[test]
    fn the_rest_after_a_branch_counts_from_its_deepest_arm() {
        // Ten operations in one arm, one in the other, then `after`: along
        // the first arm's way, seventeen bind points in a row need a check.
        let body = |after: usize| {
            format!(
                "let mut x = x; if c {{ {} }} else {{ {} }} {} x",
                updates(10),
                updates(1),
                operations(after)
            )
        };
        assert_eq!(checked_bind_points(&body(6)), 0);
        assert_eq!(checked_bind_points(&body(7)), 1);
    }

    #[test]
    fn a_loop_body_starts_counting_afresh_and_the_rest_after_it_does_not() {
        // Each iteration starts with a check in the loop driver, so fifteen
        // operations before the loop and ten bind points in it (nine
        // operations and the iterator's `next`) need none; the rest after
        // the loop runs on top of an iteration, so ten in the body and
        // seven after it make seventeen.
        let body = |after: usize| {
            format!(
                "{} let mut x = x; for _ in 0..n {{ {} }} {} x",
                operations(15),
                updates(9),
                operations(after)
            )
        };
        assert_eq!(checked_bind_points(&body(6)), 0);
        assert_eq!(checked_bind_points(&body(7)), 1);
    }
}
