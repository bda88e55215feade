//! The digits reader: the real `digits.csv.gz` (when the shared data is
//! there), its seeded split, and small bad files, each of whose errors must
//! name the file, the line and the problem.

#![cfg(feature = "data")]

use std::io::Write;
use std::path::{Path, PathBuf};

use cps_runtime::data::{Digits, DigitsError, DigitsLineError, parse_digits, read_digits};
use flate2::Compression;
use flate2::write::GzEncoder;

/// scikit-learn's file, in the shared data beside the workspace.
const DIGITS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/data/digits/digits.csv.gz"
);

/// The real data set, or `None` (with a message saying why the test is
/// skipped) when the shared data is absent.
fn real_digits() -> Option<Digits> {
    let path = Path::new(DIGITS);
    if !path.exists() {
        println!("skipped: {} is absent", path.display());
        return None;
    }
    Some(read_digits(path).unwrap_or_else(|e| panic!("{e}")))
}

#[test]
fn reads_scikit_learns_digits() {
    let Some(digits) = real_digits() else { return };
    assert_eq!(digits.len(), 1797);
    assert_eq!(digits.images.dim(), (1797, 64));
    // The counts scikit-learn documents for `load_digits`.
    assert_eq!(
        digits.class_counts(),
        [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    );
    assert_eq!(digits.labels[0], 0);
    // The first image's top row, as in the file: 0,0,5,13,9,1,0,0.
    assert_eq!(
        digits.image(0).row(0).to_vec(),
        [0.0, 0.0, 5.0, 13.0, 9.0, 1.0, 0.0, 0.0]
    );
    assert!(digits.images.iter().all(|&v| (0.0..=16.0).contains(&v)));
    assert_eq!(digits.images.iter().fold(0.0f32, |m, &v| m.max(v)), 16.0);
}

#[test]
fn the_split_is_1437_and_360_disjoint_and_seeded() {
    let Some(digits) = real_digits() else { return };
    let (train, test) = digits.train_test_split(0);
    assert_eq!((train.len(), test.len()), (1437, 360));
    assert_eq!(train.images.nrows(), 1437);
    assert_eq!(test.images.nrows(), 360);

    // Every image lands in exactly one set: match rows (image and label)
    // as multisets, since a few images of the data set are duplicates.
    let key = |d: &Digits, i: usize| {
        let mut row: Vec<u8> = d.images.row(i).iter().map(|&v| v as u8).collect();
        row.push(d.labels[i] as u8);
        row
    };
    let mut all: Vec<Vec<u8>> = (0..digits.len()).map(|i| key(&digits, i)).collect();
    let mut parts: Vec<Vec<u8>> = (0..train.len())
        .map(|i| key(&train, i))
        .chain((0..test.len()).map(|i| key(&test, i)))
        .collect();
    all.sort();
    parts.sort();
    assert_eq!(all, parts);

    // The same seed, the same split; another seed, another one.
    assert_eq!(digits.train_test_split(0), (train.clone(), test.clone()));
    let (other_train, other_test) = digits.train_test_split(1);
    assert_eq!(other_test.len(), 360);
    assert_ne!(other_test.labels, test.labels);
    assert_ne!(other_train.images, train.images);
}

#[test]
fn splits_index_sets_are_disjoint() {
    // Images made distinct by their label and first pixel, so each one's
    // origin can be read back from the split.
    let csv: String = (0..25)
        .map(|i| format!("{},{}{}\n", i % 17, "0,".repeat(63), i % 10))
        .collect();
    let digits = parse_digits(csv.as_bytes()).unwrap();
    let (train, test) = digits.train_test_split(3);
    assert_eq!((train.len(), test.len()), (20, 5));
    let origin = |d: &Digits, i: usize| (d.images[[i, 0]] as usize, d.labels[i]);
    let mut seen: Vec<_> = (0..train.len())
        .map(|i| origin(&train, i))
        .chain((0..test.len()).map(|i| origin(&test, i)))
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 25);
}

// --- Bad files ---------------------------------------------------------------

/// A valid line: 64 pixels then `label`.
fn line(label: &str) -> String {
    format!("{}{label}\n", "1,".repeat(64))
}

/// Writes `text` gzip'd into `dir` as `name`.
fn gzip_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(text.as_bytes()).unwrap();
    std::fs::write(&path, encoder.finish().unwrap()).unwrap();
    path
}

/// Reads a bad file; checks the error names it, and returns the error and
/// its message.
fn read_bad(path: &Path) -> (DigitsError, String) {
    let error = read_digits(path).expect_err("a bad file");
    let message = error.to_string();
    assert!(
        message.contains(&path.display().to_string()),
        "the message names the file: {message}"
    );
    (error, message)
}

/// Checks the error is at `expected_line`, that the message says so and
/// mentions `problem`, and returns what was wrong.
fn line_error(path: &Path, expected_line: usize, problem: &str) -> DigitsLineError {
    let (error, message) = read_bad(path);
    assert!(
        message.contains(&format!(":{expected_line}: ")),
        "the message names line {expected_line}: {message}"
    );
    assert!(
        message.contains(problem),
        "{message} should say {problem:?}"
    );
    match error {
        DigitsError::Line { line, kind, .. } => {
            assert_eq!(line, expected_line, "{message}");
            kind
        }
        other => panic!("expected a line error, got {other:?}"),
    }
}

#[test]
fn wrong_column_count() {
    let dir = tempfile::tempdir().unwrap();
    let short = format!("{}{}0,0,3\n", line("0"), line("1"));
    let path = gzip_file(dir.path(), "short.csv.gz", &short);
    let kind = line_error(&path, 3, "expected 65 comma-separated values");
    assert_eq!(kind, DigitsLineError::ColumnCount { found: 3 });
    let long = format!("{}1,{}", line("0"), line("2"));
    let path = gzip_file(dir.path(), "long.csv.gz", &long);
    assert_eq!(
        line_error(&path, 2, "found 66"),
        DigitsLineError::ColumnCount { found: 66 }
    );
}

#[test]
fn a_value_that_is_not_a_number() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!("{}{}", line("4"), line("4").replacen("1,", "x1,", 5));
    let path = gzip_file(dir.path(), "word.csv.gz", &text);
    // `replacen` changed the first five values; the first is reported.
    let kind = line_error(&path, 2, "value 1 is not a number: `x1`");
    assert_eq!(
        kind,
        DigitsLineError::NotANumber {
            column: 1,
            text: "x1".into()
        }
    );
    let path = gzip_file(dir.path(), "label.csv.gz", &line("seven"));
    line_error(&path, 1, "value 65 is not a number: `seven`");
}

#[test]
fn a_pixel_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    for (value, shown) in [("17", "17"), ("-1", "-1"), ("2.5", "2.5")] {
        let mut pixels = vec!["1"; 64];
        pixels[9] = value;
        let bad = format!("{},5\n", pixels.join(","));
        let text = format!("{}{}{bad}", line("0"), line("1"));
        let path = gzip_file(dir.path(), "pixel.csv.gz", &text);
        let message =
            format!("value 10 is a pixel, expected a whole number 0 to 16, found {shown}");
        assert!(matches!(
            line_error(&path, 3, &message),
            DigitsLineError::PixelOutOfRange { column: 10, .. }
        ));
    }
}

#[test]
fn a_label_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    let path = gzip_file(dir.path(), "label.csv.gz", &format!("\n{}", line("10")));
    // The blank first line is skipped but counted.
    let kind = line_error(
        &path,
        2,
        "value 65 is the label, expected a whole number 0 to 9, found 10",
    );
    assert_eq!(kind, DigitsLineError::LabelOutOfRange { value: 10.0 });
}

#[test]
fn not_gzip_damaged_gzip_missing_and_empty() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.csv");
    std::fs::write(&plain, line("3")).unwrap();
    let (error, message) = read_bad(&plain);
    assert!(matches!(error, DigitsError::NotGzip { .. }), "{error:?}");
    assert!(message.contains("not a gzip file"), "{message}");

    let full = gzip_file(dir.path(), "full.csv.gz", &line("3").repeat(50));
    let bytes = std::fs::read(&full).unwrap();
    let cut = dir.path().join("cut.csv.gz");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let (error, message) = read_bad(&cut);
    assert!(matches!(error, DigitsError::Gzip { .. }), "{error:?}");
    assert!(message.contains("damaged gzip data"), "{message}");

    let missing = dir.path().join("missing.csv.gz");
    let (error, message) = read_bad(&missing);
    assert!(matches!(error, DigitsError::Io { .. }), "{error:?}");
    assert!(message.starts_with("cannot read"), "{message}");

    let empty = gzip_file(dir.path(), "empty.csv.gz", "\n\n");
    let (error, message) = read_bad(&empty);
    assert!(matches!(error, DigitsError::Empty { .. }), "{error:?}");
    assert!(message.contains("no images"), "{message}");
}

#[test]
fn parse_digits_reads_plain_csv_with_crlf_and_spaces() {
    let text = format!("{} 16 ,9\r\n\r\n{}", "0,".repeat(63), line("2"));
    let digits = parse_digits(text.as_bytes()).unwrap();
    assert_eq!(digits.labels, [9, 2]);
    assert_eq!(digits.images[[0, 63]], 16.0);
    assert_eq!(digits.class_counts()[9], 1);
    let err = parse_digits(&b"\xff,1\n"[..]).unwrap_err();
    assert_eq!(err.to_string(), "line 1: invalid UTF-8");
}

/// A folder stands for the `digits.csv.gz` in it; a folder without one is
/// an error naming the file looked for.
#[test]
fn a_folder_is_read_through_its_digits_csv_gz() {
    let dir = tempfile::tempdir().unwrap();
    let file = gzip_file(dir.path(), "digits.csv.gz", &(line("3") + &line("7")));
    let from_folder = read_digits(dir.path()).expect("the folder's file");
    assert_eq!(from_folder, read_digits(&file).unwrap());
    assert_eq!(from_folder.labels, [3, 7]);
    assert_eq!(from_folder.scaled_images()[[0, 0]], 1.0 / 16.0);
    let empty = tempfile::tempdir().unwrap();
    let message = read_digits(empty.path()).unwrap_err().to_string();
    assert!(
        message.contains(&empty.path().join("digits.csv.gz").display().to_string()),
        "{message}"
    );
}
