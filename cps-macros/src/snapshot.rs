//! The expansion of a small function, kept in `tests/snapshots/` so that a
//! change in the generated code shows up in review. Set
//! `CPS_UPDATE_SNAPSHOTS=1` to rewrite it.

use std::path::PathBuf;

fn expand(source: &str) -> String {
    let item: proc_macro2::TokenStream = source.parse().expect("valid Rust");
    let expanded =
        crate::emit::differentiable(proc_macro2::TokenStream::new(), item).expect("expands");
    let file: syn::File = syn::parse2(expanded).expect("the expansion parses");
    prettyplease::unparse(&file)
}

fn check(name: &str, source: &str) {
    let actual = format!(
        "// Source:\n{}\n// Expansion:\n{}",
        commented(source),
        expand(source)
    );
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(format!("{name}.rs.txt"));
    if std::env::var_os("CPS_UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().expect("has a parent")).expect("snapshot directory");
        std::fs::write(&path, &actual).expect("snapshot written");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with CPS_UPDATE_SNAPSHOTS=1 to create it",
            path.display()
        )
    });
    assert_eq!(
        actual, expected,
        "the expansion of `{name}` changed; run with CPS_UPDATE_SNAPSHOTS=1 to accept it"
    );
}

fn commented(source: &str) -> String {
    source.trim().lines().map(|l| format!("// {l}\n")).collect()
}

#[test]
fn neuron() {
    check(
        "neuron",
        r#"
fn neuron(w: &Param, b: &Param, x: &Var) -> Var {
    let z = x.matmul(w) + b;
    z.tanh().sum()
}
"#,
    );
}

#[test]
fn rnn_with_early_return() {
    check(
        "rnn",
        r#"
fn rnn(m: &Rnn, xs: &[Var], limit: f32) -> Var {
    let mut h = m.h0.tanh();
    for x in xs {
        h = (x.matmul(&m.wx) + h.matmul(&m.wh)).tanh();
        if h.value().sum() > limit {
            return h.sum();
        }
    }
    h.sum()
}
"#,
    );
}

#[test]
fn scalar_chain_loop() {
    check(
        "chain",
        r#"
fn chain(a: &Param, b: &Param, steps: usize) -> Var {
    let mut x = Var::constant(array![0.5f32]);
    for i in 0..steps {
        let y = x * a + b;
        x = if i % 2 == 0 { y.tanh() } else { y.sigmoid() };
    }
    x.sum()
}
"#,
    );
}

#[test]
fn trait_with_a_default_method() {
    check(
        "layer_trait",
        r#"
trait Layer {
    fn forward(&self, x: &Var) -> Var;
    fn twice(&self, x: &Var) -> Var {
        let once = self.forward(x);
        self.forward(&once)
    }
}
"#,
    );
}

#[test]
fn trait_impl() {
    check(
        "layer_impl",
        r#"
impl Layer for Dense {
    fn forward(&self, x: &Var) -> Var {
        x.matmul(&self.w) + &self.b
    }
}
"#,
    );
}
