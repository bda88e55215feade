//! The README's Rust sample is real code: its first ```rust block must be,
//! line for line, the region `readme-sample` of the Tree-LSTM example
//! (between `// region: readme-sample` and `// endregion: readme-sample`
//! in `examples/treelstm/model.rs`). The example is compiled by
//! `cargo test --workspace`, so the sample compiles too, and this test
//! fails as soon as either side changes without the other.

use std::path::Path;

const README: &str = "README.md";
const SOURCE: &str = "examples/treelstm/model.rs";
const START: &str = "// region: readme-sample";
const END: &str = "// endregion: readme-sample";

fn read(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// The lines of the first ```rust block, with the line number (from 1)
/// of its first line.
fn first_rust_block(readme: &str) -> (usize, Vec<&str>) {
    let mut lines = readme.lines().enumerate();
    let start = lines
        .by_ref()
        .find(|(_, l)| l.trim_end() == "```rust")
        .map(|(n, _)| n + 2)
        .unwrap_or_else(|| panic!("{README} has no ```rust block"));
    let block = lines
        .map(|(_, l)| l)
        .take_while(|l| l.trim_end() != "```")
        .collect();
    (start, block)
}

/// The lines between the region's markers (the markers left out), with
/// the line number of its first line.
fn region(source: &str) -> (usize, Vec<&str>) {
    let lines: Vec<&str> = source.lines().collect();
    let find = |marker: &str| {
        let found: Vec<usize> = (0..lines.len())
            .filter(|&n| lines[n].trim() == marker)
            .collect();
        match found[..] {
            [n] => n,
            _ => panic!(
                "{SOURCE} must contain the line `{marker}` exactly once (found {} times)",
                found.len()
            ),
        }
    };
    let (start, end) = (find(START), find(END));
    assert!(start < end, "{SOURCE}: `{END}` comes before `{START}`");
    (start + 2, lines[start + 1..end].to_vec())
}

#[test]
fn the_readme_sample_is_the_examples_code() {
    let (readme, source) = (read(README), read(SOURCE));
    let (readme_line, sample) = first_rust_block(&readme);
    let (source_line, code) = region(&source);
    if sample == code {
        return;
    }
    let differs = sample
        .iter()
        .zip(&code)
        .position(|(a, b)| a != b)
        .unwrap_or(sample.len().min(code.len()));
    let show = |lines: &[&str], at: usize| {
        lines
            .get(at)
            .map_or("(the block ends here)".to_string(), |l| format!("{l:?}"))
    };
    panic!(
        "the README's Rust sample is not the example's code.\n\
         First difference:\n  \
         {README}:{}: {}\n  \
         {SOURCE}:{}: {}\n\
         The sample must be a verbatim copy of the lines between `{START}` and `{END}` \
         in {SOURCE}: change the code there (it is compiled), then paste it into the \
         first ```rust block of {README}. The region now reads:\n\n{}\n",
        readme_line + differs,
        show(&sample, differs),
        source_line + differs,
        show(&code, differs),
        code.join("\n"),
    );
}
