//! Parameter files in the safetensors format.
