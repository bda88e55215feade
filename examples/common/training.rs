//! A training run's scaffolding around the example's own loop: checks of
//! the output files before any work, the starting point (`--load`, or
//! `--resume` from the last checkpoint), each step's loss (kept for the
//! curve and written to `--loss-log`), a checkpoint after every epoch,
//! and at the end the saved parameters and the loss curve.
//!
//! A checkpoint holds the parameters, the optimizer's state, the epochs
//! done, every loss so far and whatever the example adds (a seed, the
//! position in the data), so that a resumed run gives the same numbers,
//! bit for bit, as one that never stopped. It is replaced atomically:
//! interrupting a run, even while it writes one, leaves the last
//! complete checkpoint in place.

use std::fs::File;
use std::io::{BufWriter, Write};

use cps::io::{TrainingState, load_checkpoint, load_parameters, save_checkpoint, save_parameters};
use cps::prelude::*;
use indicatif::{ProgressBar, ProgressStyle};
use ndarray::{Array1, ArrayD};

use super::flags::TrainingFlags;
use super::outputs::check_writable;
use super::plot::loss_curve;

/// The state of a training run beside the model and the optimizer.
pub struct Training {
    /// Whether this worker writes the checkpoint (worker 0 only).
    writes_checkpoint: bool,
    flags: TrainingFlags,
    /// Names the model in the loss curve's title.
    model_name: String,
    /// Names one step: `trees`, `batches`, `iterations`.
    unit: &'static str,
    losses: Vec<f32>,
    epochs_done: usize,
    log: Option<BufWriter<File>>,
    /// The first failure to write the loss log, reported at the epoch's end.
    log_error: Option<String>,
}

impl Training {
    /// Checks that every output file can be written, then sets the
    /// starting point: the parameters of `--load`, or with `--resume`
    /// everything the checkpoint holds, whose loop state (the example's
    /// own counters and arrays) is returned. (`--init` is the example's to
    /// read: the reference's names are its own.)
    pub fn start<M, O>(
        model_name: &str,
        unit: &'static str,
        flags: &TrainingFlags,
        model: &mut M,
        optimizer: &mut O,
    ) -> Result<(Training, TrainingState), String>
    where
        M: Parameters + ?Sized,
        O: Optimizer + ?Sized,
    {
        Self::start_as(model_name, unit, flags, model, optimizer, true)
    }

    /// [`Training::start`] for a worker of an MPI job: worker 0 (`writes`)
    /// writes the output files; the others start from the same point
    /// (`--load`, `--resume`, read from the same paths) and write nothing.
    pub fn start_as<M, O>(
        model_name: &str,
        unit: &'static str,
        flags: &TrainingFlags,
        model: &mut M,
        optimizer: &mut O,
        writes: bool,
    ) -> Result<(Training, TrainingState), String>
    where
        M: Parameters + ?Sized,
        O: Optimizer + ?Sized,
    {
        flags.check()?;
        let mut flags = flags.clone();
        if writes {
            check_writable(&flags.outputs())?;
        } else {
            flags.save = None;
            flags.loss_log = None;
            flags.plot = None;
        }
        let mut training = Training {
            writes_checkpoint: writes,
            flags: flags.clone(),
            model_name: model_name.to_string(),
            unit,
            losses: Vec::new(),
            epochs_done: 0,
            log: None,
            log_error: None,
        };
        if let Some(path) = &flags.load {
            load_parameters(model, path).map_err(|e| e.to_string())?;
        }
        let mut state = TrainingState::default();
        if flags.resume {
            let path = flags
                .checkpoint
                .as_ref()
                .expect("checked: --resume has a checkpoint");
            if !path.exists() {
                return Err(format!(
                    "--resume: no checkpoint at {} (written after each epoch of a run with --checkpoint)",
                    path.display()
                ));
            }
            state = load_checkpoint(path, model, optimizer).map_err(|e| e.to_string())?;
            training.epochs_done = state.counter("epochs").unwrap_or(0) as usize;
            if let Some(losses) = state.tensors.remove("losses") {
                training.losses = losses.iter().copied().collect();
            }
            report!(
                "resumed from {} after epoch {} ({} {unit})",
                path.display(),
                training.epochs_done,
                training.losses.len()
            );
        }
        if let Some(path) = &flags.loss_log {
            let file =
                File::create(path).map_err(|e| format!("--loss-log {}: {e}", path.display()))?;
            let mut log = BufWriter::new(file);
            // A resumed run's log is the whole run's.
            for loss in &training.losses {
                writeln!(log, "{loss:.9}").map_err(|e| format!("{}: {e}", path.display()))?;
            }
            training.log = Some(log);
        }
        Ok((training, state))
    }

    /// Epochs completed before this run (by the run a checkpoint resumed).
    pub fn epochs_done(&self) -> usize {
        self.epochs_done
    }

    /// The losses recorded so far, one per step.
    pub fn losses(&self) -> &[f32] {
        &self.losses
    }

    /// Reserves room for `steps` more losses, so that the record does not
    /// grow (and allocate) during the epochs.
    pub fn reserve(&mut self, steps: usize) {
        self.losses.reserve(steps);
    }

    /// A progress bar over the `steps` steps of `epoch` (drawn on the
    /// terminal only; hidden when standard error is not one).
    pub fn progress_bar(&self, epoch: usize, steps: usize) -> ProgressBar {
        let template = format!(
            "epoch {{prefix}} {{bar:30}} {{pos}}/{{len}} {}, {{per_sec}}, loss {{msg}}",
            self.unit
        );
        let bar = ProgressBar::new(steps as u64)
            .with_style(ProgressStyle::with_template(&template).expect("a valid template"));
        bar.set_prefix(epoch.to_string());
        bar
    }

    /// Records one step's loss.
    pub fn record(&mut self, loss: f32) {
        self.losses.push(loss);
        if let Some(log) = &mut self.log
            && let Err(e) = writeln!(log, "{loss:.9}")
        {
            self.log_error.get_or_insert(e.to_string());
        }
    }

    /// Ends an epoch: flushes the loss log and writes the checkpoint
    /// (parameters, optimizer state, `state` and the run's own record).
    pub fn end_epoch<M, O>(
        &mut self,
        model: &M,
        optimizer: &O,
        mut state: TrainingState,
    ) -> Result<(), String>
    where
        M: Parameters + ?Sized,
        O: Optimizer + ?Sized,
    {
        self.epochs_done += 1;
        self.flush_log()?;
        if let Some(path) = self
            .flags
            .checkpoint
            .as_ref()
            .filter(|_| self.writes_checkpoint)
        {
            state.set_counter("epochs", self.epochs_done as u64);
            let losses: ArrayD<f32> = Array1::from(self.losses.clone()).into_dyn();
            state.tensors.insert("losses".to_string(), losses);
            save_checkpoint(path, model, optimizer, &state).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Ends the run: saves the parameters (`--save`) and draws the loss
    /// curve (`--plot`), averaging over `window` steps.
    pub fn finish<M: Parameters + ?Sized>(
        mut self,
        model: &M,
        window: usize,
    ) -> Result<(), String> {
        self.flush_log()?;
        if let Some(path) = &self.flags.save {
            save_parameters(model, path).map_err(|e| e.to_string())?;
            report!("parameters saved to {}", path.display());
        }
        if let Some(path) = &self.flags.plot
            && !self.losses.is_empty()
        {
            loss_curve(&self.losses, window, &self.model_name, self.unit, path)?;
            report!("loss curve: {}", path.display());
        }
        Ok(())
    }

    fn flush_log(&mut self) -> Result<(), String> {
        let shown = || {
            let path = self.flags.loss_log.as_ref().expect("a log has a path");
            path.display().to_string()
        };
        if let Some(e) = self.log_error.take() {
            return Err(format!("--loss-log {}: {e}", shown()));
        }
        if let Some(log) = &mut self.log {
            log.flush()
                .map_err(|e| format!("--loss-log {}: {e}", shown()))?;
        }
        Ok(())
    }
}

/// Refuses to train on nothing: `count` items of `what` (e.g. `training
/// trees`) read from `source`.
pub fn require_data(count: usize, what: &str, source: &str) -> Result<(), String> {
    if count == 0 {
        return Err(format!("{source}: no {what} to train on"));
    }
    Ok(())
}

/// The seed of step `step` of `epoch` of a run seeded with `seed` (step 0
/// for the epoch's own draws, such as its order): a mix of the three
/// (SplitMix64's finaliser), so that nearby seeds give unrelated streams.
/// Drawing each step's randomness (dropout masks) from its own seed makes
/// a resumed run draw what an uninterrupted one draws.
pub fn step_seed(seed: u64, epoch: usize, step: usize) -> u64 {
    let mut z = seed
        .wrapping_add((epoch as u64) << 32)
        .wrapping_add(step as u64)
        .wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z ^ (z >> 27)
}
