//! The training text as the reference reads it: its bytes as indices into
//! a vocabulary of the distinct bytes in order of first appearance, and
//! the windows each iteration reads.

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
    /// (the same positions one byte later).
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
