//! Parameter files (safetensors) and word-vector files.

use std::path::Path;

use cps_runtime::data::{GloveError, GloveLineError, GloveOptions, Vocab, load_glove, read_glove};
use cps_runtime::io::{
    ParamFileError, load_parameters, read_tensors, save_parameters, write_atomically, write_tensors,
};
use cps_runtime::{Element, Param, Parameters};
use ndarray::{Array, Array2, ArrayD, IxDyn, array};
use proptest::prelude::*;

/// A model with names like the Tree-LSTM's.
struct Model<A: Element> {
    w_leaf: Param<A>,
    b_leaf: Param<A>,
    scale: Param<A>,
}

impl<A: Element> Parameters<A> for Model<A> {
    fn visit(&self, f: &mut dyn FnMut(&str, &Param<A>)) {
        f("W_leaf", &self.w_leaf);
        f("b_leaf", &self.b_leaf);
        f("scale", &self.scale);
    }
    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Param<A>)) {
        f("W_leaf", &mut self.w_leaf);
        f("b_leaf", &mut self.b_leaf);
        f("scale", &mut self.scale);
    }
}

fn model<A: Element>(offset: f64) -> Model<A> {
    let value = |i: usize| A::from_f64_lossy(offset + i as f64 * 0.37 - 1.1);
    Model {
        w_leaf: Param::new(Array::from_shape_fn((3, 4), |(i, j)| value(4 * i + j))),
        b_leaf: Param::new(Array::from_shape_fn(3, value)),
        scale: Param::new(ndarray::arr0(value(7))),
    }
}

fn values<A: Element>(m: &Model<A>) -> Vec<ArrayD<A>> {
    let mut out = Vec::new();
    m.visit(&mut |_, p| out.push(p.array().clone()));
    out
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn round_trip_f32_and_f64_bit_exact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m32.safetensors");
    let saved = model::<f32>(0.0);
    save_parameters(&saved, &path).unwrap();
    let mut loaded = model::<f32>(5.0);
    assert_ne!(values(&loaded), values(&saved));
    load_parameters(&mut loaded, &path).unwrap();
    assert_eq!(values(&loaded), values(&saved));

    let path = dir.path().join("m64.safetensors");
    let saved = model::<f64>(0.1);
    save_parameters(&saved, &path).unwrap();
    let mut loaded = model::<f64>(9.0);
    load_parameters(&mut loaded, &path).unwrap();
    for (a, b) in values(&loaded).iter().zip(values(&saved)) {
        assert_eq!(
            a.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            b.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
    }

    let tensors = read_tensors::<f64>(&path).unwrap();
    assert_eq!(
        tensors.keys().collect::<Vec<_>>(),
        ["W_leaf", "b_leaf", "scale"]
    );
    assert_eq!(tensors["W_leaf"].shape(), [3, 4]);
    assert_eq!(tensors["b_leaf"].shape(), [3]);
    assert_eq!(tensors["scale"].shape(), [] as [usize; 0]);
    assert_eq!(tensors["scale"][IxDyn(&[])], 0.1 + 7.0 * 0.37 - 1.1);
    assert_eq!(
        files_in(dir.path()),
        ["m32.safetensors", "m64.safetensors"],
        "no temporary files left"
    );
}

#[test]
fn non_contiguous_values_are_written_in_logical_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.safetensors");
    let transposed = array![[1.0f32, 2.0, 3.0], [4.0, 5.0, 6.0]]
        .reversed_axes()
        .into_dyn();
    assert!(!transposed.is_standard_layout());
    write_tensors(&path, [("t", &transposed)]).unwrap();
    let back = read_tensors::<f32>(&path).unwrap();
    assert_eq!(back["t"], transposed);
    assert_eq!(
        back["t"].iter().copied().collect::<Vec<_>>(),
        [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]
    );
}

/// A file laid out by hand from the format's description, as PyTorch's
/// `save_file` writes it (with its `__metadata__` entry and 1-D biases).
fn handmade_file() -> Vec<u8> {
    let mut header = String::from(
        r#"{"__metadata__":{"format":"pt"},"W_leaf":{"dtype":"F32","shape":[3,4],"data_offsets":[0,48]},"b_leaf":{"dtype":"F32","shape":[3],"data_offsets":[48,60]},"scale":{"dtype":"F32","shape":[],"data_offsets":[60,64]}}"#,
    );
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    for i in 0..16 {
        bytes.extend_from_slice(&(i as f32 * 0.5).to_le_bytes());
    }
    bytes
}

#[test]
fn reads_a_file_written_by_the_format_description() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("init.safetensors");
    std::fs::write(&path, handmade_file()).unwrap();
    let tensors = read_tensors::<f32>(&path).unwrap();
    assert_eq!(
        tensors["W_leaf"],
        array![
            [0.0f32, 0.5, 1.0, 1.5],
            [2.0, 2.5, 3.0, 3.5],
            [4.0, 4.5, 5.0, 5.5]
        ]
        .into_dyn()
    );
    assert_eq!(tensors["b_leaf"], array![6.0f32, 6.5, 7.0].into_dyn());
    assert_eq!(tensors["scale"], ndarray::arr0(7.5f32).into_dyn());

    let mut m = model::<f32>(0.0);
    load_parameters(&mut m, &path).unwrap();
    assert_eq!(m.b_leaf.array(), &array![6.0f32, 6.5, 7.0].into_dyn());

    // And what we write, read back by hand: header length, then JSON naming each tensor.
    let ours = dir.path().join("ours.safetensors");
    save_parameters(&m, &ours).unwrap();
    let bytes = std::fs::read(&ours).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&bytes[8..8 + n]).unwrap();
    assert!(
        header.contains(r#""b_leaf":{"dtype":"F32","shape":[3],"data_offsets":"#),
        "{header}"
    );
    assert_eq!(bytes.len(), 8 + n + 16 * 4);
}

#[test]
fn corrupt_and_truncated_files_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    save_parameters(&model::<f32>(0.0), &path).unwrap();
    let good = std::fs::read(&path).unwrap();

    let bad = dir.path().join("bad.safetensors");
    for cut in 0..good.len() {
        std::fs::write(&bad, &good[..cut]).unwrap();
        let mut m = model::<f32>(1.0);
        let before = values(&m);
        let err = load_parameters(&mut m, &bad).unwrap_err();
        assert!(
            matches!(err, ParamFileError::Corrupt { .. }),
            "cut at {cut}: {err}"
        );
        assert!(
            err.to_string()
                .contains("bad.safetensors: not a valid safetensors file"),
            "{err}"
        );
        assert_eq!(
            values(&m),
            before,
            "a failed load must not change the model"
        );
    }

    std::fs::write(&bad, b"this is not a parameter file at all").unwrap();
    assert!(matches!(
        read_tensors::<f32>(&bad),
        Err(ParamFileError::Corrupt { .. })
    ));
    let mut huge_header = u64::MAX.to_le_bytes().to_vec();
    huge_header.extend_from_slice(b"{}");
    std::fs::write(&bad, huge_header).unwrap();
    assert!(matches!(
        read_tensors::<f32>(&bad),
        Err(ParamFileError::Corrupt { .. })
    ));

    let missing = dir.path().join("missing.safetensors");
    let err = read_tensors::<f32>(&missing).unwrap_err();
    assert!(
        matches!(&err, ParamFileError::Io { path, .. } if *path == missing),
        "{err}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn damaged_files_never_panic(flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        let mut bytes = handmade_file();
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        std::fs::write(&path, &bytes).unwrap();
        let mut m = model::<f32>(0.0);
        let _ = load_parameters(&mut m, &path);
        let _ = read_tensors::<f64>(&path);
    }
}

#[test]
fn wrong_shape_names_the_tensor_and_both_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    save_parameters(&model::<f32>(0.0), &path).unwrap();
    let mut other = model::<f32>(1.0);
    other.b_leaf = Param::new(Array2::zeros((3, 1)));
    let before = values(&other);
    let err = load_parameters(&mut other, &path).unwrap_err();
    match &err {
        ParamFileError::ShapeMismatch {
            name,
            expected,
            found,
            ..
        } => {
            assert_eq!(
                (name.as_str(), expected.as_slice(), found.as_slice()),
                ("b_leaf", &[3, 1][..], &[3][..])
            );
        }
        _ => panic!("expected a shape mismatch, got {err}"),
    }
    assert!(
        err.to_string().ends_with(
            "m.safetensors: tensor `b_leaf` has shape [3], but the parameter has shape [3, 1]"
        ),
        "{err}"
    );
    assert_eq!(
        values(&other),
        before,
        "nothing is loaded when any tensor is wrong"
    );
}

#[test]
fn wrong_dtype_missing_and_unexpected_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    save_parameters(&model::<f64>(0.0), &path).unwrap();
    let err = load_parameters(&mut model::<f32>(0.0), &path).unwrap_err();
    assert!(
        matches!(&err, ParamFileError::DtypeMismatch { name, expected, found, .. }
            if name == "W_leaf" && expected == "F32" && found == "F64"),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("tensor `W_leaf` holds F64, expected F32"),
        "{err}"
    );

    // The file lacks `scale`.
    let m = model::<f32>(0.0);
    write_tensors(
        &path,
        [("W_leaf", m.w_leaf.array()), ("b_leaf", m.b_leaf.array())],
    )
    .unwrap();
    let err = load_parameters(&mut model::<f32>(1.0), &path).unwrap_err();
    assert!(
        matches!(&err, ParamFileError::MissingTensor { name, .. } if name == "scale"),
        "{err}"
    );
    assert!(err.to_string().contains("no tensor named `scale`"), "{err}");

    // The file has an extra `emb`.
    let emb = ArrayD::<f32>::zeros(IxDyn(&[2, 2]));
    write_tensors(
        &path,
        [
            ("W_leaf", m.w_leaf.array()),
            ("b_leaf", m.b_leaf.array()),
            ("scale", m.scale.array()),
            ("emb", &emb),
        ],
    )
    .unwrap();
    let mut target = model::<f32>(1.0);
    let before = values(&target);
    let err = load_parameters(&mut target, &path).unwrap_err();
    assert!(
        matches!(&err, ParamFileError::UnexpectedTensor { name, .. } if name == "emb"),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("tensor `emb` matches no parameter of the model"),
        "{err}"
    );
    assert_eq!(values(&target), before);
}

#[test]
fn a_failed_save_leaves_the_old_file_intact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    save_parameters(&model::<f32>(0.0), &path).unwrap();
    let old = std::fs::read(&path).unwrap();

    // Two parameters with one name: refused before anything is written.
    let twins = (Param::new(array![1.0f32]), Param::new(array![2.0f32]));
    struct Twins((Param, Param));
    impl Parameters for Twins {
        fn visit(&self, f: &mut dyn FnMut(&str, &Param)) {
            f("w", &self.0.0);
            f("w", &self.0.1);
        }
        fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Param)) {
            f("w", &mut self.0.0);
            f("w", &mut self.0.1);
        }
    }
    let err = save_parameters(&Twins(twins), &path).unwrap_err();
    assert!(
        matches!(&err, ParamFileError::InvalidName { name, .. } if name == "w"),
        "{err}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), old);

    // A write that fails half-way: the old file stays, the partial one is removed.
    let failed = write_atomically(&path, |file| {
        std::io::Write::write_all(file, b"partial garbage")?;
        Err(std::io::Error::other("disk on fire"))
    });
    assert_eq!(failed.unwrap_err().to_string(), "disk on fire");
    assert_eq!(std::fs::read(&path).unwrap(), old);
    assert_eq!(files_in(dir.path()), ["m.safetensors"]);

    // The final rename fails (a directory is in the way): nothing is left behind.
    let blocked = dir.path().join("blocked");
    std::fs::create_dir(&blocked).unwrap();
    let err = save_parameters(&model::<f32>(0.0), &blocked).unwrap_err();
    assert!(
        matches!(&err, ParamFileError::Io { path, .. } if *path == blocked),
        "{err}"
    );
    assert!(blocked.is_dir());
    assert_eq!(files_in(dir.path()), ["blocked", "m.safetensors"]);

    // A missing directory is an error naming the file.
    let nowhere = dir.path().join("no/such/dir/m.safetensors");
    let err = save_parameters(&model::<f32>(0.0), &nowhere).unwrap_err();
    assert!(
        err.to_string().contains("no/such/dir/m.safetensors"),
        "{err}"
    );

    // And a successful save does replace the file.
    save_parameters(&model::<f32>(2.0), &path).unwrap();
    assert_ne!(std::fs::read(&path).unwrap(), old);
    let mut m = model::<f32>(0.0);
    load_parameters(&mut m, &path).unwrap();
    assert_eq!(values(&m), values(&model::<f32>(2.0)));
}

#[test]
fn reserved_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let a = ArrayD::<f32>::zeros(IxDyn(&[1]));
    let err = write_tensors(dir.path().join("m.safetensors"), [("__metadata__", &a)]).unwrap_err();
    assert!(err.to_string().contains("reserves this name"), "{err}");
    assert!(files_in(dir.path()).is_empty());
}

// --- word vectors ---

fn vocab(words: &[&str]) -> Vocab {
    let mut vocab = Vocab::new();
    words.iter().for_each(|w| {
        vocab.insert(w);
    });
    vocab
}

#[test]
fn glove_fills_rows_of_known_words_only() {
    let vocab = vocab(&["good", "bad", "8\u{a0}1\\/2"]);
    let mut table = Array2::<f32>::from_elem((4, 3), -7.0);
    let text = "zebra 1 1 1\ngood 0.25 -1e-3 3\r\n\n8\u{a0}1\\/2 1 2 3\nbad 4 5 6\nbad 7 8 9\n";
    let report = read_glove(text.as_bytes(), &vocab, &mut table, GloveOptions::default()).unwrap();
    assert_eq!((report.lines, report.found, report.skipped), (5, 4, 0));
    assert_eq!(
        table.row(0).to_vec(),
        [-7.0, -7.0, -7.0],
        "<unk> is not in the file: unchanged"
    );
    assert_eq!(table.row(1).to_vec(), [0.25, -1e-3, 3.0]);
    assert_eq!(
        table.row(2).to_vec(),
        [7.0, 8.0, 9.0],
        "the later line wins"
    );
    assert_eq!(table.row(3).to_vec(), [1.0, 2.0, 3.0]);
}

#[test]
fn glove_values_round_through_f64_like_python() {
    // Parsed as f64, then rounded to f32 (as `torch.tensor([float(v)])` does).
    let vocab = vocab(&["x"]);
    let mut table = Array2::<f32>::zeros((2, 1));
    read_glove(
        "x 0.1000000000000000055511151231257827\n".as_bytes(),
        &vocab,
        &mut table,
        GloveOptions::default(),
    )
    .unwrap();
    assert_eq!(table[[1, 0]], 0.1f64 as f32);
    let mut table = ArrayD::<f64>::zeros(IxDyn(&[2, 1]));
    read_glove(
        "x 0.1\n".as_bytes(),
        &vocab,
        &mut table,
        GloveOptions::default(),
    )
    .unwrap();
    assert_eq!(table[[1, 0]], 0.1);
}

#[test]
fn glove_errors_name_file_line_and_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vectors.txt");
    let vocab = vocab(&["good"]);
    let mut table = Array2::<f32>::zeros((2, 2));

    let cases: &[(&str, usize, GloveLineError, &str)] = &[
        (
            "good 1 2\ngood 1\n",
            2,
            GloveLineError::WrongCount {
                expected: 2,
                found: 1,
            },
            "expected a word and 2 values, found 1",
        ),
        (
            "good 1 2 3\n",
            1,
            GloveLineError::WrongCount {
                expected: 2,
                found: 3,
            },
            "found 3",
        ),
        (
            "other 1\n",
            1,
            GloveLineError::WrongCount {
                expected: 2,
                found: 1,
            },
            "found 1",
        ),
        (
            "good 1  2\n",
            1,
            GloveLineError::WrongCount {
                expected: 2,
                found: 3,
            },
            "found 3",
        ),
        (
            "x 1 2\ngood 1 zwei\n",
            2,
            GloveLineError::BadFloat {
                position: 2,
                text: "zwei".into(),
            },
            "value 2 is not a number: `zwei`",
        ),
        (
            "good 1,5 2\n",
            1,
            GloveLineError::BadFloat {
                position: 1,
                text: "1,5".into(),
            },
            "value 1",
        ),
    ];
    for (text, line, kind, message) in cases {
        std::fs::write(&path, text).unwrap();
        let err = load_glove(&path, &vocab, &mut table, GloveOptions::default()).unwrap_err();
        match &err {
            GloveError::Line {
                path: Some(p),
                line: l,
                kind: k,
            } => {
                assert_eq!(
                    (p.as_path(), l, k),
                    (path.as_path(), line, kind),
                    "{text:?}"
                );
            }
            _ => panic!("{text:?}: expected a line error, got {err}"),
        }
        let shown = err.to_string();
        assert!(
            shown.starts_with(&format!("{}:{line}: ", path.display())),
            "{shown}"
        );
        assert!(shown.contains(message), "{shown}");
    }

    std::fs::write(&path, b"good 1 \xff\n").unwrap();
    let err = load_glove(&path, &vocab, &mut table, GloveOptions::default()).unwrap_err();
    assert!(
        matches!(
            err,
            GloveError::Line {
                line: 1,
                kind: GloveLineError::InvalidUtf8,
                ..
            }
        ),
        "{err}"
    );

    let err = load_glove(
        dir.path().join("absent.txt"),
        &vocab,
        &mut table,
        GloveOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, GloveError::Io { path: Some(_), .. }),
        "{err}"
    );
    assert!(err.to_string().contains("absent.txt"), "{err}");

    let mut wrong = Array2::<f32>::zeros((3, 2));
    let err = read_glove(
        "good 1 2\n".as_bytes(),
        &vocab,
        &mut wrong,
        GloveOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, GloveError::TableShape { shape, vocab_len: 2 } if *shape == [3, 2]),
        "{err}"
    );
    let mut flat = ArrayD::<f32>::zeros(IxDyn(&[2]));
    assert!(matches!(
        read_glove(
            "good 1 2\n".as_bytes(),
            &vocab,
            &mut flat,
            GloveOptions::default()
        ),
        Err(GloveError::TableShape { .. })
    ));
}

#[test]
fn glove_can_skip_malformed_lines() {
    let vocab = vocab(&["good", "bad"]);
    let mut table = Array2::<f32>::zeros((3, 2));
    let text = "good 1 2\nbad 1 oops\nweird entry 1 2\nbad 3 4\n";
    let report = read_glove(
        text.as_bytes(),
        &vocab,
        &mut table,
        GloveOptions {
            skip_malformed: true,
        },
    )
    .unwrap();
    assert_eq!((report.lines, report.found, report.skipped), (4, 2, 2));
    assert_eq!(table.row(2).to_vec(), [3.0, 4.0]);
    // A bad line does not write part of a row.
    let mut table = Array2::<f32>::zeros((3, 2));
    read_glove(
        "good 1 2\nbad 9 oops\n".as_bytes(),
        &vocab,
        &mut table,
        GloveOptions {
            skip_malformed: true,
        },
    )
    .unwrap();
    assert_eq!(table.row(2).to_vec(), [0.0, 0.0]);
}

/// Vectors of another length than the table's are an error even when
/// skipping malformed lines: otherwise every line would be skipped.
#[test]
fn glove_of_the_wrong_length_fails_at_the_first_line() {
    let vocab = vocab(&["good", "bad"]);
    let mut table = Array2::<f32>::zeros((3, 2));
    let error = read_glove(
        "good 1 2 3\nbad 4 5 6\n".as_bytes(),
        &vocab,
        &mut table,
        GloveOptions {
            skip_malformed: true,
        },
    )
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "line 1: expected a word and 2 values, found 3"
    );
    assert_eq!(table, Array2::<f32>::zeros((3, 2)));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn glove_never_panics(bytes in prop::collection::vec(
        prop::sample::select(vec![b'g', b'o', b'd', b' ', b'1', b'.', b'e', b'-', b'\n', b'\r', 0xff, b'x']), 0..80)) {
        let vocab = vocab(&["good", "god"]);
        let mut table = Array2::<f64>::zeros((3, 2));
        let _ = read_glove(&bytes[..], &vocab, &mut table, GloveOptions::default());
        let _ = read_glove(&bytes[..], &vocab, &mut table, GloveOptions { skip_malformed: true });
    }
}
