//! Block-sparse connectivity as on TrueNorth cores: a core has at most 256
//! inputs (axons) and 256 neurons, and sees only its own block of the
//! layer below.
//!
//! The first layer's cores read square patches of the image. Every later
//! layer's cores partition the layer below: each neuron feeds exactly one
//! axon (TrueNorth's fan-out of one), and the partition interleaves the
//! cores below, so that a core of the next layer reads the same number of
//! neurons from every core below it (it sees the whole image). The output
//! layer's neurons are assigned to the classes in turn (neuron `j` of a
//! core votes for class `j mod 10`); a class's score is the number of its
//! neurons that fire, summed over the output cores.

/// The most inputs (axons) and neurons a core has.
pub const CORE_SIZE: usize = 256;

/// The number of classes (digits).
pub const CLASSES: usize = 10;

/// The shape of a network of cores.
#[derive(Clone, Debug, PartialEq)]
pub struct Architecture {
    /// The side of the (square) input image, in pixels.
    pub side: usize,
    /// The side of the first layer's patches.
    pub patch: usize,
    /// The step between neighbouring patches.
    pub stride: usize,
    /// The neurons of each first-layer core.
    pub first_neurons: usize,
    /// The later hidden layers: (cores, neurons per core) of each.
    pub hidden: Vec<(usize, usize)>,
    /// The output layer's cores.
    pub output_cores: usize,
    /// Each output core's neurons per class.
    pub per_class: usize,
}

/// One layer of cores: how many, and what each reads.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerShape {
    /// The number of cores.
    pub cores: usize,
    /// The inputs (axons) each core reads.
    pub inputs: usize,
    /// The neurons of each core.
    pub neurons: usize,
    /// Core `c`'s inputs are `sources[c * inputs..(c + 1) * inputs]`:
    /// positions in the layer below's output (pixels for the first layer;
    /// otherwise neuron `j` of core `k` below is `k * neurons_below + j`).
    pub sources: Vec<usize>,
}

impl LayerShape {
    /// The number of neurons of the layer.
    pub fn outputs(&self) -> usize {
        self.cores * self.neurons
    }

    /// The number of (possible) synapses: cores × inputs × neurons.
    pub fn synapses(&self) -> usize {
        self.cores * self.inputs * self.neurons
    }
}

impl Architecture {
    /// The small network for MNIST: four cores on 16×16 patches with a
    /// stride of 12 (they tile 28×28, overlapping by four pixels), 64
    /// neurons each, feeding one output core of 25 neurons per class:
    /// five cores in all.
    pub fn mnist_small() -> Self {
        Architecture {
            side: 28,
            patch: 16,
            stride: 12,
            first_neurons: 64,
            hidden: Vec::new(),
            output_cores: 1,
            per_class: 25,
        }
    }

    /// The large network for MNIST: sixteen cores on 16×16 patches with a
    /// stride of 4, 256 neurons each, feeding sixteen output cores (each
    /// reading 16 neurons of every first-layer core) of 25 neurons per
    /// class (400 per class): 32 cores in all.
    pub fn mnist_large() -> Self {
        Architecture {
            side: 28,
            patch: 16,
            stride: 4,
            first_neurons: 256,
            hidden: Vec::new(),
            output_cores: 16,
            per_class: 25,
        }
    }

    /// The small network for the 8×8 digits: four cores on 6×6 patches
    /// with a stride of 2, 64 neurons each, feeding one output core of 25
    /// neurons per class.
    pub fn digits_small() -> Self {
        Architecture {
            side: 8,
            patch: 6,
            stride: 2,
            first_neurons: 64,
            hidden: Vec::new(),
            output_cores: 1,
            per_class: 25,
        }
    }

    /// The large network for the digits: nine cores on 6×6 patches with a
    /// stride of 1, 256 neurons each, feeding nine output cores (256
    /// inputs each) of 25 neurons per class.
    pub fn digits_large() -> Self {
        Architecture {
            side: 8,
            patch: 6,
            stride: 1,
            first_neurons: 256,
            hidden: Vec::new(),
            output_cores: 9,
            per_class: 25,
        }
    }

    /// The neurons of each output core.
    pub fn output_neurons(&self) -> usize {
        self.per_class * CLASSES
    }

    /// The layers, first to output, or what makes the shape impossible.
    pub fn layers(&self) -> Result<Vec<LayerShape>, String> {
        if self.patch == 0 || self.patch > self.side || self.stride == 0 {
            return Err(format!(
                "patches of {} with stride {} do not fit an image of side {}",
                self.patch, self.stride, self.side
            ));
        }
        let per_side = (self.side - self.patch) / self.stride + 1;
        let mut sources = Vec::new();
        for row in 0..per_side {
            for col in 0..per_side {
                let (top, left) = (row * self.stride, col * self.stride);
                for y in top..top + self.patch {
                    sources.extend((left..left + self.patch).map(|x| y * self.side + x));
                }
            }
        }
        let first = LayerShape {
            cores: per_side * per_side,
            inputs: self.patch * self.patch,
            neurons: self.first_neurons,
            sources,
        };
        let mut layers = vec![first];
        let later = self
            .hidden
            .iter()
            .copied()
            .chain([(self.output_cores, self.output_neurons())]);
        for (cores, neurons) in later {
            let below = layers.last().expect("the first layer is there");
            layers.push(partition(below, cores, neurons)?);
        }
        for (i, layer) in layers.iter().enumerate() {
            if layer.inputs > CORE_SIZE || layer.neurons > CORE_SIZE || layer.neurons == 0 {
                return Err(format!(
                    "layer {}: cores of {} inputs and {} neurons; a core has at most {CORE_SIZE} of each",
                    i + 1,
                    layer.inputs,
                    layer.neurons
                ));
            }
        }
        Ok(layers)
    }
}

/// A layer of `cores` cores of `neurons` neurons that partitions the
/// outputs of `below` among its cores, interleaving the cores below.
fn partition(below: &LayerShape, cores: usize, neurons: usize) -> Result<LayerShape, String> {
    let total = below.outputs();
    if cores == 0 || !total.is_multiple_of(cores) {
        return Err(format!(
            "{total} neurons cannot be split evenly among {cores} cores"
        ));
    }
    // Position t of the interleaved order is neuron t / cores_below of core
    // t % cores_below; core c reads positions c * inputs .. (c + 1) * inputs.
    let sources = (0..total)
        .map(|t| (t % below.cores) * below.neurons + t / below.cores)
        .collect();
    Ok(LayerShape {
        cores,
        inputs: total / cores,
        neurons,
        sources,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mnist_small_patches_tile_the_image() {
        let layers = Architecture::mnist_small().layers().unwrap();
        let first = &layers[0];
        assert_eq!((first.cores, first.inputs, first.neurons), (4, 256, 64));
        // Core 3 (bottom right) starts at pixel (12, 12) and ends at (27, 27).
        let core3 = &first.sources[3 * 256..4 * 256];
        assert_eq!((core3[0], core3[255]), (12 * 28 + 12, 27 * 28 + 27));
        let mut covered = vec![false; 28 * 28];
        first.sources.iter().for_each(|&p| covered[p] = true);
        assert!(
            covered.iter().all(|&c| c),
            "the four patches cover every pixel"
        );
        let output = &layers[1];
        assert_eq!((output.cores, output.inputs, output.neurons), (1, 256, 250));
    }

    #[test]
    fn later_layers_partition_the_layer_below_evenly() {
        let deep = Architecture {
            hidden: vec![(16, 256)],
            ..Architecture::mnist_large()
        };
        let layers = deep.layers().unwrap();
        assert_eq!(
            layers
                .iter()
                .map(|l| (l.cores, l.inputs, l.neurons))
                .collect::<Vec<_>>(),
            [(16, 256, 256), (16, 256, 256), (16, 256, 250)]
        );
        let hidden = &layers[1];
        // Each neuron below feeds exactly one axon.
        let mut sorted = hidden.sources.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..16 * 256).collect::<Vec<_>>());
        // Each core reads 16 neurons of every core below.
        for core in hidden.sources.chunks(256) {
            let mut per_core_below = [0; 16];
            core.iter().for_each(|&s| per_core_below[s / 256] += 1);
            assert_eq!(per_core_below, [16; 16]);
        }
    }

    #[test]
    fn impossible_shapes_are_refused() {
        let mut too_wide = Architecture::mnist_small();
        too_wide.first_neurons = 300;
        assert!(too_wide.layers().unwrap_err().contains("at most 256"));
        let mut uneven = Architecture::mnist_small();
        uneven.output_cores = 3;
        assert!(uneven.layers().unwrap_err().contains("split evenly"));
    }
}
