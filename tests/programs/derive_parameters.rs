//! `#[derive(Parameters)]` on structs with no parameters: a unit struct, an
//! empty one, an empty tuple struct, and one whose every field is skipped.
//! Each is a model like any other (an optimizer steps it, `gradcheck`
//! checks it, it goes behind `dyn Parameters`), for either element type,
//! with no annotation beyond what the context already says.

use cps::prelude::*;
use ndarray::array;

#[derive(Parameters)]
struct Unit;

#[derive(Parameters)]
struct NoFields {}

#[derive(Parameters)]
struct EmptyTuple();

#[derive(Parameters)]
struct AllSkipped {
    #[parameters(skip)]
    _scale: f64,
}

/// A model built from parts, some of which have no parameters (an
/// activation, say), beside one that has.
#[derive(Parameters)]
struct Stack {
    activation: Unit,
    weight: Param<f64>,
    rest: NoFields,
}

fn count<A: Element>(model: &dyn Parameters<A>) -> usize {
    let mut n = 0;
    model.visit(&mut |_, _| n += 1);
    n
}

#[test]
fn parameterless_structs_are_models_of_either_element_type() {
    let (mut unit, mut empty, mut tuple, mut skipped) =
        (Unit, NoFields {}, EmptyTuple(), AllSkipped { _scale: 2.0 });
    assert_eq!(count::<f32>(&unit) + count::<f64>(&empty), 0);
    assert_eq!(count::<f32>(&tuple) + count::<f64>(&skipped), 0);
    let mut sgd = Sgd::new(0.1f32);
    sgd.step(&mut unit);
    sgd.step(&mut tuple);
    let mut adam = Adam::new(0.1f64);
    adam.step(&mut empty);
    adam.step(&mut skipped);
}

#[test]
fn a_model_with_parameterless_parts_names_and_trains_its_parameters() {
    let mut model = Stack {
        activation: Unit,
        weight: Param::new(array![1.0f64, -2.0]),
        rest: NoFields {},
    };
    let mut names = Vec::new();
    model.visit(&mut |name, _| names.push(name.to_string()));
    assert_eq!(names, ["weight"]);
    let report = gradcheck(&mut model, |m| {
        lazy(|k: &mut dyn FnMut(Var<f64>)| (&m.weight * &m.weight).bind(|s| s.sum().bind(k)))
            .backward()
    });
    assert!(report.passes(1e-6), "{report}");
    assert_eq!(report.elements_checked, 2);
}
