//! Draws the loss logs of several runs (`--loss-log` files, one loss per
//! line) in one picture, to compare their learning: one worker against
//! two, one batch size against another.
//!
//! ```text
//! cargo run --release --example loss_curves -- --out curves.svg \
//!     "1 worker=one.log" "2 workers=two.log"
//! ```

#[path = "common/mod.rs"]
#[macro_use]
mod common;

use std::path::PathBuf;

use common::command::{self, Command};
use common::flags::Args;
use common::plot::loss_curves;

const USAGE: &str = "\
usage: loss_curves --out FILE.svg [options] LABEL=LOG...
  --out FILE            the picture to write (SVG)
  --window N            the running mean's width, in steps (default: 20)
  --title TEXT          what was trained, for the title (default: the model)
  --unit TEXT           what one step is: trees, batches... (default: steps)
  LABEL=LOG             a curve: its label and its loss log (one loss per line)";

/// What to draw.
#[derive(Debug, PartialEq)]
struct Options {
    out: PathBuf,
    window: usize,
    title: String,
    unit: String,
    curves: Vec<(String, PathBuf)>,
}

fn parse(args: impl IntoIterator<Item = String>) -> Result<Command<Options>, String> {
    let mut args = Args::new(args);
    let (mut out, mut window, mut title, mut unit) =
        (None, 20, "the model".to_string(), "steps".to_string());
    let mut curves = Vec::new();
    while let Some(word) = args.next_flag() {
        match word.as_str() {
            "--out" => out = Some(args.path(&word)?),
            "--window" => window = args.positive(&word)?,
            "--title" => title = args.value(&word)?,
            "--unit" => unit = args.value(&word)?,
            "-h" | "--help" => return Ok(Command::Help),
            curve => match curve.split_once('=') {
                Some((label, path)) if !curve.starts_with('-') => {
                    curves.push((label.to_string(), PathBuf::from(path)))
                }
                _ => return Err(format!("unknown option '{curve}' (a curve is LABEL=LOG)")),
            },
        }
    }
    let out = out.ok_or("--out FILE.svg is needed")?;
    if curves.is_empty() {
        return Err("no curves: give one or more LABEL=LOG".to_string());
    }
    Ok(Command::Run(Options {
        out,
        window,
        title,
        unit,
        curves,
    }))
}

/// The losses of a log, one per line; an unreadable line is named.
fn read_log(path: &PathBuf) -> Result<Vec<f32>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            line.trim().parse().map_err(|_| {
                format!(
                    "{}:{}: expected a loss (a number), found '{line}'",
                    path.display(),
                    i + 1
                )
            })
        })
        .collect()
}

fn run(options: &Options) -> Result<(), String> {
    let logs: Vec<(String, Vec<f32>)> = options
        .curves
        .iter()
        .map(|(label, path)| Ok((label.clone(), read_log(path)?)))
        .collect::<Result<_, String>>()?;
    let curves: Vec<(&str, &[f32])> = logs
        .iter()
        .map(|(label, losses)| (label.as_str(), losses.as_slice()))
        .collect();
    loss_curves(
        &curves,
        options.window,
        &options.title,
        &options.unit,
        &options.out,
    )?;
    report!("loss curves: {}", options.out.display());
    Ok(())
}

fn main() {
    let options = command::options_or_exit(parse, USAGE);
    command::exit_on_error(run(&options));
}
