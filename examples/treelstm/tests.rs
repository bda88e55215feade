//! The example as a user meets it: resuming from a checkpoint, and the
//! mistakes that must stop a run before it trains.

use std::path::{Path, PathBuf};

use crate::cli;

/// A scratch folder of its own for each test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cps-treelstm-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Options from command-line words, with every output inside `dir`.
fn options(dir: &Path, words: &[&str]) -> cli::Options {
    let mut all: Vec<String> = words.iter().map(|w| w.to_string()).collect();
    for (flag, file) in [
        ("--plot", "loss.svg"),
        ("--checkpoint", "checkpoint.safetensors"),
    ] {
        if !words.contains(&flag) {
            all.extend([flag.to_string(), dir.join(file).display().to_string()]);
        }
    }
    cli::parse(all).unwrap().run().expect("a run")
}

#[test]
fn resuming_after_epoch_one_gives_the_parameters_of_an_uninterrupted_run() {
    let dir = scratch("resume");
    let path = |name: &str| dir.join(name).display().to_string();
    let (straight, first, resumed, reloaded) = (
        path("straight.safetensors"),
        path("first.safetensors"),
        path("resumed.safetensors"),
        path("reloaded.safetensors"),
    );
    let (first_log, resumed_log) = (path("first.txt"), path("resumed.txt"));
    let common = ["--limit", "150", "--no-eval"];
    let run = |words: &[&str]| crate::run(&options(&dir, &[&common[..], words].concat()));
    run(&["--epochs", "2", "--save", &straight]).unwrap();
    run(&["--epochs", "1", "--loss-log", &first_log, "--save", &first]).unwrap();
    assert!(dir.join("checkpoint.safetensors").is_file());
    run(&[
        "--epochs",
        "2",
        "--resume",
        "--save",
        &resumed,
        "--loss-log",
        &resumed_log,
    ])
    .unwrap();
    let bytes = |name: &str| std::fs::read(dir.join(name)).unwrap();
    assert!(
        bytes("straight.safetensors") == bytes("resumed.safetensors"),
        "the resumed run's parameters differ from the uninterrupted run's"
    );
    // The resumed run's log is the whole run's: epoch 1 from the
    // checkpoint, then epoch 2.
    let log = String::from_utf8(bytes("resumed.txt")).unwrap();
    assert_eq!(log.lines().count(), 300);
    assert!(log.starts_with(&String::from_utf8(bytes("first.txt")).unwrap()));

    // The negative control: a second epoch from epoch 1's parameters
    // alone (a fresh optimizer) is another run.
    run(&["--epochs", "1", "--save", &reloaded, "--load", &first]).unwrap();
    assert!(bytes("reloaded.safetensors") != bytes("straight.safetensors"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Runs `words` and returns its error, checking that it trained nothing
/// (no checkpoint was written).
fn fails_before_training(dir: &Path, words: &[&str]) -> String {
    let error = crate::run(&options(dir, words)).unwrap_err();
    assert!(
        !dir.join("checkpoint.safetensors").exists(),
        "it trained before failing: {error}"
    );
    error
}

#[test]
fn a_missing_output_folder_fails_before_training() {
    let dir = scratch("missing-folder");
    let save = dir.join("no-such-folder/model.safetensors");
    let error = fails_before_training(
        &dir,
        &["--limit", "20", "--save", &save.display().to_string()],
    );
    assert_eq!(
        error,
        format!(
            "--save {}: the folder '{}' does not exist",
            save.display(),
            dir.join("no-such-folder").display()
        )
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn empty_training_data_fails_naming_the_file() {
    let dir = scratch("empty");
    for name in ["train.txt", "dev.txt", "test.txt"] {
        std::fs::write(dir.join(name), "").unwrap();
    }
    let error = fails_before_training(&dir, &["--data", &dir.display().to_string()]);
    assert_eq!(
        error,
        format!("{}: no trees to train on", dir.join("train.txt").display())
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn word_vectors_of_the_wrong_length_fail_naming_the_file_and_line() {
    let dir = scratch("glove");
    let glove = dir.join("vectors.txt");
    std::fs::write(&glove, "good 0.1 0.2 0.3\nbad 0.4 0.5 0.6\n").unwrap();
    let error = fails_before_training(
        &dir,
        &["--glove", &glove.display().to_string(), "--embedding", "8"],
    );
    assert_eq!(
        error,
        format!(
            "{}:1: expected a word and 8 values, found 3 (the embedding size is 8; see --embedding)",
            glove.display()
        )
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
