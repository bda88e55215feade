//! Reading command-line flags, and the flags every training example takes
//! for its output files, checkpoints and starting point.

use std::path::PathBuf;
use std::str::FromStr;

/// The arguments after the program name, read flag by flag.
pub struct Args {
    rest: std::vec::IntoIter<String>,
}

impl Args {
    /// The arguments `args`.
    pub fn new(args: impl IntoIterator<Item = String>) -> Self {
        Args {
            rest: args.into_iter().collect::<Vec<_>>().into_iter(),
        }
    }

    /// The next flag, if any.
    pub fn next_flag(&mut self) -> Option<String> {
        self.rest.next()
    }

    /// The value that follows `flag`.
    pub fn value(&mut self, flag: &str) -> Result<String, String> {
        self.rest
            .next()
            .ok_or_else(|| format!("{flag} needs a value"))
    }

    /// The value that follows `flag`, as a path.
    pub fn path(&mut self, flag: &str) -> Result<PathBuf, String> {
        self.value(flag).map(PathBuf::from)
    }

    /// The value that follows `flag`, parsed as `T` (`what` says what it
    /// must be, for the error).
    pub fn parsed<T: FromStr>(&mut self, flag: &str, what: &str) -> Result<T, String> {
        let text = self.value(flag)?;
        text.parse()
            .map_err(|_| format!("{flag} expects {what}, got '{text}'"))
    }

    /// The value that follows `flag`, a whole number above zero.
    pub fn positive(&mut self, flag: &str) -> Result<usize, String> {
        let text = self.value(flag)?;
        text.parse()
            .ok()
            .filter(|&n: &usize| n > 0)
            .ok_or_else(|| format!("{flag} expects a positive whole number, got '{text}'"))
    }

    /// The value that follows `flag`, a finite number above zero.
    pub fn positive_real(&mut self, flag: &str) -> Result<f32, String> {
        let text = self.value(flag)?;
        text.parse()
            .ok()
            .filter(|x: &f32| x.is_finite() && *x > 0.0)
            .ok_or_else(|| format!("{flag} expects a positive number, got '{text}'"))
    }
}

/// Where a training run starts from and what it writes.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainingFlags {
    /// `--save FILE`: the parameters after training (safetensors).
    pub save: Option<PathBuf>,
    /// `--load FILE`: start from parameters written by `--save`.
    pub load: Option<PathBuf>,
    /// `--init FILE`: start from the PyTorch reference's `--save-init` file.
    pub init: Option<PathBuf>,
    /// `--loss-log FILE`: every step's loss, one per line.
    pub loss_log: Option<PathBuf>,
    /// `--plot FILE` (`none` to skip): the loss curve, as SVG.
    pub plot: Option<PathBuf>,
    /// `--checkpoint FILE` (`none` to skip): written at the end of every
    /// epoch, replacing the previous one atomically.
    pub checkpoint: Option<PathBuf>,
    /// `--resume`: continue from the checkpoint.
    pub resume: bool,
}

/// The lines of the usage text for [`TrainingFlags`].
pub const TRAINING_USAGE: &str =
    "  --save FILE           write the parameters (safetensors) after training
  --load FILE           start from parameters written by --save
  --init FILE           start from the PyTorch reference's --save-init file
  --loss-log FILE       write each step's loss, one per line
  --plot FILE           the loss curve, as SVG ('none' to skip)
  --checkpoint FILE     written after every epoch ('none' to skip)
  --resume              continue from the checkpoint, as if never stopped";

impl TrainingFlags {
    /// The defaults of the example `name`: the loss curve in
    /// `NAME-loss.svg`, checkpoints in `NAME-checkpoint.safetensors`.
    pub fn new(name: &str) -> Self {
        TrainingFlags {
            save: None,
            load: None,
            init: None,
            loss_log: None,
            plot: Some(format!("{name}-loss.svg").into()),
            checkpoint: Some(format!("{name}-checkpoint.safetensors").into()),
            resume: false,
        }
    }

    /// Reads `flag` (and its value from `args`) if it is one of these:
    /// `Ok(true)`; `Ok(false)` when it is not.
    pub fn read(&mut self, flag: &str, args: &mut Args) -> Result<bool, String> {
        let optional = |path: PathBuf| (path.as_os_str() != "none").then_some(path);
        match flag {
            "--save" => self.save = Some(args.path(flag)?),
            "--load" => self.load = Some(args.path(flag)?),
            "--init" => self.init = Some(args.path(flag)?),
            "--loss-log" => self.loss_log = Some(args.path(flag)?),
            "--plot" => self.plot = optional(args.path(flag)?),
            "--checkpoint" => self.checkpoint = optional(args.path(flag)?),
            "--resume" => self.resume = true,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Refuses combinations that cannot both hold.
    pub fn check(&self) -> Result<(), String> {
        let starts = [
            (self.load.is_some(), "--load"),
            (self.init.is_some(), "--init"),
            (self.resume, "--resume"),
        ];
        let given: Vec<&str> = starts
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, f)| *f)
            .collect();
        if given.len() > 1 {
            return Err(format!(
                "{} each choose where training starts: give one of them",
                given.join(" and ")
            ));
        }
        if self.resume && self.checkpoint.is_none() {
            return Err("--resume needs a checkpoint file (--checkpoint FILE)".to_string());
        }
        Ok(())
    }

    /// The files a run writes, with the flag that names each.
    pub fn outputs(&self) -> Vec<(&'static str, PathBuf)> {
        [
            ("--save", &self.save),
            ("--loss-log", &self.loss_log),
            ("--plot", &self.plot),
            ("--checkpoint", &self.checkpoint),
        ]
        .into_iter()
        .filter_map(|(flag, path)| Some((flag, path.clone()?)))
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--help` lines up the training flags with the example's own.
    #[test]
    fn every_usage_line_is_indented_as_the_examples_are() {
        for line in TRAINING_USAGE.lines() {
            assert!(
                line.starts_with("  -") || line.starts_with("        "),
                "{line:?}"
            );
        }
    }

    fn read(words: &[&str]) -> Result<TrainingFlags, String> {
        let mut flags = TrainingFlags::new("demo");
        let mut args = Args::new(words.iter().map(|w| w.to_string()));
        while let Some(flag) = args.next_flag() {
            if !flags.read(&flag, &mut args)? {
                return Err(format!("unknown option '{flag}'"));
            }
        }
        flags.check().map(|()| flags)
    }

    #[test]
    fn defaults_and_every_flag() {
        let defaults = read(&[]).unwrap();
        assert_eq!(defaults.plot, Some("demo-loss.svg".into()));
        assert_eq!(
            defaults.checkpoint,
            Some("demo-checkpoint.safetensors".into())
        );
        let all = read(&[
            "--save",
            "s",
            "--loss-log",
            "l",
            "--plot",
            "none",
            "--checkpoint",
            "c",
            "--resume",
        ])
        .unwrap();
        assert_eq!(
            (all.save, all.loss_log, all.plot, all.checkpoint, all.resume),
            (
                Some("s".into()),
                Some("l".into()),
                None,
                Some("c".into()),
                true
            )
        );
    }

    #[test]
    fn mistakes_are_explained() {
        assert_eq!(read(&["--save"]).unwrap_err(), "--save needs a value");
        assert_eq!(
            read(&["--init", "a", "--resume"]).unwrap_err(),
            "--init and --resume each choose where training starts: give one of them"
        );
        assert!(read(&["--checkpoint", "none", "--resume"]).is_err());
        let mut args = Args::new(["x".to_string()]);
        assert_eq!(
            args.positive("--epochs").unwrap_err(),
            "--epochs expects a positive whole number, got 'x'"
        );
    }
}
