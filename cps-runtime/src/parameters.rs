//! [`Parameters`]: walking the trainable tensors of a model.

use crate::element::Element;
use crate::param::Param;

/// A model, or any part of one, that holds [`Param`]s. Optimizers,
/// gradient checks and parameter files walk models through this trait.
///
/// Implemented for `Param`, `Vec`, arrays, `Option`, `Box` and tuples of
/// such; for a model struct, list its fields (in a fixed order: it is the
/// order optimizers and files see them). `#[derive(Parameters)]` writes
/// this for a struct whose fields all implement it.
///
/// ```
/// use cps_runtime::*;
/// use ndarray::Array2;
///
/// struct Linear { w: Param, b: Param }
///
/// impl Parameters for Linear {
///     fn visit(&self, f: &mut dyn FnMut(&str, &Param)) {
///         f("w", &self.w);
///         f("b", &self.b);
///     }
///     fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Param)) {
///         f("w", &mut self.w);
///         f("b", &mut self.b);
///     }
/// }
///
/// let layer = Linear { w: Param::new(Array2::zeros((3, 2))), b: Param::new(Array2::zeros((1, 2))) };
/// assert_eq!(layer.parameter_count(), 8);
/// ```
pub trait Parameters<A: Element = f32> {
    /// Calls `f` on each parameter with its name, in a fixed order.
    fn visit(&self, f: &mut dyn FnMut(&str, &Param<A>));

    /// Calls `f` on each parameter mutably, in the same order as [`visit`](Parameters::visit).
    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Param<A>));

    /// The total number of scalar parameters.
    fn parameter_count(&self) -> usize {
        let mut count = 0;
        self.visit(&mut |_, p| count += p.len());
        count
    }

    /// Discards every accumulated gradient.
    fn zero_grad(&self) {
        self.visit(&mut |_, p| p.zero_grad());
    }
}

impl<A: Element> Parameters<A> for Param<A> {
    fn visit(&self, f: &mut dyn FnMut(&str, &Param<A>)) {
        f("", self)
    }
    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Param<A>)) {
        f("", self)
    }
}

fn join(prefix: &str, name: &str) -> String {
    match (prefix.is_empty(), name.is_empty()) {
        (_, true) => prefix.to_string(),
        (true, false) => name.to_string(),
        (false, false) => format!("{prefix}.{name}"),
    }
}

fn visit_items<'a, A: Element, T: Parameters<A> + 'a>(
    items: impl Iterator<Item = &'a T>,
    f: &mut dyn FnMut(&str, &Param<A>),
) {
    for (i, item) in items.enumerate() {
        item.visit(&mut |name, p| f(&join(&i.to_string(), name), p));
    }
}

fn visit_items_mut<'a, A: Element, T: Parameters<A> + 'a>(
    items: impl Iterator<Item = &'a mut T>,
    f: &mut dyn FnMut(&str, &mut Param<A>),
) {
    for (i, item) in items.enumerate() {
        item.visit_mut(&mut |name, p| f(&join(&i.to_string(), name), p));
    }
}

impl<A: Element, T: Parameters<A>> Parameters<A> for Vec<T> {
    fn visit(&self, f: &mut dyn FnMut(&str, &Param<A>)) {
        visit_items(self.iter(), f)
    }
    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Param<A>)) {
        visit_items_mut(self.iter_mut(), f)
    }
}

impl<A: Element, T: Parameters<A>, const N: usize> Parameters<A> for [T; N] {
    fn visit(&self, f: &mut dyn FnMut(&str, &Param<A>)) {
        visit_items(self.iter(), f)
    }
    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Param<A>)) {
        visit_items_mut(self.iter_mut(), f)
    }
}

impl<A: Element, T: Parameters<A>> Parameters<A> for Option<T> {
    fn visit(&self, f: &mut dyn FnMut(&str, &Param<A>)) {
        if let Some(inner) = self {
            inner.visit(f)
        }
    }
    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Param<A>)) {
        if let Some(inner) = self {
            inner.visit_mut(f)
        }
    }
}

impl<A: Element, T: Parameters<A> + ?Sized> Parameters<A> for Box<T> {
    fn visit(&self, f: &mut dyn FnMut(&str, &Param<A>)) {
        (**self).visit(f)
    }
    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Param<A>)) {
        (**self).visit_mut(f)
    }
}

macro_rules! tuple_parameters {
    ($($name:ident $index:tt),+) => {
        impl<A: Element, $($name: Parameters<A>),+> Parameters<A> for ($($name,)+) {
            fn visit(&self, f: &mut dyn FnMut(&str, &Param<A>)) {
                $(self.$index.visit(&mut |name, p| f(&join(stringify!($index), name), p));)+
            }
            fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Param<A>)) {
                $(self.$index.visit_mut(&mut |name, p| f(&join(stringify!($index), name), p));)+
            }
        }
    };
}
tuple_parameters!(T0 0);
tuple_parameters!(T0 0, T1 1);
tuple_parameters!(T0 0, T1 1, T2 2);
tuple_parameters!(T0 0, T1 1, T2 2, T3 3);
tuple_parameters!(T0 0, T1 1, T2 2, T3 3, T4 4);
tuple_parameters!(T0 0, T1 1, T2 2, T3 3, T4 4, T5 5);
