//! The training text as the reference reads it: its bytes as indices into
//! a vocabulary of the distinct bytes in order of first appearance, and
//! the windows each iteration reads, of one stream or of several read side
//! by side.

use std::ops::Range;

/// A text as vocabulary indices.
pub struct Text {
    /// The distinct bytes, in order of first appearance.
    pub vocabulary: Vec<u8>,
    /// Each byte of the text as its index in `vocabulary`.
    pub indices: Vec<usize>,
}

impl Text {
    /// Encodes `bytes`.
    pub fn new(bytes: &[u8]) -> Self {
        let mut vocabulary = Vec::new();
        let mut index = [None; 256];
        let indices = bytes
            .iter()
            .map(|&b| {
                *index[usize::from(b)].get_or_insert_with(|| {
                    vocabulary.push(b);
                    vocabulary.len() - 1
                })
            })
            .collect();
        Text {
            vocabulary,
            indices,
        }
    }

    /// The window of `length` inputs starting at `start`, and its targets
    /// (the same positions one byte later): the reference's one stream
    /// (see [`Streams::read`] for several).
    #[cfg(test)]
    pub fn window(&self, start: usize, length: usize) -> (&[usize], &[usize]) {
        (
            &self.indices[start..start + length],
            &self.indices[start + 1..start + length + 1],
        )
    }
}

/// Where the iterations read, as in min-char-rnn: windows of `length`
/// one after another from the start of the text, back to the start (with
/// the state reset) when fewer than `length + 1` bytes are left.
pub struct Windows {
    next: usize,
    length: usize,
    text_length: usize,
}

/// One iteration's window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Its first input's position in the text.
    pub start: usize,
    /// Whether the state starts from zero here (the text's start).
    pub reset: bool,
}

impl Windows {
    /// The windows of `length` over a text of `text_length` bytes.
    ///
    /// # Panics
    /// When `length` is 0, or the text is not longer than one window and
    /// its target (the reference's condition).
    pub fn new(text_length: usize, length: usize) -> Self {
        assert!(
            length > 0 && text_length > length + 1,
            "a text of {text_length} bytes is too short for windows of {length}"
        );
        Windows {
            next: 0,
            length,
            text_length,
        }
    }
}

impl Iterator for Windows {
    type Item = Window;

    fn next(&mut self) -> Option<Window> {
        if self.next + self.length + 1 > self.text_length {
            self.next = 0;
        }
        let start = self.next;
        self.next += self.length;
        Some(Window {
            start,
            reset: start == 0,
        })
    }
}

/// The text cut into `count` streams read side by side, as PyTorch's
/// character-level batching does: contiguous segments of equal length (the
/// remainder of the division dropped), each read window after window as
/// one text is (see [`Windows`]), so that each carries its state from one
/// window to the next. One stream is the whole text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Streams {
    count: usize,
    /// Each segment's length.
    length: usize,
    /// Characters per window.
    window: usize,
}

impl Streams {
    /// `count` streams of a text of `text_length` bytes, read in windows of
    /// `window`.
    ///
    /// # Errors
    /// When a segment is not longer than one window and its target.
    ///
    /// # Panics
    /// When `count` or `window` is 0.
    pub fn new(text_length: usize, count: usize, window: usize) -> Result<Self, String> {
        assert!(
            count > 0 && window > 0,
            "streams: at least one, windows of one or more"
        );
        let length = text_length / count;
        if length <= window + 1 {
            return Err(match count {
                1 => format!("{text_length} bytes are too few to train on windows of {window}"),
                _ => format!(
                    "{text_length} bytes cut into --batch {count} streams of {length} are too \
                     few to train on windows of {window}"
                ),
            });
        }
        Ok(Streams {
            count,
            length,
            window,
        })
    }

    /// The number of streams.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Where each iteration reads, the same in every stream: the windows
    /// of one segment.
    pub fn windows(&self) -> Windows {
        Windows::new(self.length, self.window)
    }

    /// The windows at `start` of the streams `streams`, step by step: the
    /// first character of each of them, then the second of each, and so
    /// on (the layout [`rnn_window`](crate::model::rnn_window) reads), in
    /// `inputs`, and their targets in `targets`. With one stream:
    /// [`Text::window`].
    pub fn read(
        &self,
        text: &Text,
        start: usize,
        streams: Range<usize>,
        inputs: &mut Vec<usize>,
        targets: &mut Vec<usize>,
    ) {
        inputs.clear();
        targets.clear();
        for step in 0..self.window {
            for stream in streams.clone() {
                let at = stream * self.length + start + step;
                inputs.push(text.indices[at]);
                targets.push(text.indices[at + 1]);
            }
        }
    }

    /// The last target of stream 0's window at `start`.
    pub fn last_target(&self, text: &Text, start: usize) -> usize {
        text.indices[start + self.window]
    }
}
