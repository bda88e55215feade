//! Data readers: treebanks, vocabularies, word vectors.
