//! [`Snapshot`]: a model's parameters detached from it, to build replicas
//! of it on other threads.

use ndarray::ArrayD;

use crate::element::Element;
use crate::parameters::Parameters;

/// Every parameter of a model, by name, with its value, whether it is
/// trainable and its identity: plain data, which can be sent to other
/// threads (a model's [`Param`](crate::Param)s cannot: a value is a
/// single-threaded handle).
///
/// [`Snapshot::restore`] makes a model built the same way (a replica) equal
/// to the original, identities included, so that a clone of the
/// original's optimizer steps the replica's parameters as it would the
/// original's.
///
/// ```
/// use cps_runtime::parallel::Snapshot;
/// use cps_runtime::*;
/// use ndarray::array;
///
/// let original = Param::new(array![1.0f32, 2.0]);
/// let snapshot = Snapshot::of(&original);
/// let replica = std::thread::spawn(move || {
///     let mut replica = Param::new(array![0.0f32, 0.0]);
///     snapshot.restore(&mut replica);
///     replica.array().clone()
/// });
/// assert_eq!(replica.join().unwrap(), original.array());
/// ```
#[derive(Clone, Debug)]
pub struct Snapshot<A: Element = f32> {
    parameters: Vec<Saved<A>>,
}

#[derive(Clone, Debug)]
struct Saved<A> {
    name: String,
    value: ArrayD<A>,
    trainable: bool,
    id: u64,
}

impl<A: Element> Snapshot<A> {
    /// A copy of `model`'s parameters.
    pub fn of(model: &dyn Parameters<A>) -> Self {
        let mut parameters = Vec::new();
        model.visit(&mut |name, p| {
            parameters.push(Saved {
                name: name.to_string(),
                value: p.array().clone(),
                trainable: p.is_trainable(),
                id: p.id(),
            })
        });
        Snapshot { parameters }
    }

    /// Makes `model` (built the same way as the original) equal to the
    /// original: values, trainability and identities.
    ///
    /// # Panics
    /// When `model`'s parameters differ from the original's in number,
    /// name or shape, naming the first that differs.
    pub fn restore(&self, model: &mut dyn Parameters<A>) {
        let mut saved = self.parameters.iter();
        let mut count = 0;
        model.visit_mut(&mut |name, p| {
            count += 1;
            let Some(original) = saved.next() else {
                panic!(
                    "Snapshot::restore: the replica has a parameter `{name}` beyond the \
                     original's {}",
                    self.parameters.len()
                );
            };
            assert!(
                original.name == name && original.value.shape() == p.shape(),
                "Snapshot::restore: the replica's parameter `{name}` {:?} is not the \
                 original's `{}` {:?}: build the replica the way the original was built",
                p.shape(),
                original.name,
                original.value.shape()
            );
            p.update_value(|value| value.assign(&original.value));
            p.set_trainable(original.trainable);
            p.adopt_identity(original.id);
        });
        assert!(
            count == self.parameters.len(),
            "Snapshot::restore: the replica has {count} parameters, the original {}",
            self.parameters.len()
        );
    }
}
